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
// A request of a workflow whose prompt quotes an earlier output of that
// workflow (relay) gets the output's KV re-rotated into place, with a share
// of it recomputed, when its prefill reaches the quoted run; its finished
// output is kept the same way for the agents after it.
// With KV tiers (attach_tiers, docs/tiers.md), a queued request's prefix
// blocks are fetched from the tiers while it waits and loaded into the
// prefix cache before it is admitted, when that is expected to beat
// prefilling them; blocks entering the prefix cache are written to them.
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

#include "engine/kv_tiering.h"
#include "engine/relay_store.h"
#include "engine/sampler.h"
#include "kv/kv_cache.h"
#include "kvforge/generation.h"
#include "kvforge/status.h"

namespace kvforge {

class Model;

struct SchedulerOptions {
  int32_t max_running = 4;       // concurrent sequences; the cache needs this many slots
  int32_t max_batch_tokens = 0;  // tokens per step; 0: the model's max_batch
  int32_t n_ctx = 0;             // most positions a sequence may hold
  // Keep this many tokens of capacity free when admitting (so that running
  // requests can decode a while without preemption).
  int32_t admission_reserve_tokens = 64;
  // Tokens of a token-end-of-generation test (the tokenizer's).
  std::function<bool(int32_t)> is_end_of_generation;
  // Relay (docs/relay.md): outputs of requests that name a workflow keep
  // their KV, up to this many bytes (0: off), and later prompts of the
  // workflow reuse it for runs of at least relay_min_tokens tokens,
  // recomputing relay_recompute_ratio of each run's tokens.
  size_t relay_memory_bytes = 0;
  int32_t relay_min_tokens = 16;
  double relay_recompute_ratio = 0.15;
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

  [[nodiscard]] ServingStats stats() const;

  // Tiers below the pool (docs/tiers.md), fastest first; before run().
  void attach_tiers(std::vector<std::unique_ptr<KvTier>> tiers, TierLoadPolicy policy);

 private:
  struct Request;
  void take_incoming();
  void finish(Request& r, FinishReason reason, Status error = Status());
  bool admit();
  void preempt(Request& r);
  void retire_stopped();
  void keep_output(const Request& r);
  void apply_relay(Request& r);

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
  bool tier_event_ = false;  // a tier fetch completed
  RequestId next_id_ = 1;
  ServingStats stats_;

  // Scheduler thread only.
  std::deque<std::unique_ptr<Request>> waiting_;
  std::vector<std::unique_ptr<Request>> running_;  // in admission order
  std::vector<bool> slot_used_;
  std::vector<float> logits_;  // a step's last-token logits, in batch order
  std::unique_ptr<RelayStore> relay_;
  // Last: destroyed first of the members (after ~Scheduler has released the
  // running sequences, whose blocks it still writes), while the mutex and
  // condition variable its wake-up uses still exist.
  std::unique_ptr<KvTiering> tiering_;
};

}  // namespace kvforge
