// The key=value options of one selection spec, as the registry and the
// policies read them: each takes the keys it knows, and whatever is left is
// an error that names the valid keys. Internal to src/kv/selection.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "kvforge/status.h"

namespace kvforge::selection {

class SelectionOptions {
 public:
  // "name:key=value:...": kInvalidArgument for an item that is not
  // key=value or a key given twice.
  [[nodiscard]] static Result<SelectionOptions> parse(std::string_view spec);

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] bool has(std::string_view key) const { return values_.contains(std::string(key)); }

  // The value of `key` if given (and removes it), else `fallback`; a
  // malformed or out-of-range value is kInvalidArgument naming key and range.
  [[nodiscard]] Result<int32_t> take_count(std::string_view key, int32_t fallback, int32_t min,
                                           int32_t max);
  [[nodiscard]] Result<double> take_number(std::string_view key, double fallback, double min,
                                           double max);

  // kInvalidArgument if keys are left: "selection 'quest': unknown key 'x' (valid: ...)".
  [[nodiscard]] Status finish(std::string_view valid_keys) const;

 private:
  std::string name_;
  std::map<std::string, std::string> values_;
};

}  // namespace kvforge::selection
