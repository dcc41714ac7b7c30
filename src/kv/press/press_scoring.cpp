#include "kv/press/press_scoring.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace kvforge::press {
namespace {

// a ranks before b: higher score, NaN last, then lower index.
bool ranks_before(float sa, int32_t a, float sb, int32_t b) {
  const bool na = std::isnan(sa);
  const bool nb = std::isnan(sb);
  if (na != nb) return nb;
  if (!na && sa != sb) return sa > sb;
  return a < b;
}

}  // namespace

std::vector<int32_t> top_rows(std::span<const float> scores, int32_t k) {
  const auto n = static_cast<int32_t>(scores.size());
  k = std::clamp(k, 0, n);
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const auto by_rank = [&](int32_t a, int32_t b) {
    return ranks_before(scores[static_cast<size_t>(a)], a, scores[static_cast<size_t>(b)], b);
  };
  std::nth_element(order.begin(), order.begin() + k, order.end(), by_rank);
  order.resize(static_cast<size_t>(k));
  std::sort(order.begin(), order.end());
  return order;
}

void adaptive_top_rows(std::span<const std::vector<float>> scores, int64_t total,
                       int32_t floor_rows, std::vector<std::vector<int32_t>>& keep) {
  const auto n_heads = static_cast<int32_t>(scores.size());
  keep.assign(static_cast<size_t>(n_heads), {});
  std::vector<std::vector<bool>> taken(static_cast<size_t>(n_heads));
  int64_t left = total;
  for (int32_t h = 0; h < n_heads; ++h) {
    const std::vector<float>& s = scores[static_cast<size_t>(h)];
    taken[static_cast<size_t>(h)].assign(s.size(), false);
    for (int32_t r : top_rows(s, floor_rows))
      taken[static_cast<size_t>(h)][static_cast<size_t>(r)] = true;
    left -= std::min<int64_t>(floor_rows, static_cast<int64_t>(s.size()));
  }
  struct Row {
    float score;
    int32_t head;
    int32_t row;
  };
  std::vector<Row> rest;
  for (int32_t h = 0; h < n_heads; ++h) {
    const std::vector<float>& s = scores[static_cast<size_t>(h)];
    for (size_t r = 0; r < s.size(); ++r) {
      if (!taken[static_cast<size_t>(h)][r]) rest.push_back({s[r], h, static_cast<int32_t>(r)});
    }
  }
  const auto k =
      static_cast<size_t>(std::clamp<int64_t>(left, 0, static_cast<int64_t>(rest.size())));
  const auto by_rank = [](const Row& a, const Row& b) {
    const int64_t ia = (static_cast<int64_t>(a.head) << 32) + a.row;
    const int64_t ib = (static_cast<int64_t>(b.head) << 32) + b.row;
    const bool na = std::isnan(a.score);
    const bool nb = std::isnan(b.score);
    if (na != nb) return nb;
    if (!na && a.score != b.score) return a.score > b.score;
    return ia < ib;
  };
  std::nth_element(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(k), rest.end(),
                   by_rank);
  for (size_t i = 0; i < k; ++i) {
    taken[static_cast<size_t>(rest[i].head)][static_cast<size_t>(rest[i].row)] = true;
  }
  for (int32_t h = 0; h < n_heads; ++h) {
    const std::vector<bool>& t = taken[static_cast<size_t>(h)];
    for (size_t r = 0; r < t.size(); ++r) {
      if (t[r]) keep[static_cast<size_t>(h)].push_back(static_cast<int32_t>(r));
    }
  }
}

void ScoringPress::choose(const PressLayer& layer, std::span<HeadChoice> choices) const {
  std::vector<std::vector<float>> scores(static_cast<size_t>(layer.n_kv_heads));
  score(layer, scores);
  const int32_t rows = layer_rows(layer);
  if (budget().adaptive) {
    std::vector<std::vector<int32_t>> keep;
    const auto floor_rows = static_cast<int32_t>(std::floor(budget().floor * rows));
    adaptive_top_rows(scores, static_cast<int64_t>(rows) * layer.n_kv_heads, floor_rows, keep);
    for (size_t h = 0; h < choices.size(); ++h) choices[h].keep = std::move(keep[h]);
    return;
  }
  for (size_t h = 0; h < choices.size(); ++h) choices[h].keep = top_rows(scores[h], rows);
}

Result<PressBudget> take_budget(PressOptions& options) {
  PressBudget b;
  if (options.has("ratio") && options.has("tokens")) {
    return invalid_argument(
        fmt::format("press '{}': give ratio or tokens, not both", options.name()));
  }
  KVF_ASSIGN_OR_RETURN(b.ratio, options.take_number("ratio", 0, 0, 1, /*min_exclusive=*/true));
  KVF_ASSIGN_OR_RETURN(b.tokens, options.take_count("tokens", 0, 1, 1 << 30));
  KVF_ASSIGN_OR_RETURN(b.sinks, options.take_count("sinks", b.sinks, 0, 1 << 20));
  KVF_ASSIGN_OR_RETURN(b.window, options.take_count("window", b.window, 0, 1 << 20));
  KVF_ASSIGN_OR_RETURN(b.every, options.take_count("every", 0, 0, 1 << 30));
  KVF_ASSIGN_OR_RETURN(b.max_rows, options.take_count("max", 0, 0, 1 << 30));
  KVF_ASSIGN_OR_RETURN(const int32_t adaptive, options.take_count("adaptive", 0, 0, 1));
  b.adaptive = adaptive == 1;
  KVF_ASSIGN_OR_RETURN(b.floor, options.take_number("floor", b.floor, 0, 1));
  KVF_ASSIGN_OR_RETURN(const int32_t seed, options.take_count("seed", 0, 0, INT32_MAX));
  b.seed = static_cast<uint64_t>(seed);
  if (b.ratio == 0 && b.tokens == 0) {
    return invalid_argument(
        fmt::format("press '{}': give a budget, ratio=R (fraction kept, 0 < R <= 1) or tokens=N",
                    options.name()));
  }
  if (b.tokens > 0 && b.tokens < b.sinks + b.window) {
    return invalid_argument(fmt::format(
        "press '{}': tokens={} is below sinks + window = {} + {}; lower sinks/window or raise "
        "tokens",
        options.name(), b.tokens, b.sinks, b.window));
  }
  if (b.max_rows > 0 && b.tokens > 0 && b.max_rows < b.tokens) {
    return invalid_argument(
        fmt::format("press '{}': max={} is below tokens={}", options.name(), b.max_rows, b.tokens));
  }
  return b;
}

std::string budget_suffix(const PressBudget& b) {
  const PressBudget defaults;
  std::string s =
      b.tokens > 0 ? fmt::format(":tokens={}", b.tokens) : fmt::format(":ratio={}", b.ratio);
  if (b.sinks != defaults.sinks) s += fmt::format(":sinks={}", b.sinks);
  if (b.window != defaults.window) s += fmt::format(":window={}", b.window);
  if (b.every != 0) s += fmt::format(":every={}", b.every);
  if (b.max_rows != 0) s += fmt::format(":max={}", b.max_rows);
  if (b.adaptive) s += fmt::format(":adaptive=1:floor={}", b.floor);
  if (b.seed != 0) s += fmt::format(":seed={}", b.seed);
  return s;
}

}  // namespace kvforge::press
