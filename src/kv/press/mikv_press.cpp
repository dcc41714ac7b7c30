// mikv: MiKV, "No Token Left Behind" (Yang et al., arXiv 2402.18096) — a
// scorer press chooses the rows each head keeps at full precision (the
// layer's codec); every row it would evict is demoted to a low-bit codec
// instead of dropped. Demoted rows stay demoted (a later press does not
// revisit them) and do not count against the budget, which is the budget of
// full-precision rows; memory is the budget's rows in the layer's codec plus
// the rest in the low-bit one.
//
// Keys: scorer (default h2o, the paper's importance selector), low (int4,
// int4h or int8; default int4: the paper keeps evicted tokens at 2-4 bits
// with per-token round-to-nearest, which our int4 is), and the scorer's own
// keys. Only token-granular codecs without a full-precision window can hold
// demoted rows: the cache re-encodes demoted pages when it presses again and
// relies on re-encoding a decoded row being exact. The paper's outlier-channel
// balancing of queries and keys is not implemented.
#include <algorithm>

#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"

namespace kvforge::press {
namespace {

constexpr std::string_view kLowCodecs[] = {"int4", "int4h", "int8"};

class MikvPress final : public KvPress {
 public:
  MikvPress(const PressBudget& budget, std::string scorer_name, std::unique_ptr<KvPress> scorer,
            std::string low)
      : KvPress(budget),
        scorer_name_(std::move(scorer_name)),
        scorer_(std::move(scorer)),
        low_(std::move(low)) {}
  [[nodiscard]] std::string name() const override {
    return fmt::format("mikv{}:low={}{}", budget_suffix(budget()), low_,
                       scorer_suffix(scorer_name_, *scorer_));
  }
  [[nodiscard]] PressNeeds needs() const override { return scorer_->needs(); }
  [[nodiscard]] std::string demotion_codec() const override { return low_; }

  void choose(const PressLayer& layer, std::span<HeadChoice> choices) const override {
    scorer_->choose(layer, choices);
    for (size_t h = 0; h < choices.size(); ++h) {
      HeadChoice& choice = choices[h];
      const auto rows = static_cast<int32_t>(layer.heads[h].positions.size());
      choice.demote.clear();
      size_t next = 0;  // choice.keep is ascending
      for (int32_t r = 0; r < rows; ++r) {
        if (next < choice.keep.size() && choice.keep[next] == r) {
          ++next;
          continue;
        }
        choice.demote.push_back(r);
      }
    }
  }

 private:
  std::string scorer_name_;
  std::unique_ptr<KvPress> scorer_;
  std::string low_;
};

}  // namespace

Result<std::unique_ptr<KvPress>> make_mikv_press(const PressBudget& budget, PressOptions& options) {
  KVF_ASSIGN_OR_RETURN(const std::string scorer_name, options.take_text("scorer", "h2o"));
  KVF_ASSIGN_OR_RETURN(const std::string low, options.take_text("low", "int4"));
  if (std::find(std::begin(kLowCodecs), std::end(kLowCodecs), low) == std::end(kLowCodecs)) {
    return invalid_argument(
        fmt::format("press 'mikv': low={} must be int4, int4h or int8 (a token-granular codec "
                    "without a full-precision window)",
                    low));
  }
  options.add_valid_keys("scorer, low");
  KVF_ASSIGN_OR_RETURN(std::unique_ptr<KvPress> scorer,
                       make_scorer_press(scorer_name, budget, options));
  return std::unique_ptr<KvPress>(new MikvPress(budget, scorer_name, std::move(scorer), low));
}

}  // namespace kvforge::press
