// Factories of the presses, one per file (registered in press_registry.cpp).
// Each reads its own keys from `options` after the budget keys were taken.
// Internal to src/kv/press.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "kv/press/kv_press.h"
#include "kv/press/press_options.h"

namespace kvforge::press {

using PressFactory = Result<std::unique_ptr<KvPress>> (*)(const PressBudget&, PressOptions&);

Result<std::unique_ptr<KvPress>> make_streaming_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_h2o_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_snapkv_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_knorm_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_random_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_tova_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_pyramidkv_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_expected_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_merge_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_mikv_press(const PressBudget&, PressOptions&);

// The scorer of a press that builds on another press's choice (merge,
// mikv): the press named `scorer`, with the same budget, reading its own
// keys from what is left of `options`. kInvalidArgument naming the valid
// scorers when `scorer` is unknown or is itself such a press.
Result<std::unique_ptr<KvPress>> make_scorer_press(std::string_view scorer,
                                                   const PressBudget& budget,
                                                   PressOptions& options);
// ":scorer=NAME[:its keys]" for the canonical name of a press built on
// `scorer` (made by make_scorer_press under `scorer_name`).
std::string scorer_suffix(std::string_view scorer_name, const KvPress& scorer);

}  // namespace kvforge::press
