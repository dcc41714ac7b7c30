// Factories of the selection policies, one per file (registered in
// selection_registry.cpp). Each reads its own keys from `options` after the
// budget keys were taken. Internal to src/kv/selection.
#pragma once

#include <memory>
#include <string>

#include "kv/selection/kv_selection.h"
#include "kv/selection/selection_options.h"

namespace kvforge::selection {

using SelectionFactory = Result<std::unique_ptr<KvSelection>> (*)(const SelectionBudget&,
                                                                  SelectionOptions&);

// ":tokens=N:window=W:sinks=S[:reuse=R:sim=X]", the budget part of a canonical spec.
[[nodiscard]] std::string budget_spec(const SelectionBudget& budget);

Result<std::unique_ptr<KvSelection>> make_quest_selection(const SelectionBudget&,
                                                          SelectionOptions&);

}  // namespace kvforge::selection
