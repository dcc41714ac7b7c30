#include "kv/kv_cache_factory.h"

#include <cmath>
#include <cstdlib>

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
  KVF_ASSIGN_OR_RETURN(auto cache, PagedKvCache::create(shape, paged));
  std::unique_ptr<KvCache> result = std::move(cache);
  return result;
}

Result<size_t> parse_byte_size(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !(value > 0) || !std::isfinite(value)) {
    return invalid_argument(
        fmt::format("'{}' is not a memory size (use e.g. 512MiB or 4GiB)", text));
  }
  const std::string unit(end);
  double scale = 0;
  if (unit.empty() || unit == "B") {
    scale = 1;
  } else if (unit == "KiB" || unit == "K" || unit == "k") {
    scale = 1024.0;
  } else if (unit == "MiB" || unit == "M") {
    scale = 1024.0 * 1024;
  } else if (unit == "GiB" || unit == "G") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "KB") {
    scale = 1e3;
  } else if (unit == "MB") {
    scale = 1e6;
  } else if (unit == "GB") {
    scale = 1e9;
  } else {
    return invalid_argument(fmt::format(
        "unknown unit '{}' in memory size '{}' (use B, KiB, MiB, GiB, KB, MB, GB)", unit, text));
  }
  const double bytes = value * scale;
  if (bytes >= 1e18) return invalid_argument(fmt::format("memory size '{}' is too large", text));
  return static_cast<size_t>(bytes);
}

}  // namespace kvforge
