// snapkv: SnapKV (Li et al., NeurIPS'24) — at the end of the prompt, the
// attention of its last w queries (the observation window) to every earlier
// row, summed, smoothed with a 1-D pooling kernel over neighbouring rows so
// that the neighbours of a hit are kept with it, and the best rows per head
// kept. Defaults: w = 32 and kernel = 5 as the authors' code; pool=avg (max
// optional).
#include <algorithm>

#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"
#include "kv/press/snapkv_scores.h"

namespace kvforge::press {
namespace {

class SnapKvPress final : public ScoringPress {
 public:
  SnapKvPress(const PressBudget& budget, SnapKvParams params)
      : ScoringPress(budget), params_(params) {}
  [[nodiscard]] std::string name() const override {
    return fmt::format("snapkv{}:w={}:kernel={}:pool={}", budget_suffix(budget()), params_.window,
                       params_.kernel, params_.max_pool ? "max" : "avg");
  }
  [[nodiscard]] PressNeeds needs() const override {
    PressNeeds n;
    n.prompt_queries = params_.window;
    return n;
  }

 protected:
  void score(const PressLayer& layer, std::vector<std::vector<float>>& scores) const override {
    snapkv_scores(layer, params_, scores);
  }

 private:
  SnapKvParams params_;
};

}  // namespace

Result<SnapKvParams> take_snapkv_params(PressOptions& options) {
  SnapKvParams p;
  KVF_ASSIGN_OR_RETURN(p.window, options.take_count("w", p.window, 1, 1 << 16));
  KVF_ASSIGN_OR_RETURN(p.kernel, options.take_count("kernel", p.kernel, 1, 255));
  if (p.kernel % 2 == 0) {
    return invalid_argument(fmt::format("press '{}': kernel={} must be odd (centred pooling)",
                                        options.name(), p.kernel));
  }
  KVF_ASSIGN_OR_RETURN(const std::string pool, options.take_text("pool", "avg"));
  if (pool != "avg" && pool != "max") {
    return invalid_argument(
        fmt::format("press '{}': pool={} must be avg or max", options.name(), pool));
  }
  p.max_pool = pool == "max";
  return p;
}

void snapkv_scores(const PressLayer& layer, const SnapKvParams& params,
                   std::vector<std::vector<float>>& scores) {
  const int32_t half = params.kernel / 2;
  for (size_t h = 0; h < layer.heads.size(); ++h) {
    const std::span<const float> a = layer.heads[h].attention;
    const auto n = static_cast<int32_t>(a.size());
    std::vector<float>& out = scores[h];
    out.assign(static_cast<size_t>(n), 0.0f);
    for (int32_t r = 0; r < n; ++r) {
      const int32_t lo = std::max(0, r - half);
      const int32_t hi = std::min(n - 1, r + half);
      float pooled = params.max_pool ? a[static_cast<size_t>(lo)] : 0.0f;
      for (int32_t i = lo; i <= hi; ++i) {
        const float v = a[static_cast<size_t>(i)];
        pooled = params.max_pool ? std::max(pooled, v) : pooled + v;
      }
      // Average over the kernel's full width (zero padding at the ends).
      out[static_cast<size_t>(r)] =
          params.max_pool ? pooled : pooled / static_cast<float>(params.kernel);
    }
  }
}

Result<std::unique_ptr<KvPress>> make_snapkv_press(const PressBudget& budget,
                                                   PressOptions& options) {
  KVF_ASSIGN_OR_RETURN(const SnapKvParams params, take_snapkv_params(options));
  KVF_RETURN_IF_ERROR(options.finish(fmt::format("{}, w, kernel, pool", kBudgetKeys)));
  return std::unique_ptr<KvPress>(new SnapKvPress(budget, params));
}

}  // namespace kvforge::press
