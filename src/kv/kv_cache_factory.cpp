#include "kv/kv_cache_factory.h"

#include <fmt/format.h>

#include "kv/kv_codec_plan.h"
#include "kv/paged_kv_cache.h"

namespace kvforge {

Result<std::unique_ptr<KvCache>> make_kv_cache(const KvShape& shape,
                                               const KvCacheOptions& options) {
  PagedKvCacheOptions paged;
  KVF_ASSIGN_OR_RETURN(paged.layer_codecs,
                       plan_kv_codecs(options.codec, options.codec_layers, shape.n_layers));
  bool uses_kivi = false;
  for (const LayerCodecSpec& spec : paged.layer_codecs) {
    uses_kivi = uses_kivi || spec.key.starts_with("kivi") || spec.value.starts_with("kivi");
  }
  paged.block_tokens = options.block_tokens > 0 ? options.block_tokens : (uses_kivi ? 32 : 16);
  paged.n_ctx = options.n_ctx;
  paged.n_seq = options.n_seq;
  paged.model_fingerprint = options.model_fingerprint;
  paged.cache_salt = options.cache_salt;
  paged.prefix_sharing = options.prefix_sharing;
  paged.memory_bytes = options.memory_bytes;
  paged.default_budget_fraction = options.default_budget_fraction;
  if (!options.press.empty() || !options.press_layers.empty()) {
    KVF_ASSIGN_OR_RETURN(paged.layer_presses,
                         plan_kv_presses(options.press, options.press_layers, shape.n_layers));
  }
  KVF_ASSIGN_OR_RETURN(paged.selection, plan_kv_selection(options.select));
  KVF_ASSIGN_OR_RETURN(auto cache, PagedKvCache::create(shape, paged));
  std::unique_ptr<KvCache> result = std::move(cache);
  return result;
}

}  // namespace kvforge
