// make_kv_selection and plan_kv_selection: parse a selection spec, take the
// budget keys every policy shares, and build the policy the name chooses.
#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "kv/selection/kv_selection.h"
#include "kv/selection/selection_factories.h"

namespace kvforge {
namespace {

struct SelectionEntry {
  std::string_view name;
  selection::SelectionFactory factory;
};

const SelectionEntry kSelections[] = {
    {"quest", selection::make_quest_selection},
};

std::string valid_names() {
  std::string names;
  for (const SelectionEntry& entry : kSelections) {
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

constexpr int32_t kMaxTokens = 1 << 24;

Result<SelectionBudget> take_budget(selection::SelectionOptions& options) {
  SelectionBudget b;
  if (!options.has("tokens")) {
    return invalid_argument(fmt::format(
        "selection '{}': tokens=N is required (the tokens read per step besides sinks and "
        "window, e.g. {}:tokens=1024)",
        options.name(), options.name()));
  }
  KVF_ASSIGN_OR_RETURN(b.tokens, options.take_count("tokens", 0, 1, kMaxTokens));
  KVF_ASSIGN_OR_RETURN(b.window, options.take_count("window", b.window, 0, kMaxTokens));
  KVF_ASSIGN_OR_RETURN(b.sinks, options.take_count("sinks", b.sinks, 0, kMaxTokens));
  const bool has_sim = options.has("sim");
  KVF_ASSIGN_OR_RETURN(b.reuse, options.take_count("reuse", b.reuse, 0, kMaxTokens));
  KVF_ASSIGN_OR_RETURN(b.similarity, options.take_number("sim", b.similarity, -1.0, 1.0));
  if (has_sim && b.reuse == 0) {
    return invalid_argument(fmt::format(
        "selection '{}': sim=X only applies with reuse=R (R > 0 steps)", options.name()));
  }
  return b;
}

}  // namespace

namespace selection {

std::string budget_spec(const SelectionBudget& b) {
  std::string spec = fmt::format(":tokens={}:window={}:sinks={}", b.tokens, b.window, b.sinks);
  if (b.reuse > 0) spec += fmt::format(":reuse={}:sim={}", b.reuse, b.similarity);
  return spec;
}

}  // namespace selection

Result<std::unique_ptr<KvSelection>> make_kv_selection(std::string_view spec) {
  spec = trim(spec);
  KVF_ASSIGN_OR_RETURN(selection::SelectionOptions options,
                       selection::SelectionOptions::parse(spec));
  const auto entry =
      std::find_if(std::begin(kSelections), std::end(kSelections),
                   [&](const SelectionEntry& e) { return e.name == options.name(); });
  if (entry == std::end(kSelections)) {
    return invalid_argument(
        fmt::format("unknown selection '{}'; valid selections: {}", options.name(), valid_names()));
  }
  KVF_ASSIGN_OR_RETURN(const SelectionBudget budget, take_budget(options));
  return entry->factory(budget, options);
}

const std::vector<std::string>& kv_selection_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const SelectionEntry& entry : kSelections) v.emplace_back(entry.name);
    return v;
  }();
  return names;
}

Result<std::shared_ptr<const KvSelection>> plan_kv_selection(std::string_view spec) {
  spec = trim(spec);
  if (spec.empty() || spec == "none") return std::shared_ptr<const KvSelection>();
  auto made = make_kv_selection(spec);
  if (!made.ok()) return made.status().with_context("--select");
  return std::shared_ptr<const KvSelection>(std::move(made).value());
}

}  // namespace kvforge
