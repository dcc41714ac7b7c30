// random: every candidate gets a seeded pseudo-random score (a hash of seed,
// layer, head and position), the baseline any press must beat.
#include <xxhash.h>

#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"

namespace kvforge::press {
namespace {

class RandomPress final : public ScoringPress {
 public:
  explicit RandomPress(const PressBudget& budget) : ScoringPress(budget) {}
  [[nodiscard]] std::string name() const override { return "random" + budget_suffix(budget()); }
  [[nodiscard]] PressNeeds needs() const override { return {}; }

 protected:
  void score(const PressLayer& layer, std::vector<std::vector<float>>& scores) const override {
    for (size_t h = 0; h < layer.heads.size(); ++h) {
      const auto& positions = layer.heads[h].positions;
      scores[h].resize(positions.size());
      for (size_t r = 0; r < positions.size(); ++r) {
        const int32_t key[3] = {layer.layer, static_cast<int32_t>(h), positions[r]};
        const uint64_t hash = XXH3_64bits_withSeed(key, sizeof(key), budget().seed);
        scores[h][r] = static_cast<float>(hash >> 40);  // 24 bits: exact in a float
      }
    }
  }
};

}  // namespace

Result<std::unique_ptr<KvPress>> make_random_press(const PressBudget& budget,
                                                   PressOptions& options) {
  KVF_RETURN_IF_ERROR(options.finish(kBudgetKeys));
  return std::unique_ptr<KvPress>(new RandomPress(budget));
}

}  // namespace kvforge::press
