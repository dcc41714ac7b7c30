// merge: merging near-duplicate keys instead of dropping them (in the spirit
// of Chelsea, Hu et al., arXiv 2506.11418, and of the "pivot merge" that
// KVCache-Factory applies to SnapKV's evicted rows). A scorer press chooses
// the rows each head keeps; every row it would drop whose key has cosine
// similarity >= sim with a kept row of the same chunk (chunk candidate rows,
// in position order) joins the most similar such row (the lower row on
// ties). A kept row with members becomes one merged group: the cache stores
// the count-weighted mean of their keys and values at the newest member's
// position, with score bias log(count), so a group of identical tokens gets
// the attention weight they had together. The rest is dropped. The rows a
// head holds stay within the scorer's budget.
//
// Keys: scorer (default snapkv, whose evicted rows KVCache-Factory merges),
// sim (default 0.9), chunk (default 64 candidate rows: each dropped row is
// compared with at most the kept rows of its chunk, as Chelsea works within
// chunks), and the scorer's own keys.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"

namespace kvforge::press {
namespace {

class MergePress final : public KvPress {
 public:
  MergePress(const PressBudget& budget, std::string scorer_name, std::unique_ptr<KvPress> scorer,
             double similarity, int32_t chunk)
      : KvPress(budget),
        scorer_name_(std::move(scorer_name)),
        scorer_(std::move(scorer)),
        similarity_(similarity),
        chunk_(chunk) {}
  [[nodiscard]] std::string name() const override {
    return fmt::format("merge{}:sim={}:chunk={}{}", budget_suffix(budget()), similarity_, chunk_,
                       scorer_suffix(scorer_name_, *scorer_));
  }
  [[nodiscard]] PressNeeds needs() const override {
    PressNeeds n = scorer_->needs();
    n.keys = true;
    return n;
  }

  void choose(const PressLayer& layer, std::span<HeadChoice> choices) const override {
    scorer_->choose(layer, choices);
    const auto d = static_cast<size_t>(layer.head_dim);
    for (size_t h = 0; h < choices.size(); ++h) {
      const PressCandidates& c = layer.heads[h];
      const auto rows = static_cast<int32_t>(c.positions.size());
      std::vector<double> norm(static_cast<size_t>(rows));
      for (size_t r = 0; r < norm.size(); ++r) {
        double s = 0;
        for (size_t e = 0; e < d; ++e) s += double(c.keys[r * d + e]) * c.keys[r * d + e];
        norm[r] = std::sqrt(s);
      }
      HeadChoice& choice = choices[h];
      // kept[r]: r's index in choice.keep, or -1.
      std::vector<int32_t> kept(static_cast<size_t>(rows), -1);
      for (size_t i = 0; i < choice.keep.size(); ++i) {
        kept[static_cast<size_t>(choice.keep[i])] = static_cast<int32_t>(i);
      }
      std::vector<std::vector<int32_t>> members(choice.keep.size());
      for (int32_t first = 0; first < rows; first += chunk_) {
        const int32_t end = std::min(rows, first + chunk_);
        for (int32_t r = first; r < end; ++r) {
          if (kept[static_cast<size_t>(r)] >= 0 || norm[static_cast<size_t>(r)] == 0) continue;
          int32_t best = -1;
          double best_sim = -INFINITY;
          for (int32_t k = first; k < end; ++k) {
            if (kept[static_cast<size_t>(k)] < 0 || norm[static_cast<size_t>(k)] == 0) continue;
            double dot = 0;
            for (size_t e = 0; e < d; ++e) {
              dot += double(c.keys[static_cast<size_t>(r) * d + e]) *
                     c.keys[static_cast<size_t>(k) * d + e];
            }
            const double sim = dot / (norm[static_cast<size_t>(r)] * norm[static_cast<size_t>(k)]);
            if (sim > best_sim) {  // strictly: ties keep the lower row
              best = k;
              best_sim = sim;
            }
          }
          if (best >= 0 && best_sim >= similarity_)
            members[static_cast<size_t>(kept[static_cast<size_t>(best)])].push_back(r);
        }
      }
      std::vector<int32_t> keep;
      for (size_t i = 0; i < choice.keep.size(); ++i) {
        if (members[i].empty()) {
          keep.push_back(choice.keep[i]);
          continue;
        }
        std::vector<int32_t>& group = choice.merged.emplace_back(std::move(members[i]));
        group.push_back(choice.keep[i]);
        std::sort(group.begin(), group.end());
      }
      choice.keep = std::move(keep);
    }
  }

 private:
  std::string scorer_name_;
  std::unique_ptr<KvPress> scorer_;
  double similarity_;
  int32_t chunk_;
};

}  // namespace

Result<std::unique_ptr<KvPress>> make_merge_press(const PressBudget& budget,
                                                  PressOptions& options) {
  KVF_ASSIGN_OR_RETURN(const std::string scorer_name, options.take_text("scorer", "snapkv"));
  KVF_ASSIGN_OR_RETURN(const double similarity, options.take_number("sim", 0.9, -1, 1));
  KVF_ASSIGN_OR_RETURN(const int32_t chunk, options.take_count("chunk", 64, 1, 1 << 20));
  options.add_valid_keys("scorer, sim, chunk");
  KVF_ASSIGN_OR_RETURN(std::unique_ptr<KvPress> scorer,
                       make_scorer_press(scorer_name, budget, options));
  return std::unique_ptr<KvPress>(
      new MergePress(budget, scorer_name, std::move(scorer), similarity, chunk));
}

}  // namespace kvforge::press
