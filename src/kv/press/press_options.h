// The key=value options of one press spec, as press factories read them:
// each factory takes the keys it knows, and whatever is left is an error
// that names the keys the press accepts. Internal to src/kv/press.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "kvforge/status.h"

namespace kvforge::press {

class PressOptions {
 public:
  // `spec` (for messages) and its "key=value" items after the name.
  [[nodiscard]] static Result<PressOptions> parse(std::string_view spec);

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& spec() const { return spec_; }

  // The value of `key` if given (and removes it), else `fallback`; an
  // out-of-range or malformed value is kInvalidArgument naming key and range.
  [[nodiscard]] Result<double> take_number(std::string_view key, double fallback, double min,
                                           double max, bool min_exclusive = false);
  [[nodiscard]] Result<int32_t> take_count(std::string_view key, int32_t fallback, int32_t min,
                                           int32_t max);
  [[nodiscard]] Result<std::string> take_text(std::string_view key, std::string fallback);
  [[nodiscard]] bool has(std::string_view key) const { return values_.contains(std::string(key)); }

  // kInvalidArgument if keys are left: "press 'h2o': unknown key 'x' (valid: ...)".
  [[nodiscard]] Status finish(std::string_view valid_keys) const;
  // Keys finish() names as valid besides its argument: a press that hands
  // the rest of its spec to its scorer (merge, mikv) adds its own.
  void add_valid_keys(std::string_view keys) { extra_valid_keys_ = std::string(keys); }

 private:
  std::string spec_;
  std::string name_;
  std::map<std::string, std::string> values_;
  std::string extra_valid_keys_;
};

}  // namespace kvforge::press
