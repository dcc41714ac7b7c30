// make_kv_press and plan_kv_presses: parse a press spec, take the budget
// keys every press shares, and build the press the name chooses.
#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/format.h>

#include "kv/layer_range.h"
#include "kv/press/kv_press.h"
#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"

namespace kvforge {
namespace {

struct PressEntry {
  std::string_view name;
  press::PressFactory factory;
  bool scorer;  // chooses by itself; merge and mikv build on a scorer
};

const PressEntry kPresses[] = {
    {"streaming", press::make_streaming_press, true},
    {"h2o", press::make_h2o_press, true},
    {"snapkv", press::make_snapkv_press, true},
    {"pyramidkv", press::make_pyramidkv_press, true},
    {"tova", press::make_tova_press, true},
    {"knorm", press::make_knorm_press, true},
    {"expected", press::make_expected_press, true},
    {"random", press::make_random_press, true},
    {"merge", press::make_merge_press, false},
    {"mikv", press::make_mikv_press, false},
};

std::string valid_names(bool scorers_only = false) {
  std::string names;
  for (const PressEntry& entry : kPresses) {
    if (scorers_only && !entry.scorer) continue;
    if (!names.empty()) names += ", ";
    names += entry.name;
  }
  return names;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

constexpr std::string_view kNone = "none";

}  // namespace

int32_t PressBudget::rows_for(int32_t n_positions) const {
  const int64_t wanted =
      tokens > 0 ? tokens
                 : static_cast<int64_t>(std::ceil(ratio * static_cast<double>(n_positions)));
  return static_cast<int32_t>(std::max<int64_t>(wanted, static_cast<int64_t>(sinks) + window));
}

Result<std::unique_ptr<KvPress>> make_kv_press(std::string_view spec) {
  spec = trim(spec);
  KVF_ASSIGN_OR_RETURN(press::PressOptions options, press::PressOptions::parse(spec));
  const auto entry = std::find_if(std::begin(kPresses), std::end(kPresses),
                                  [&](const PressEntry& e) { return e.name == options.name(); });
  if (entry == std::end(kPresses)) {
    return invalid_argument(
        fmt::format("unknown press '{}'; valid presses: {}", options.name(), valid_names()));
  }
  KVF_ASSIGN_OR_RETURN(const PressBudget budget, press::take_budget(options));
  return entry->factory(budget, options);
}

namespace press {

Result<std::unique_ptr<KvPress>> make_scorer_press(std::string_view scorer,
                                                   const PressBudget& budget,
                                                   PressOptions& options) {
  const auto entry = std::find_if(std::begin(kPresses), std::end(kPresses),
                                  [&](const PressEntry& e) { return e.name == scorer; });
  if (entry == std::end(kPresses) || !entry->scorer) {
    return invalid_argument(fmt::format("press '{}': scorer={} is not a scoring press (valid: {})",
                                        options.name(), scorer, valid_names(true)));
  }
  return entry->factory(budget, options);
}

std::string scorer_suffix(std::string_view scorer_name, const KvPress& scorer) {
  // The scorer's canonical name is NAME, the budget's keys, then its own keys.
  const std::string name = scorer.name();
  const std::string head = std::string(scorer_name) + budget_suffix(scorer.budget());
  KVF_CHECK(name.rfind(head, 0) == 0);
  return fmt::format(":scorer={}{}", scorer_name, name.substr(head.size()));
}

}  // namespace press

const std::vector<std::string>& kv_press_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const PressEntry& entry : kPresses) v.emplace_back(entry.name);
    return v;
  }();
  return names;
}

Result<std::vector<std::shared_ptr<const KvPress>>> plan_kv_presses(std::string_view press,
                                                                    std::string_view layers,
                                                                    int32_t n_layers) {
  std::vector<std::shared_ptr<const KvPress>> plan(static_cast<size_t>(n_layers));
  press = trim(press);
  if (!press.empty() && press != kNone) {
    auto made = make_kv_press(press);
    if (!made.ok()) return made.status().with_context("--press");
    std::shared_ptr<const KvPress> shared = std::move(made).value();
    std::fill(plan.begin(), plan.end(), shared);
  }
  layers = trim(layers);
  while (!layers.empty()) {
    // Entries are separated by ',' before a layer range: "0-1:h2o:ratio=0.5,2-:none".
    size_t end = std::string_view::npos;
    for (size_t at = layers.find(','); at != std::string_view::npos;
         at = layers.find(',', at + 1)) {
      const std::string_view next = layers.substr(at + 1);
      if (!next.empty() && (std::isdigit(static_cast<unsigned char>(trim(next).front())) != 0)) {
        end = at;
        break;
      }
    }
    const std::string_view entry = trim(layers.substr(0, end));
    layers = end == std::string_view::npos ? std::string_view() : layers.substr(end + 1);
    const size_t colon = entry.find(':');
    if (colon == std::string_view::npos) {
      return invalid_argument(
          fmt::format("--press-layers: entry '{}' has no press; expected <layers>:<press>", entry));
    }
    KVF_ASSIGN_OR_RETURN(
        const LayerRange range,
        parse_layer_range("--press-layers", trim(entry.substr(0, colon)), n_layers));
    const std::string_view spec = trim(entry.substr(colon + 1));
    std::shared_ptr<const KvPress> shared;
    if (spec != kNone) {
      auto made = make_kv_press(spec);
      if (!made.ok()) return made.status().with_context("--press-layers");
      shared = std::move(made).value();
    }
    for (int32_t l = range.first; l <= range.last; ++l) plan[static_cast<size_t>(l)] = shared;
  }
  return plan;
}

}  // namespace kvforge
