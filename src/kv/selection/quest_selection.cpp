// quest: a block's score is the upper bound of its keys' scores that the
// element-wise min and max of its keys give (Tang et al., "Quest:
// Query-Aware Sparsity for Efficient Long-Context LLM Inference", 2024),
// maximised over the KV head's query heads: a block any of the group's
// heads may attend to strongly is read for all of them.
#include "kv/selection/key_bounds.h"
#include "kv/selection/selection_factories.h"

namespace kvforge::selection {
namespace {

class QuestSelection final : public KvSelection {
 public:
  explicit QuestSelection(const SelectionBudget& budget) : KvSelection(budget) {}

  [[nodiscard]] std::string name() const override { return "quest" + budget_spec(budget()); }
  [[nodiscard]] SelectionNeeds needs() const override { return {.key_bounds = true}; }

  void score(const SelectionHead& head, std::span<float> scores) const override {
    KVF_CHECK(scores.size() == head.block_ids.size() && head.key_bounds != nullptr);
    key_bound_scores(head.queries, head.group, head.head_dim, head.key_bounds,
                     head.key_bounds_stride, head.block_ids, scores.data());
  }
};

}  // namespace

Result<std::unique_ptr<KvSelection>> make_quest_selection(const SelectionBudget& budget,
                                                          SelectionOptions& options) {
  KVF_RETURN_IF_ERROR(options.finish("tokens, window, sinks, reuse, sim"));
  return std::unique_ptr<KvSelection>(new QuestSelection(budget));
}

}  // namespace kvforge::selection
