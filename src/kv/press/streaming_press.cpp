// streaming: StreamingLLM (Xiao et al., ICLR'24) — the first `sinks`
// positions ("attention sinks") and the newest tokens; everything between
// goes. Positions are kept as they were (keys keep their rotation), so unlike
// the paper's cache-position variant it does not extend the model's context.
#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"

namespace kvforge::press {
namespace {

class StreamingPress final : public ScoringPress {
 public:
  explicit StreamingPress(const PressBudget& budget) : ScoringPress(budget) {}
  [[nodiscard]] std::string name() const override { return "streaming" + budget_suffix(budget()); }
  [[nodiscard]] PressNeeds needs() const override { return {}; }

 protected:
  // Newer is better: the kept candidates are the newest ones.
  void score(const PressLayer& layer, std::vector<std::vector<float>>& scores) const override {
    for (size_t h = 0; h < layer.heads.size(); ++h) {
      const auto& positions = layer.heads[h].positions;
      scores[h].assign(positions.begin(), positions.end());
    }
  }
};

}  // namespace

Result<std::unique_ptr<KvPress>> make_streaming_press(const PressBudget& budget,
                                                      PressOptions& options) {
  KVF_RETURN_IF_ERROR(options.finish(kBudgetKeys));
  if (budget.adaptive) {
    return invalid_argument("press 'streaming': adaptive=1 needs scores that differ by head");
  }
  return std::unique_ptr<KvPress>(new StreamingPress(budget));
}

}  // namespace kvforge::press
