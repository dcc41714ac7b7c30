// h2o: Heavy-Hitter Oracle (Zhang et al., NeurIPS'23) — keep the rows with
// the largest attention accumulated over every query so far (the whole
// prompt, then each decode step). norm=1 divides a row's sum by the number
// of captured queries that could attend to it, removing the causal bias
// toward old tokens (ZipCache's normalized attention, He et al. 2024).
#include <algorithm>

#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"

namespace kvforge::press {
namespace {

class H2oPress final : public ScoringPress {
 public:
  H2oPress(const PressBudget& budget, bool normalize)
      : ScoringPress(budget), normalize_(normalize) {}
  [[nodiscard]] std::string name() const override {
    return "h2o" + budget_suffix(budget()) + (normalize_ ? ":norm=1" : "");
  }
  [[nodiscard]] PressNeeds needs() const override {
    PressNeeds n;
    n.prompt_queries = -1;
    n.decode_queries = true;
    return n;
  }

 protected:
  void score(const PressLayer& layer, std::vector<std::vector<float>>& scores) const override {
    for (size_t h = 0; h < layer.heads.size(); ++h) {
      const PressCandidates& c = layer.heads[h];
      scores[h].assign(c.attention.begin(), c.attention.end());
      if (!normalize_) continue;
      for (size_t r = 0; r < c.positions.size(); ++r) {
        const int32_t seen_by = layer.captured_end - std::max(layer.captured_first, c.positions[r]);
        scores[h][r] /= static_cast<float>(std::max(1, seen_by));
      }
    }
  }

 private:
  bool normalize_;
};

}  // namespace

Result<std::unique_ptr<KvPress>> make_h2o_press(const PressBudget& budget, PressOptions& options) {
  KVF_ASSIGN_OR_RETURN(const int32_t norm, options.take_count("norm", 0, 0, 1));
  KVF_RETURN_IF_ERROR(options.finish(fmt::format("{}, norm", kBudgetKeys)));
  return std::unique_ptr<KvPress>(new H2oPress(budget, norm == 1));
}

}  // namespace kvforge::press
