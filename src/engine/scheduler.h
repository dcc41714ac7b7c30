// Scheduler: continuous batching of many generation requests over one model
// and one KV cache (docs/serving.md).
//
// Requests arrive from any thread (submit, cancel) and wait in a queue. The
// scheduler thread calls step() in a loop; each step
//   1. takes new requests and cancellations from the queue,
//   2. admits waiting requests while a sequence slot is free and the cache
//      has room for their next prompt chunk (reusing cached prefixes),
//   3. builds one batch: a decode token for every running request that has
//      finished its prompt, then prefill chunks of the others up to the batch
//      size, so long prompts are prefilled in pieces between decode steps,
//   4. runs Model::forward_batch, samples each request's next token and
//      reports it, and retires finished requests (their blocks go to the
//      prefix cache).
// When the cache runs out of memory mid-step, the most recently admitted
// running request is preempted: its sequence is released and it goes back to
// the front of the queue with the tokens it generated so far appended to its
// prompt, to be recomputed later. A request is delayed, never lost.
//
// Events are reported through the request's sink on the scheduler thread;
// a sink must be quick, and returning false stops the request (a client gone,
// a stop string found). Thread-safety: submit, cancel and stats from any
// thread; step/run from one thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "kv/kv_cache.h"
#include "kvforge/status.h"

namespace kvforge {

class Model;

using RequestId = int64_t;

enum class FinishReason {
  kNone,           // still running
  kEndOfText,      // an end-of-generation token
  kLength,         // max_tokens reached
  kContextFull,    // the sequence reached the context size
  kStoppedByUser,  // the sink returned false
  kCancelled,      // cancel()
  kError,          // see RequestEvent::error
};

struct RequestParams {
  std::vector<int32_t> prompt;  // token ids, not empty
  int32_t max_tokens = 128;     // > 0
  SamplingParams sampling;
  bool stop_at_end_of_generation = true;
  std::string cache_salt;  // prefix-cache isolation (PagedKvCache::set_salt)
};

struct RequestUsage {
  int32_t prompt_tokens = 0;    // the prompt's length
  int32_t reused_tokens = 0;    // prompt tokens whose KV came from the prefix cache
  int32_t computed_tokens = 0;  // prompt (and recomputed) tokens prefilled
  int32_t generated_tokens = 0;
  int32_t preemptions = 0;
  double queue_seconds = 0;        // submit to admission
  double time_to_first_token = 0;  // submit to first token, seconds
  double decode_seconds = 0;       // first token to the last
};

struct RequestEvent {
  RequestId id = 0;
  int32_t token = -1;  // the new token, or -1 for the final event only
  FinishReason finish = FinishReason::kNone;
  Status error;        // with kError
  RequestUsage usage;  // filled on the final event
};

// Returns false to stop the request (FinishReason::kStoppedByUser).
using RequestSink = std::function<bool(const RequestEvent&)>;

struct SchedulerOptions {
  int32_t max_running = 4;       // concurrent sequences; the cache needs this many slots
  int32_t max_batch_tokens = 0;  // tokens per step; 0: the model's max_batch
  int32_t n_ctx = 0;             // most positions a sequence may hold
  // Keep this many tokens of capacity free when admitting (so that running
  // requests can decode a while without preemption).
  int32_t admission_reserve_tokens = 64;
  // Tokens of a token-end-of-generation test (the tokenizer's).
  std::function<bool(int32_t)> is_end_of_generation;
};

// Fixed-bucket histogram of seconds (Prometheus style: cumulative buckets).
struct Histogram {
  static constexpr double kBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0};
  int64_t counts[std::size(kBounds) + 1] = {};  // last: +Inf
  double sum = 0;
  int64_t total = 0;
  void add(double seconds);
};

struct SchedulerStats {
  int64_t submitted = 0;
  int64_t finished = 0;
  int64_t cancelled = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  int64_t prompt_tokens = 0;    // prompt tokens of admitted requests
  int64_t reused_tokens = 0;    // of those, taken from the prefix cache
  int64_t computed_tokens = 0;  // tokens prefilled (prompts and recomputation)
  int64_t generated_tokens = 0;
  int32_t waiting = 0;
  int32_t running = 0;
  Histogram time_to_first_token;
  Histogram time_per_output_token;
};

class Scheduler {
 public:
  // The cache must have at least options.max_running sequence slots; the
  // scheduler uses SeqId 0 .. max_running - 1 and is their only user.
  Scheduler(Model& model, KvCache& kv, const SchedulerOptions& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Invalid parameters (empty prompt, a prompt that does
  // not fit the context, max_tokens <= 0, bad sampling values) are refused
  // here with kInvalidArgument / kOutOfRange and no event is ever sent.
  [[nodiscard]] Result<RequestId> submit(RequestParams params, RequestSink sink);
  // Stops a request at the next step (its sink then gets kCancelled); no-op
  // for unknown or finished ids.
  void cancel(RequestId id);

  // One scheduling step (see the file comment); false when there was nothing
  // to do.
  bool step();
  // Steps until stop() is called, sleeping while there is no work.
  void run();
  void stop();

  [[nodiscard]] SchedulerStats stats() const;

 private:
  struct Request;
  void take_incoming();
  void finish(Request& r, FinishReason reason, Status error = Status());
  bool admit();
  void preempt(Request& r);
  void retire_stopped();

  Model& model_;
  KvCache& kv_;
  SchedulerOptions options_;
  int32_t n_vocab_ = 0;

  // Shared with submitting threads.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Request>> incoming_;
  std::vector<RequestId> cancels_;
  bool stopping_ = false;
  RequestId next_id_ = 1;
  SchedulerStats stats_;

  // Scheduler thread only.
  std::deque<std::unique_ptr<Request>> waiting_;
  std::vector<std::unique_ptr<Request>> running_;  // in admission order
  std::vector<bool> slot_used_;
  std::vector<float> logits_;  // [max_running][n_vocab]
};

[[nodiscard]] const char* finish_reason_name(FinishReason reason);

}  // namespace kvforge
