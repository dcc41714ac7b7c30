// The key=value options of one selection spec (kv/spec_options.h). Internal
// to src/kv/selection.
#pragma once

#include <string_view>

#include "kv/spec_options.h"
#include "kvforge/status.h"

namespace kvforge::selection {

class SelectionOptions : public SpecOptions {
 public:
  // "name:key=value:...": kInvalidArgument for an item that is not
  // key=value or a key given twice.
  [[nodiscard]] static Result<SelectionOptions> parse(std::string_view spec) {
    SelectionOptions options;
    KVF_RETURN_IF_ERROR(options.parse_into(spec));
    return options;
  }

 private:
  SelectionOptions() : SpecOptions("selection") {}
};

}  // namespace kvforge::selection
