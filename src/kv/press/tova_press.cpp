// tova: Token Omission Via Attention (Oren et al., EMNLP'24) — keep the rows
// the current (newest) query attends to most, its attention averaged over all
// query heads, so every KV head of a layer keeps the same positions. At the
// end of the prompt the current query is the prompt's last; during decode,
// with every=N or max=N, the press runs again on the newest decode query's
// attention (the paper evicts one token per step once over budget; the
// cache presses whole blocks, so it evicts when a block's worth is over).
#include <map>

#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"

namespace kvforge::press {
namespace {

class TovaPress final : public ScoringPress {
 public:
  explicit TovaPress(const PressBudget& budget) : ScoringPress(budget) {}
  [[nodiscard]] std::string name() const override { return "tova" + budget_suffix(budget()); }
  [[nodiscard]] PressNeeds needs() const override {
    PressNeeds n;
    n.prompt_queries = 1;
    // Decode queries only when the press runs again during decode.
    n.decode_queries = budget().every > 0 || budget().max_rows > 0;
    n.newest_query_only = n.decode_queries;
    return n;
  }

 protected:
  // Every head's score of a position is the layer's mean over KV heads (each
  // already the mean over its group's query heads): the mean over all query
  // heads. Heads normally hold the same positions; a position some head
  // lacks counts as zero attention from it.
  void score(const PressLayer& layer, std::vector<std::vector<float>>& scores) const override {
    std::map<int32_t, double> mean;
    for (const PressCandidates& c : layer.heads) {
      for (size_t r = 0; r < c.positions.size(); ++r) {
        mean[c.positions[r]] += c.attention.empty() ? 0.0 : double(c.attention[r]);
      }
    }
    for (size_t h = 0; h < layer.heads.size(); ++h) {
      const PressCandidates& c = layer.heads[h];
      scores[h].resize(c.positions.size());
      for (size_t r = 0; r < c.positions.size(); ++r) {
        scores[h][r] = static_cast<float>(mean[c.positions[r]] / double(layer.n_kv_heads));
      }
    }
  }
};

}  // namespace

Result<std::unique_ptr<KvPress>> make_tova_press(const PressBudget& budget, PressOptions& options) {
  KVF_RETURN_IF_ERROR(options.finish(kBudgetKeys));
  if (budget.adaptive) {
    return invalid_argument(
        "press 'tova': adaptive=1 does not apply, tova keeps the same rows in every head");
  }
  return std::unique_ptr<KvPress>(new TovaPress(budget));
}

}  // namespace kvforge::press
