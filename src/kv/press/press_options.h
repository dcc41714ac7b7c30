// The key=value options of one press spec (kv/spec_options.h). Internal to
// src/kv/press.
#pragma once

#include <string_view>

#include "kv/spec_options.h"
#include "kvforge/status.h"

namespace kvforge::press {

class PressOptions : public SpecOptions {
 public:
  // `spec` (for messages) and its "key=value" items after the name.
  [[nodiscard]] static Result<PressOptions> parse(std::string_view spec) {
    PressOptions options;
    KVF_RETURN_IF_ERROR(options.parse_into(spec));
    return options;
  }

 private:
  PressOptions() : SpecOptions("press") {}
};

}  // namespace kvforge::press
