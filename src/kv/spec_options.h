// The "NAME[:key=value...]" specs of presses and selections, as their
// registries and policies read them: each takes the keys it knows, and
// whatever is left is an error that names the valid keys. Every message
// starts with the kind and the name: "press 'h2o': ...". Internal to src/kv.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "kvforge/status.h"

namespace kvforge {

class SpecOptions {
 public:
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& spec() const { return spec_; }
  [[nodiscard]] bool has(std::string_view key) const { return values_.contains(std::string(key)); }

  // The value of `key` if given (and removes it), else `fallback`; a
  // malformed or out-of-range value is kInvalidArgument naming key and range.
  [[nodiscard]] Result<double> take_number(std::string_view key, double fallback, double min,
                                           double max, bool min_exclusive = false);
  [[nodiscard]] Result<int32_t> take_count(std::string_view key, int32_t fallback, int32_t min,
                                           int32_t max);
  [[nodiscard]] Result<std::string> take_text(std::string_view key, std::string fallback);

  // kInvalidArgument if keys are left: "press 'h2o': unknown key 'x' (valid: ...)".
  [[nodiscard]] Status finish(std::string_view valid_keys) const;
  // Keys finish() names as valid besides its argument (a press that hands
  // the rest of its spec to its scorer adds the scorer's).
  void add_valid_keys(std::string_view keys) { extra_valid_keys_ = std::string(keys); }

 protected:
  explicit SpecOptions(std::string_view kind) : kind_(kind) {}
  // Splits `spec` into the name and its key=value items: kInvalidArgument
  // for an item that is not key=value or a key given twice.
  [[nodiscard]] Status parse_into(std::string_view spec);

 private:
  [[nodiscard]] std::string prefix() const;

  std::string kind_;
  std::string spec_;
  std::string name_;
  std::map<std::string, std::string> values_;
  std::string extra_valid_keys_;
};

}  // namespace kvforge
