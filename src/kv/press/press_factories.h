// Factories of the presses, one per file (registered in press_registry.cpp).
// Each reads its own keys from `options` after the budget keys were taken.
// Internal to src/kv/press.
#pragma once

#include <memory>

#include "kv/press/kv_press.h"
#include "kv/press/press_options.h"

namespace kvforge::press {

using PressFactory = Result<std::unique_ptr<KvPress>> (*)(const PressBudget&, PressOptions&);

Result<std::unique_ptr<KvPress>> make_streaming_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_h2o_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_snapkv_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_knorm_press(const PressBudget&, PressOptions&);
Result<std::unique_ptr<KvPress>> make_random_press(const PressBudget&, PressOptions&);

}  // namespace kvforge::press
