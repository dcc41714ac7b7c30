// GenerationJob: the n engine requests behind one API request (one per
// choice), and the text they produce, handed from the engine's scheduler
// thread to the HTTP thread that answers.
//
// start() submits the requests. Their sinks run on the scheduler thread:
// each token becomes text through the choice's TextStream (end-of-generation
// tokens are not text); a stop sequence stops the request there. The HTTP
// thread calls wait() for what is new — text and finish reasons — until
// done(). cancel() stops every choice still running (a client gone); their
// blocks return to the pool at the engine's next step.
//
// Ownership: shared — the sinks hold the job, so it outlives the HTTP
// handler when the engine reports late. The Engine must outlive the job's
// requests (the server is stopped before the engine is destroyed).
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kvforge/engine.h"
#include "server/api_error.h"
#include "server/metrics.h"
#include "server/openai_response.h"
#include "server/text_stream.h"

namespace kvforge::server {

struct ChoiceUpdate {
  int32_t index = 0;
  std::string text;                          // new text, maybe empty
  std::optional<std::string> finish_reason;  // set once, on the choice's last update
};

class GenerationJob : public std::enable_shared_from_this<GenerationJob> {
 public:
  // stop: the request's stop sequences; metrics (may be null) counts finishes.
  GenerationJob(Engine& engine, std::vector<std::string> stop, ServerMetrics* metrics);
  GenerationJob(const GenerationJob&) = delete;
  GenerationJob& operator=(const GenerationJob&) = delete;

  // Submits n requests with `params`; choice i with seed + i when the seed
  // is fixed. A refusal by the engine is an ApiError (400 for invalid
  // parameters), and then nothing runs.
  [[nodiscard]] std::optional<ApiError> start(const RequestParams& params, int32_t n);

  // Blocks until there is news or the timeout passes; returns and clears
  // the updates since the last call, in the order they happened.
  [[nodiscard]] std::vector<ChoiceUpdate> wait(std::chrono::milliseconds timeout);
  // Every choice has finished (its last update may still be unread).
  [[nodiscard]] bool done() const;
  void cancel();

  // After done(): the whole result.
  [[nodiscard]] std::vector<ChoiceReport> choices() const;
  [[nodiscard]] UsageReport usage() const;
  // After done(): why a choice failed, if one did (engine error, shutdown).
  [[nodiscard]] std::optional<ApiError> failure() const;

 private:
  struct Choice {
    explicit Choice(std::vector<std::string> stop) : stream(std::move(stop)) {}
    TextStream stream;
    std::string text;
    std::string finish_reason;  // empty while running
    RequestId id = -1;
    RequestUsage usage;
  };
  bool on_event(size_t index, const RequestEvent& event);
  void push_update(size_t index, std::string text, std::optional<std::string> finish);

  Engine& engine_;
  ServerMetrics* metrics_;
  const std::vector<std::string> stop_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Choice> choices_;
  std::vector<ChoiceUpdate> updates_;
  int32_t running_ = 0;
  bool stop_at_end_ = true;  // end-of-generation tokens are not text
  std::optional<ApiError> failure_;
};

}  // namespace kvforge::server
