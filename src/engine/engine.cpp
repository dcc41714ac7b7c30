#include "kvforge/engine.h"

#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "engine/scheduler.h"
#include "gguf/gguf.h"
#include "kv/kv_cache_factory.h"
#include "kv/press/kv_press.h"
#include "model/model.h"
#include "tier/tier_factory.h"
#include "tokenizer/tokenizer.h"

namespace kvforge {

struct Engine::Impl {
  std::unique_ptr<Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::unique_ptr<KvCache> kv;
  std::unique_ptr<Scheduler> scheduler;
  std::thread loop;
  ModelInfo info;

  ~Impl() {
    if (scheduler) scheduler->stop();
    if (loop.joinable()) loop.join();
  }
};

Result<std::unique_ptr<Engine>> Engine::create(const EngineOptions& o) {
  if (o.parallel < 1 || o.parallel > 1024) {
    return invalid_argument(fmt::format("parallel must be in [1, 1024], got {}", o.parallel));
  }
  if (o.n_batch < o.parallel) {
    return invalid_argument(
        fmt::format("the batch ({} tokens) must hold at least one token per parallel sequence ({})",
                    o.n_batch, o.parallel));
  }
  if (o.n_ctx < 0 || o.n_threads < 0) {
    return invalid_argument("n_ctx and n_threads must be >= 0");
  }
  if (o.relay.min_tokens < 4) {
    return invalid_argument(
        fmt::format("relay min_tokens must be at least 4, got {}", o.relay.min_tokens));
  }
  if (!(o.relay.recompute_ratio >= 0 && o.relay.recompute_ratio <= 1)) {
    return invalid_argument(
        fmt::format("relay recompute_ratio must be in [0, 1], got {}", o.relay.recompute_ratio));
  }
  size_t relay_bytes = 0;
  if (!o.relay.memory.empty() && o.relay.memory != "0") {
    auto parsed = parse_byte_size(o.relay.memory);
    if (!parsed.ok()) return parsed.status().with_context("relay memory");
    relay_bytes = *parsed;
  }
  KVF_ASSIGN_OR_RETURN(const TierLoadPolicy tier_load, parse_tier_load_policy(o.kv.tier_load));
  if (!o.kv.tiers.empty() && !o.kv.prefix_sharing) {
    return invalid_argument("KV tiers hold prefix-cache blocks: they need prefix sharing on");
  }
  // Tiers first: a bad spec is reported before the model is loaded.
  std::vector<std::unique_ptr<KvTier>> tiers;
  for (const std::string& spec : o.kv.tiers) {
    KVF_ASSIGN_OR_RETURN(std::unique_ptr<KvTier> tier, make_kv_tier(spec));
    tiers.push_back(std::move(tier));
  }
  auto impl = std::make_unique<Impl>();
  ModelOptions mo;
  mo.n_threads = o.n_threads;
  mo.max_batch = o.n_batch;
  mo.repack_weights = o.repack_weights;
  KVF_ASSIGN_OR_RETURN(impl->model, Model::load(o.model_path, mo));
  auto tok = tokenizer::Tokenizer::from_gguf(impl->model->file());
  if (!tok.ok()) return tok.status().with_context(o.model_path);
  impl->tokenizer = std::move(tok).value();
  const ModelConfig& c = impl->model->config();
  const int32_t n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min(c.n_ctx_train, 4096);

  KvCacheOptions kvo;
  kvo.codec = o.kv.codec;
  kvo.codec_layers = o.kv.codec_layers;
  kvo.block_tokens = o.kv.block_tokens;
  if (!o.kv.memory.empty()) {
    KVF_ASSIGN_OR_RETURN(kvo.memory_bytes, parse_byte_size(o.kv.memory));
  }
  kvo.n_ctx = n_ctx;
  kvo.n_seq = o.parallel;
  kvo.model_fingerprint = impl->model->fingerprint();
  kvo.cache_salt = o.kv.cache_salt;
  kvo.prefix_sharing = o.kv.prefix_sharing;
  kvo.press = o.kv.press;
  kvo.press_layers = o.kv.press_layers;
  // Without a budget, room for every sequence plus cached prefixes.
  kvo.default_budget_fraction = 0.25;
  KVF_ASSIGN_OR_RETURN(impl->kv, make_kv_cache(impl->model->kv_shape(), kvo));

  ModelInfo& info = impl->info;
  info.path = o.model_path;
  info.name = c.name;
  info.architecture = std::string(c.arch->name);
  auto chat_template = impl->model->file().find_string("tokenizer.chat_template");
  if (chat_template.ok() && chat_template->has_value()) info.chat_template = **chat_template;
  info.n_ctx = n_ctx;
  info.n_ctx_train = c.n_ctx_train;
  info.n_vocab = c.n_vocab;
  info.n_layers = c.n_layers;
  info.n_heads = c.n_heads;
  info.n_kv_heads = c.n_kv_heads;
  info.head_dim = c.head_dim;
  info.n_params = impl->model->n_params();
  info.fingerprint = impl->model->fingerprint();
  info.bos_id = impl->tokenizer->bos_id().value_or(-1);
  info.eos_id = impl->tokenizer->eos_id().value_or(-1);
  info.kv_description = impl->kv->describe();
  info.kv_bytes_per_token = static_cast<int64_t>(impl->kv->bytes_per_token());

  SchedulerOptions so;
  so.max_running = o.parallel;
  so.max_batch_tokens = o.n_batch;
  so.n_ctx = n_ctx;
  so.relay_memory_bytes = relay_bytes;
  so.relay_min_tokens = o.relay.min_tokens;
  so.relay_recompute_ratio = o.relay.recompute_ratio;
  const tokenizer::Tokenizer* t = impl->tokenizer.get();
  so.is_end_of_generation = [t](int32_t id) { return t->is_end_of_generation(id); };
  impl->scheduler = std::make_unique<Scheduler>(*impl->model, *impl->kv, so);
  if (!tiers.empty()) impl->scheduler->attach_tiers(std::move(tiers), tier_load);
  Scheduler* scheduler = impl->scheduler.get();
  impl->loop = std::thread([scheduler] { scheduler->run(); });
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

const ModelInfo& Engine::info() const {
  return impl_->info;
}

std::vector<int32_t> Engine::tokenize(std::string_view text, bool add_special,
                                      bool parse_special) const {
  return impl_->tokenizer->encode(text, add_special, parse_special);
}

std::string Engine::token_to_piece(int32_t id) const {
  return impl_->tokenizer->token_to_piece(id);
}

std::string Engine::detokenize(std::span<const int32_t> ids, bool skip_special) const {
  return impl_->tokenizer->decode(ids, skip_special);
}

bool Engine::is_end_of_generation(int32_t id) const {
  return impl_->tokenizer->is_end_of_generation(id);
}

Result<RequestId> Engine::submit(RequestParams params, RequestSink sink) {
  KVF_RETURN_IF_ERROR(check_press_spec(params.press));
  return impl_->scheduler->submit(std::move(params), std::move(sink));
}

void Engine::cancel(RequestId id) {
  impl_->scheduler->cancel(id);
}

ServingStats Engine::stats() const {
  return impl_->scheduler->stats();
}

Status check_press_spec(std::string_view spec) {
  if (spec.empty()) return Status();
  auto press = make_kv_press(spec);
  if (!press.ok()) return press.status().with_context("press");
  return Status();
}

}  // namespace kvforge
