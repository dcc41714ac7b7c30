// GgufFile lookups and typed metadata getters.
//
// Values keep the file's exact type tag; the getters convert between integer
// widths when the value fits, so callers need not care whether a converter
// wrote, say, a context length as uint32 or uint64.
#include <limits>
#include <string>

#include "gguf/gguf.h"

namespace kvforge::gguf {
namespace {

bool is_unsigned(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
         t == ValueType::kUint64;
}
bool is_signed(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 ||
         t == ValueType::kInt64;
}
bool is_float(ValueType t) {
  return t == ValueType::kFloat32 || t == ValueType::kFloat64;
}

std::string describe_type(const Value& v) {
  if (v.type == ValueType::kArray) {
    return "array of " + std::string(value_type_name(std::get<Array>(v.data).elem_type));
  }
  return std::string(value_type_name(v.type));
}

Status wrong_type(std::string_view key, const Value& v, std::string_view expected) {
  return corrupt("key '" + std::string(key) + "' has type " + describe_type(v) + ", expected " +
                 std::string(expected));
}

// Integer value as int64 when it fits; `what` is for the error message.
Result<int64_t> to_int(std::string_view key, const Value& v) {
  if (is_signed(v.type)) return std::get<int64_t>(v.data);
  if (is_unsigned(v.type)) {
    uint64_t u = std::get<uint64_t>(v.data);
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return corrupt("key '" + std::string(key) + "' is " + std::to_string(u) +
                     ", which does not fit in int64");
    }
    return static_cast<int64_t>(u);
  }
  return wrong_type(key, v, "an integer");
}

Result<uint64_t> to_uint(std::string_view key, const Value& v) {
  if (is_unsigned(v.type)) return std::get<uint64_t>(v.data);
  if (is_signed(v.type)) {
    int64_t i = std::get<int64_t>(v.data);
    if (i < 0) {
      return corrupt("key '" + std::string(key) + "' is " + std::to_string(i) +
                     ", expected a non-negative integer");
    }
    return static_cast<uint64_t>(i);
  }
  return wrong_type(key, v, "an unsigned integer");
}

Result<double> to_double(std::string_view key, const Value& v) {
  if (is_float(v.type)) return std::get<double>(v.data);
  if (is_unsigned(v.type)) return static_cast<double>(std::get<uint64_t>(v.data));
  if (is_signed(v.type)) return static_cast<double>(std::get<int64_t>(v.data));
  return wrong_type(key, v, "a number");
}

Result<const Array*> to_array(std::string_view key, const Value& v) {
  if (v.type != ValueType::kArray) return wrong_type(key, v, "an array");
  return &std::get<Array>(v.data);
}

template <class T, class Convert>
Result<std::optional<T>> find_optional(const GgufFile& file, std::string_view key,
                                       Convert convert) {
  const Value* v = file.find(key);
  if (v == nullptr) return std::optional<T>();
  KVF_ASSIGN_OR_RETURN(T value, convert(key, *v));
  return std::optional<T>(std::move(value));
}

Status missing(std::string_view key) {
  return not_found("metadata key '" + std::string(key) + "' is missing");
}

}  // namespace

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
      return "uint8";
    case ValueType::kInt8:
      return "int8";
    case ValueType::kUint16:
      return "uint16";
    case ValueType::kInt16:
      return "int16";
    case ValueType::kUint32:
      return "uint32";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kFloat32:
      return "float32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kUint64:
      return "uint64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

const Value* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  return to_uint(key, *v);
}

Result<int64_t> GgufFile::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  return to_int(key, *v);
}

Result<double> GgufFile::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  return to_double(key, *v);
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != ValueType::kBool) return wrong_type(key, *v, "bool");
  return std::get<bool>(v->data);
}

Result<std::string> GgufFile::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != ValueType::kString) return wrong_type(key, *v, "string");
  return std::get<std::string>(v->data);
}

Result<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  KVF_ASSIGN_OR_RETURN(const Array* array, to_array(key, *v));
  if (array->elem_type != ValueType::kString) return wrong_type(key, *v, "array of string");
  std::vector<std::string> out;
  out.reserve(array->items.size());
  for (const Value& item : array->items) out.push_back(std::get<std::string>(item.data));
  return out;
}

Result<std::vector<float>> GgufFile::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  KVF_ASSIGN_OR_RETURN(const Array* array, to_array(key, *v));
  const ValueType t = array->elem_type;
  if (!is_float(t) && !is_signed(t) && !is_unsigned(t)) {
    return wrong_type(key, *v, "array of numbers");
  }
  std::vector<float> out;
  out.reserve(array->items.size());
  for (const Value& item : array->items) {
    KVF_ASSIGN_OR_RETURN(double d, to_double(key, item));
    out.push_back(static_cast<float>(d));
  }
  return out;
}

Result<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  KVF_ASSIGN_OR_RETURN(const Array* array, to_array(key, *v));
  if (!is_signed(array->elem_type) && !is_unsigned(array->elem_type)) {
    return wrong_type(key, *v, "array of integers");
  }
  std::vector<int64_t> out;
  out.reserve(array->items.size());
  for (const Value& item : array->items) {
    KVF_ASSIGN_OR_RETURN(int64_t i, to_int(key, item));
    out.push_back(i);
  }
  return out;
}

Result<std::optional<uint64_t>> GgufFile::find_uint(std::string_view key) const {
  return find_optional<uint64_t>(*this, key, to_uint);
}

Result<std::optional<double>> GgufFile::find_float(std::string_view key) const {
  return find_optional<double>(*this, key, to_double);
}

Result<std::optional<bool>> GgufFile::find_bool(std::string_view key) const {
  return find_optional<bool>(*this, key, [](std::string_view k, const Value& v) -> Result<bool> {
    if (v.type != ValueType::kBool) return wrong_type(k, v, "bool");
    return std::get<bool>(v.data);
  });
}

Result<std::optional<std::string>> GgufFile::find_string(std::string_view key) const {
  return find_optional<std::string>(*this, key,
                                    [](std::string_view k, const Value& v) -> Result<std::string> {
                                      if (v.type != ValueType::kString)
                                        return wrong_type(k, v, "string");
                                      return std::get<std::string>(v.data);
                                    });
}

}  // namespace kvforge::gguf
