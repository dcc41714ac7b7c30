#include "server/generation_job.h"

#include <fmt/format.h>

namespace kvforge::server {
namespace {

// OpenAI's finish reasons, plus ours for requests that did not complete.
const char* api_finish_reason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEndOfText:
    case FinishReason::kStoppedByUser:  // a stop sequence (the only reason our sinks stop)
      return "stop";
    case FinishReason::kLength:
    case FinishReason::kContextFull:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
    case FinishReason::kNone:
      break;
  }
  return "error";
}

}  // namespace

GenerationJob::GenerationJob(Engine& engine, std::vector<std::string> stop, ServerMetrics* metrics)
    : engine_(engine), metrics_(metrics), stop_(std::move(stop)) {}

std::optional<ApiError> GenerationJob::start(const RequestParams& params, int32_t n) {
  KVF_CHECK(n >= 1 && choices_.empty());
  {
    std::lock_guard lock(mutex_);
    for (int32_t i = 0; i < n; ++i) choices_.emplace_back(stop_);
    running_ = n;
    stop_at_end_ = params.stop_at_end_of_generation;
  }
  for (int32_t i = 0; i < n; ++i) {
    RequestParams p = params;
    if (p.sampling.seed != SamplingParams::kRandomSeed) p.sampling.seed += static_cast<uint64_t>(i);
    auto self = shared_from_this();
    const auto index = static_cast<size_t>(i);
    auto id = engine_.submit(
        std::move(p), [self, index](const RequestEvent& e) { return self->on_event(index, e); });
    if (!id.ok()) {
      {
        std::lock_guard lock(mutex_);
        running_ -= n - i;  // these never run
        for (int32_t k = i; k < n; ++k) choices_[static_cast<size_t>(k)].finish_reason = "error";
      }
      cancel();
      const Status& s = id.status();
      const bool invalid =
          s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kOutOfRange;
      return invalid ? invalid_request("", s.message())
                     : ApiError{500, s.message(), "server_error", "", ""};
    }
    std::lock_guard lock(mutex_);
    choices_[index].id = *id;
  }
  return std::nullopt;
}

bool GenerationJob::on_event(size_t index, const RequestEvent& e) {
  std::lock_guard lock(mutex_);
  Choice& c = choices_[index];
  if (e.finish == FinishReason::kNone) {
    if (!c.finish_reason.empty()) return false;
    if (stop_at_end_ && engine_.is_end_of_generation(e.token)) return true;  // not text
    std::string text = c.stream.push(engine_.token_to_piece(e.token));
    if (!text.empty()) push_update(index, std::move(text), std::nullopt);
    return !c.stream.stopped();
  }
  std::string rest = c.stream.stopped() ? std::string() : c.stream.flush();
  const char* reason = api_finish_reason(e.finish);
  if (e.finish == FinishReason::kError && !failure_) {
    failure_ = ApiError{500, "generation failed: " + e.error.message(), "server_error", "", ""};
  } else if (e.finish == FinishReason::kCancelled && !failure_) {
    failure_ = ApiError{503, "the request was cancelled (the server is shutting down)",
                        "server_error", "", "cancelled"};
  }
  c.usage = e.usage;
  --running_;
  push_update(index, std::move(rest), std::string(reason));
  if (metrics_ != nullptr) metrics_->count_finish(reason);
  return false;
}

void GenerationJob::push_update(size_t index, std::string text, std::optional<std::string> finish) {
  Choice& c = choices_[index];
  c.text += text;
  if (finish) c.finish_reason = *finish;
  updates_.push_back(ChoiceUpdate{static_cast<int32_t>(index), std::move(text), std::move(finish)});
  changed_.notify_all();
}

std::vector<ChoiceUpdate> GenerationJob::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return !updates_.empty() || running_ == 0; });
  std::vector<ChoiceUpdate> out;
  out.swap(updates_);
  return out;
}

bool GenerationJob::done() const {
  std::lock_guard lock(mutex_);
  return running_ == 0;
}

void GenerationJob::cancel() {
  std::vector<RequestId> ids;
  {
    std::lock_guard lock(mutex_);
    for (const Choice& c : choices_) {
      if (c.finish_reason.empty() && c.id >= 0) ids.push_back(c.id);
    }
  }
  for (RequestId id : ids) engine_.cancel(id);
}

std::vector<ChoiceReport> GenerationJob::choices() const {
  std::lock_guard lock(mutex_);
  std::vector<ChoiceReport> out;
  for (size_t i = 0; i < choices_.size(); ++i) {
    out.push_back(
        ChoiceReport{static_cast<int32_t>(i), choices_[i].text, choices_[i].finish_reason});
  }
  return out;
}

UsageReport GenerationJob::usage() const {
  std::lock_guard lock(mutex_);
  UsageReport u;
  for (const Choice& c : choices_) {
    u.prompt_tokens = c.usage.prompt_tokens;
    u.completion_tokens += c.usage.generated_tokens;
    u.reused_prompt_tokens += c.usage.reused_tokens;
    u.computed_prompt_tokens += c.usage.computed_tokens;
    u.relay_prompt_tokens += c.usage.relay_tokens;
    u.relay_recomputed_tokens += c.usage.relay_recomputed_tokens;
    u.preemptions += c.usage.preemptions;
  }
  return u;
}

std::optional<ApiError> GenerationJob::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

}  // namespace kvforge::server
