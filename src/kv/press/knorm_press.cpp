// knorm: keep the keys with the smallest L2 norm (Devoto et al., 2024: a low
// key norm goes with high attention). Needs no attention scores, so it works
// under any attention kernel.
#include <cmath>

#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"

namespace kvforge::press {
namespace {

class KnormPress final : public ScoringPress {
 public:
  explicit KnormPress(const PressBudget& budget) : ScoringPress(budget) {}
  [[nodiscard]] std::string name() const override { return "knorm" + budget_suffix(budget()); }
  [[nodiscard]] PressNeeds needs() const override {
    PressNeeds n;
    n.keys = true;
    return n;
  }

 protected:
  void score(const PressLayer& layer, std::vector<std::vector<float>>& scores) const override {
    const auto d = static_cast<size_t>(layer.head_dim);
    for (size_t h = 0; h < layer.heads.size(); ++h) {
      const PressCandidates& c = layer.heads[h];
      scores[h].resize(c.positions.size());
      for (size_t r = 0; r < c.positions.size(); ++r) {
        double sum = 0;
        for (size_t i = 0; i < d; ++i) sum += double(c.keys[r * d + i]) * c.keys[r * d + i];
        scores[h][r] = -static_cast<float>(std::sqrt(sum));
      }
    }
  }
};

}  // namespace

Result<std::unique_ptr<KvPress>> make_knorm_press(const PressBudget& budget,
                                                  PressOptions& options) {
  KVF_RETURN_IF_ERROR(options.finish(kBudgetKeys));
  return std::unique_ptr<KvPress>(new KnormPress(budget));
}

}  // namespace kvforge::press
