#include "engine/scheduler.h"

#include <algorithm>

#include <fmt/format.h>

#include "kv/press/kv_press.h"
#include "model/model.h"
#include "util/fp16.h"

namespace kvforge {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

RelayStats public_stats(const RelayStoreStats& s) {
  RelayStats out;
  out.outputs = s.outputs;
  out.bytes = s.bytes;
  out.stored = s.stored;
  out.evicted = s.evicted;
  out.lookups = s.lookups;
  out.matches = s.matches;
  return out;
}

}  // namespace

void Histogram::add(double seconds) {
  size_t i = 0;
  while (i < std::size(kBounds) && seconds > kBounds[i]) ++i;
  ++counts[i];
  sum += seconds;
  ++total;
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kEndOfText:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kContextFull:
      return "length";
    case FinishReason::kStoppedByUser:
      return "stop";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "none";
}

// One request's state on the scheduler thread.
struct Scheduler::Request {
  RequestId id = 0;
  RequestParams params;
  RequestSink sink;
  std::unique_ptr<Sampler> sampler;
  // What the sequence must hold: the prompt, then every generated token. The
  // last one is computed by the next step (its logits give the next token).
  std::vector<int32_t> tokens;
  int32_t computed = 0;  // positions the sequence holds
  int32_t generated = 0;
  int32_t slot = -1;            // SeqId while running
  bool prompt_pressed = false;  // end_prompt called for the current prefill
  // Runs of the prompt to take from earlier outputs (relay), in prompt
  // order; relay_next is the first not yet reached.
  std::vector<RelayStore::Match> relay;
  size_t relay_next = 0;
  bool cancelled = false;
  RequestUsage usage;
  Clock::time_point submitted, first_token, last_token;
  bool has_first_token = false;
};

Scheduler::Scheduler(Model& model, KvCache& kv, const SchedulerOptions& options)
    : model_(model), kv_(kv), options_(options), n_vocab_(model.config().n_vocab) {
  KVF_CHECK(options_.max_running >= 1);
  if (options_.max_batch_tokens <= 0) options_.max_batch_tokens = model.max_batch();
  options_.max_batch_tokens = std::min(options_.max_batch_tokens, model.max_batch());
  KVF_CHECK(options_.max_batch_tokens >= options_.max_running);
  KVF_CHECK(options_.n_ctx > 0);
  slot_used_.assign(static_cast<size_t>(options_.max_running), false);
  logits_.resize(static_cast<size_t>(options_.max_running) * static_cast<size_t>(n_vocab_));
  running_.reserve(static_cast<size_t>(options_.max_running));
  if (options_.relay_memory_bytes > 0) {
    RelayStoreOptions ro;
    ro.max_bytes = options_.relay_memory_bytes;
    ro.min_tokens = options_.relay_min_tokens;
    relay_ = std::make_unique<RelayStore>(model.config().n_layers, model.config().kv_dim(), ro);
  }
}

Scheduler::~Scheduler() {
  for (auto& r : running_) kv_.release(SeqId{r->slot});
}

void Scheduler::attach_tiers(std::vector<std::unique_ptr<KvTier>> tiers, TierLoadPolicy policy) {
  tiering_ = std::make_unique<KvTiering>(kv_, std::move(tiers), policy, [this] {
    std::lock_guard lock(mutex_);
    tier_event_ = true;
    wake_.notify_one();
  });
}

Result<RequestId> Scheduler::submit(RequestParams params, RequestSink sink) {
  if (params.prompt.empty()) return invalid_argument("the prompt is empty");
  if (params.max_tokens <= 0) {
    return invalid_argument(fmt::format("max_tokens must be > 0, got {}", params.max_tokens));
  }
  if (static_cast<int64_t>(params.prompt.size()) >= options_.n_ctx) {
    return out_of_range(fmt::format("the prompt has {} tokens but the context holds {}",
                                    params.prompt.size(), options_.n_ctx));
  }
  for (int32_t id : params.prompt) {
    if (id < 0 || id >= n_vocab_) {
      return invalid_argument(
          fmt::format("token id {} is outside the vocabulary [0, {})", id, n_vocab_));
    }
  }
  KVF_RETURN_IF_ERROR(params.sampling.validate());
  if (!params.press.empty()) {
    auto press = make_kv_press(params.press);
    if (!press.ok()) return press.status();
  }
  auto r = std::make_unique<Request>();
  r->tokens = params.prompt;
  r->usage.prompt_tokens = static_cast<int32_t>(params.prompt.size());
  r->sampler = std::make_unique<Sampler>(params.sampling, n_vocab_);
  r->params = std::move(params);
  r->sink = std::move(sink);
  r->submitted = Clock::now();
  std::lock_guard lock(mutex_);
  r->id = next_id_++;
  const RequestId id = r->id;
  incoming_.push_back(std::move(r));
  ++stats_.submitted;
  wake_.notify_one();
  return id;
}

void Scheduler::cancel(RequestId id) {
  std::lock_guard lock(mutex_);
  cancels_.push_back(id);
  wake_.notify_one();
}

void Scheduler::stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
}

ServingStats Scheduler::stats() const {
  ServingStats s;
  {
    std::lock_guard lock(mutex_);
    s = stats_;
  }
  if (tiering_) s.tiering = tiering_->stats();
  return s;
}

void Scheduler::take_incoming() {
  std::vector<RequestId> cancels;
  const size_t first_new = waiting_.size();
  {
    std::lock_guard lock(mutex_);
    while (!incoming_.empty()) {
      waiting_.push_back(std::move(incoming_.front()));
      incoming_.pop_front();
    }
    cancels.swap(cancels_);
  }
  if (tiering_) {
    for (size_t i = first_new; i < waiting_.size(); ++i) {
      const Request& r = *waiting_[i];
      tiering_->submitted(r.id, r.params.cache_salt, r.tokens);
    }
  }
  for (RequestId id : cancels) {
    for (auto& r : running_) {
      if (r->id == id) r->cancelled = true;
    }
    for (auto& r : waiting_) {
      if (r->id == id) r->cancelled = true;
    }
  }
}

// Reports the end of a request and frees its sequence (full blocks go to the
// prefix cache). The request is removed by the caller.
void Scheduler::finish(Request& r, FinishReason reason, Status error) {
  const bool completed = reason == FinishReason::kEndOfText || reason == FinishReason::kLength ||
                         reason == FinishReason::kContextFull ||
                         reason == FinishReason::kStoppedByUser;
  const bool workflow_step = !r.params.workflow.empty() && completed;
  if (tiering_) tiering_->forget(r.id);
  if (relay_ && workflow_step && r.slot >= 0) keep_output(r);
  if (r.slot >= 0) {
    kv_.release(SeqId{r.slot});
    slot_used_[static_cast<size_t>(r.slot)] = false;
    r.slot = -1;
  }
  if (workflow_step) {
    if (relay_) relay_->tick();
    kv_.advance_workflow_clock();
  }
  r.usage.generated_tokens = r.generated;
  if (r.has_first_token) r.usage.decode_seconds = seconds_between(r.first_token, r.last_token);
  {
    // Counted before the sink hears of it, so that stats() agree with it.
    std::lock_guard lock(mutex_);
    ++stats_.finished;
    if (relay_) stats_.relay = public_stats(relay_->stats());  // the output just kept
    if (reason == FinishReason::kCancelled) ++stats_.cancelled;
  }
  RequestEvent event;
  event.id = r.id;
  event.finish = reason;
  event.error = std::move(error);
  event.usage = r.usage;
  if (r.sink) r.sink(event);
}

// The generated tokens the sequence holds, with their KV, go to the relay
// store for the workflow's later agents.
void Scheduler::keep_output(const Request& r) {
  const int32_t first = r.usage.prompt_tokens;
  const int32_t n = r.computed - first;
  if (n < relay_->options().min_tokens) return;
  const ModelConfig& c = model_.config();
  const size_t per_layer = static_cast<size_t>(n) * static_cast<size_t>(c.kv_dim());
  std::vector<float> k(per_layer), v(per_layer);
  std::vector<uint16_t> keys(per_layer * static_cast<size_t>(c.n_layers));
  std::vector<uint16_t> values(keys.size());
  for (int32_t l = 0; l < c.n_layers; ++l) {
    // Rows a press dropped or a codec staged out of reach: nothing kept.
    if (!kv_.export_rows(SeqId{r.slot}, LayerId{l}, first, n, k.data(), v.data())) return;
    const size_t at = static_cast<size_t>(l) * per_layer;
    for (size_t i = 0; i < per_layer; ++i) {
      keys[at + i] = fp32_to_fp16(k[i]);
      values[at + i] = fp32_to_fp16(v[i]);
    }
  }
  std::vector<int32_t> tokens(r.tokens.begin() + first, r.tokens.begin() + r.computed);
  relay_->add(r.params.workflow, r.params.agent, first, std::move(tokens), std::move(keys),
              std::move(values), r.params.next_use_steps);
}

// Prefill reached a run quoted from an earlier output: append the output's
// KV re-rotated to the run's positions and recompute a share of it
// (Model::prefill_reused). A run that cannot be reused (no memory, an output
// evicted since) is simply prefilled.
void Scheduler::apply_relay(Request& r) {
  const ModelConfig& c = model_.config();
  while (r.relay_next < r.relay.size() && r.relay[r.relay_next].prompt_begin <= r.computed) {
    const RelayStore::Match m = r.relay[r.relay_next++];
    if (m.prompt_begin != r.computed) continue;
    const size_t per_layer = static_cast<size_t>(m.length) * static_cast<size_t>(c.kv_dim());
    std::vector<float> keys(per_layer * static_cast<size_t>(c.n_layers));
    std::vector<float> values(keys.size());
    Model::ReusedSpan span;
    span.seq = SeqId{r.slot};
    span.tokens = std::span<const int32_t>(r.tokens).subspan(static_cast<size_t>(m.prompt_begin),
                                                             static_cast<size_t>(m.length));
    span.recompute_ratio = options_.relay_recompute_ratio;
    bool loaded = true;
    for (int32_t l = 0; l < c.n_layers && loaded; ++l) {
      float* k = keys.data() + static_cast<size_t>(l) * per_layer;
      float* v = values.data() + static_cast<size_t>(l) * per_layer;
      const int32_t computed_at = relay_->load(m, l, k, v);
      loaded = computed_at >= 0;
      if (loaded) model_.rerotate_keys(k, m.length, m.prompt_begin - computed_at);
      span.keys.push_back(k);
      span.values.push_back(v);
    }
    if (!loaded) continue;
    const Result<int32_t> recomputed = model_.prefill_reused(span, kv_);
    if (!recomputed.ok()) continue;
    r.computed += m.length;
    r.usage.relay_tokens += m.length;
    r.usage.relay_recomputed_tokens += *recomputed;
    r.usage.computed_tokens += *recomputed;
    std::lock_guard lock(mutex_);
    stats_.relay_tokens += m.length;
    stats_.relay_recomputed_tokens += *recomputed;
    stats_.computed_tokens += *recomputed;
  }
}

// Cancelled requests leave before anything is computed for them.
void Scheduler::retire_stopped() {
  for (auto it = running_.begin(); it != running_.end();) {
    if ((*it)->cancelled) {
      finish(**it, FinishReason::kCancelled);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->cancelled) {
      finish(**it, FinishReason::kCancelled);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
}

// Admits the first waiting request if a slot is free and the cache has room
// for its next prompt chunk; true if it did.
bool Scheduler::admit() {
  if (waiting_.empty()) return false;
  const auto free_slot = std::find(slot_used_.begin(), slot_used_.end(), false);
  if (free_slot == slot_used_.end()) return false;
  Request& r = *waiting_.front();
  // Blocks still arriving from a tier: wait while that beats prefilling them.
  if (tiering_ && !tiering_->ready_to_admit(r.id, r.params.cache_salt, r.tokens)) return false;
  const SeqId seq{static_cast<int32_t>(free_slot - slot_used_.begin())};
  Status configured = kv_.set_salt(seq, r.params.cache_salt);
  if (configured.ok()) configured = kv_.set_press(seq, r.params.press);
  kv_.set_next_use(seq, r.params.next_use_steps);
  if (!configured.ok()) {
    auto owned = std::move(waiting_.front());
    waiting_.pop_front();
    kv_.release(seq);  // back to the cache's salt and press
    finish(*owned, FinishReason::kError, configured);
    return true;
  }
  const int32_t reused = kv_.reuse_prefix(seq, r.tokens);
  const int64_t next_chunk =
      std::min<int64_t>(static_cast<int64_t>(r.tokens.size()) - reused, options_.max_batch_tokens);
  const bool alone = running_.empty();
  if (!alone && kv_.free_capacity_tokens() < next_chunk + options_.admission_reserve_tokens) {
    kv_.release(seq);  // the matched prefix goes back to the cache
    return false;
  }
  auto owned = std::move(waiting_.front());
  waiting_.pop_front();
  owned->slot = seq.value;
  owned->computed = reused;
  owned->prompt_pressed = false;
  owned->relay.clear();
  owned->relay_next = 0;
  if (relay_ && !owned->params.workflow.empty() && kv_.can_rewrite_rows()) {
    // The prompt's last token is always computed: its logits start decoding.
    owned->relay =
        relay_->find(owned->params.workflow, owned->tokens, reused, owned->usage.prompt_tokens - 1);
  }
  kv_.begin_prompt(seq, static_cast<int32_t>(owned->tokens.size()));
  *free_slot = true;
  if (owned->usage.preemptions == 0) {
    owned->usage.reused_tokens = reused;
    owned->usage.queue_seconds = seconds_between(owned->submitted, Clock::now());
  }
  {
    std::lock_guard lock(mutex_);
    if (owned->usage.preemptions == 0) {
      stats_.prompt_tokens += owned->usage.prompt_tokens;
      stats_.reused_tokens += reused;
    }
  }
  running_.push_back(std::move(owned));
  return true;
}

// Back to the front of the queue, to be recomputed from its tokens so far.
void Scheduler::preempt(Request& r) {
  kv_.release(SeqId{r.slot});
  slot_used_[static_cast<size_t>(r.slot)] = false;
  r.slot = -1;
  r.computed = 0;
  ++r.usage.preemptions;
  std::lock_guard lock(mutex_);
  ++stats_.preemptions;
}

bool Scheduler::step() {
  take_incoming();
  retire_stopped();
  while (admit()) {
  }
  for (auto& r : running_) apply_relay(*r);
  if (running_.empty()) {
    const CacheStats cache = kv_.cache_stats();
    std::lock_guard lock(mutex_);
    stats_.cache = cache;
    if (relay_) stats_.relay = public_stats(relay_->stats());
    stats_.waiting = static_cast<int32_t>(waiting_.size());
    stats_.running = 0;
    return false;
  }

  // One batch: decode tokens first (each running request that only needs
  // its last token computed), then prefill chunks in admission order.
  std::vector<ForwardItem> items;
  std::vector<Request*> owners;
  while (true) {
    items.clear();
    owners.clear();
    int32_t budget = options_.max_batch_tokens;
    // Logits rows in batch order, so that the model writes a group of last
    // tokens' logits in place (Model::last_token_logits).
    size_t logits_rows = 0;
    for (int pass = 0; pass < 2; ++pass) {
      for (auto& r : running_) {
        const auto remaining = static_cast<int32_t>(r->tokens.size()) - r->computed;
        if ((pass == 0) != (remaining == 1) || budget == 0) continue;
        int32_t n = std::min(remaining, budget);
        if (r->relay_next < r->relay.size()) {  // stop where a quoted run starts
          n = std::min(n, r->relay[r->relay_next].prompt_begin - r->computed);
          if (n <= 0) continue;
        }
        ForwardItem item;
        item.seq = SeqId{r->slot};
        item.pos0 = r->computed;
        item.tokens = std::span<const int32_t>(r->tokens).subspan(static_cast<size_t>(r->computed),
                                                                  static_cast<size_t>(n));
        const bool completes = n == remaining;
        item.which = completes ? LogitsFor::kLastToken : LogitsFor::kNone;
        item.logits =
            completes ? logits_.data() + logits_rows++ * static_cast<size_t>(n_vocab_) : nullptr;
        items.push_back(item);
        owners.push_back(r.get());
        budget -= n;
      }
    }
    const Clock::time_point started = Clock::now();
    const Status done = model_.forward_batch(items, kv_);
    if (done.ok()) {
      if (tiering_) {
        int64_t prefill = 0;
        for (const ForwardItem& item : items) {
          if (item.tokens.size() > 1) prefill += static_cast<int64_t>(item.tokens.size());
        }
        tiering_->note_prefill(prefill, seconds_between(started, Clock::now()));
      }
      break;
    }
    if (done.code() != StatusCode::kResourceExhausted || running_.size() == 1) {
      // Not a memory shortage, or nothing else to make room: these requests
      // cannot proceed.
      for (auto& r : running_) finish(*r, FinishReason::kError, done);
      running_.clear();
      return true;
    }
    // Preempt the most recently admitted request and try again.
    std::unique_ptr<Request> victim = std::move(running_.back());
    running_.pop_back();
    preempt(*victim);
    waiting_.push_front(std::move(victim));
  }

  const Clock::time_point now = Clock::now();
  int64_t computed = 0;
  int64_t generated = 0;
  std::vector<double> ttft, tpot;
  for (size_t i = 0; i < items.size(); ++i) {
    Request& r = *owners[i];
    const auto n = static_cast<int32_t>(items[i].tokens.size());
    const bool decode = n == 1 && r.prompt_pressed;
    r.computed += n;
    if (!decode) {
      computed += n;
      r.usage.computed_tokens += n;
    }
    if (items[i].which == LogitsFor::kNone) continue;
    const SeqId seq{r.slot};
    // The prompt (or the recomputation) is complete: its press runs now. A
    // press that cannot fit leaves the sequence as it was; generation goes on.
    if (!r.prompt_pressed) {
      (void)kv_.end_prompt(seq);
      r.prompt_pressed = true;
    } else {
      (void)kv_.end_decode_step(seq);
    }
    std::span<float> logits(items[i].logits, static_cast<size_t>(n_vocab_));
    const int32_t token = r.sampler->sample(logits, r.tokens);
    r.tokens.push_back(token);
    ++r.generated;
    ++generated;
    if (!r.has_first_token) {
      r.has_first_token = true;
      r.first_token = now;
      r.usage.time_to_first_token = seconds_between(r.submitted, now);
      ttft.push_back(r.usage.time_to_first_token);
    } else {
      tpot.push_back(seconds_between(r.last_token, now));
    }
    r.last_token = now;
    RequestEvent event;
    event.id = r.id;
    event.token = token;
    const bool keep_going = !r.sink || r.sink(event);
    FinishReason reason = FinishReason::kNone;
    if (!keep_going) {
      reason = FinishReason::kStoppedByUser;
    } else if (r.params.stop_at_end_of_generation && options_.is_end_of_generation &&
               options_.is_end_of_generation(token)) {
      reason = FinishReason::kEndOfText;
    } else if (r.generated >= r.params.max_tokens) {
      reason = FinishReason::kLength;
    } else if (static_cast<int32_t>(r.tokens.size()) > options_.n_ctx) {
      reason = FinishReason::kContextFull;
    }
    if (reason != FinishReason::kNone) {
      r.tokens.pop_back();  // never computed
      finish(r, reason);
      r.cancelled = true;  // removed below
    }
  }
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [](const std::unique_ptr<Request>& r) { return r->cancelled; }),
                 running_.end());
  const CacheStats cache = kv_.cache_stats();
  std::lock_guard lock(mutex_);
  stats_.cache = cache;
  if (relay_) stats_.relay = public_stats(relay_->stats());
  ++stats_.steps;
  stats_.computed_tokens += computed;
  stats_.generated_tokens += generated;
  for (double s : ttft) stats_.time_to_first_token.add(s);
  for (double s : tpot) stats_.time_per_output_token.add(s);
  stats_.waiting = static_cast<int32_t>(waiting_.size());
  stats_.running = static_cast<int32_t>(running_.size());
  return true;
}

void Scheduler::run() {
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    if (step()) continue;
    std::unique_lock lock(mutex_);
    if (stopping_) break;
    auto has_work = [&] {
      return stopping_ || tier_event_ || !incoming_.empty() || !cancels_.empty();
    };
    if (tiering_ && tiering_->fetching() && !waiting_.empty()) {
      // A queued request waits for its blocks, at most until recomputing
      // them would have been faster: look again now and then.
      wake_.wait_for(lock, std::chrono::milliseconds(5), has_work);
    } else {
      wake_.wait(lock, has_work);
    }
    tier_event_ = false;
    if (stopping_) break;
  }
  // Whatever is left is cancelled.
  take_incoming();
  for (auto& r : running_) finish(*r, FinishReason::kCancelled);
  running_.clear();
  for (auto& r : waiting_) finish(*r, FinishReason::kCancelled);
  waiting_.clear();
}

}  // namespace kvforge
