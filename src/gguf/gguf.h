// GGUF model files: a validating reader over a memory map, and a writer.
//
// Format: GGUF v2/v3 as specified by the ggml project (docs/gguf.md there):
// magic "GGUF", version, tensor count, metadata key/value count, the key/value
// pairs, the tensor infos, padding to `general.alignment` (default 32), then
// the tensor data. All integers are little-endian.
//
// The reader validates every count, length, offset and size against the file
// before using it; a truncated, corrupt or hostile file yields a Status that
// names the problem and never an out-of-bounds read. A GgufFile owns its
// mapping; tensor data pointers stay valid for the GgufFile's lifetime.
// Reading is thread-compatible (const methods may be called concurrently).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kvforge/status.h"
#include "util/tensor_type.h"

namespace kvforge::gguf {

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

[[nodiscard]] std::string_view value_type_name(ValueType type);

struct Value;

// A homogeneous array. Nested arrays are allowed by the format.
struct Array {
  ValueType elem_type = ValueType::kUint8;
  std::vector<Value> items;
};

// One metadata value. Integers keep their signedness in the variant
// (uint64_t for unsigned types, int64_t for signed), floats are double.
struct Value {
  ValueType type = ValueType::kUint8;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data;
};

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the contiguous (row) length
  TensorType type = TensorType::kF32;
  uint64_t offset = 0;         // from the start of the data section
  uint64_t n_bytes = 0;        // validated against type geometry
  const uint8_t* data = nullptr;

  [[nodiscard]] uint64_t n_elements() const;
};

class GgufFile {
 public:
  // Maps and validates the file at `path`.
  [[nodiscard]] static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Validates an in-memory image; `bytes` must outlive the returned object.
  [[nodiscard]] static Result<std::unique_ptr<GgufFile>> from_memory(std::span<const uint8_t> bytes);

  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile();

  [[nodiscard]] uint32_t version() const { return version_; }
  [[nodiscard]] uint64_t alignment() const { return alignment_; }
  [[nodiscard]] uint64_t file_bytes() const { return bytes_.size(); }
  [[nodiscard]] const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  [[nodiscard]] const std::vector<TensorInfo>& tensors() const { return tensors_; }

  [[nodiscard]] const Value* find(std::string_view key) const;
  [[nodiscard]] const TensorInfo* find_tensor(std::string_view name) const;

  // Typed getters. They fail with kNotFound if the key is absent and with
  // kCorrupt if it has the wrong type; integer getters accept any integer
  // type whose value fits.
  [[nodiscard]] Result<uint64_t> get_uint(std::string_view key) const;
  [[nodiscard]] Result<int64_t> get_int(std::string_view key) const;
  [[nodiscard]] Result<double> get_float(std::string_view key) const;  // any float or integer
  [[nodiscard]] Result<bool> get_bool(std::string_view key) const;
  [[nodiscard]] Result<std::string> get_string(std::string_view key) const;
  [[nodiscard]] Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  [[nodiscard]] Result<std::vector<float>> get_float_array(std::string_view key) const;
  [[nodiscard]] Result<std::vector<int64_t>> get_int_array(std::string_view key) const;

  // Optional variants: nullopt when absent, error when present but wrong.
  [[nodiscard]] Result<std::optional<uint64_t>> find_uint(std::string_view key) const;
  [[nodiscard]] Result<std::optional<double>> find_float(std::string_view key) const;
  [[nodiscard]] Result<std::optional<bool>> find_bool(std::string_view key) const;
  [[nodiscard]] Result<std::optional<std::string>> find_string(std::string_view key) const;

 private:
  GgufFile() = default;
  Status parse();

  std::span<const uint8_t> bytes_;
  void* mapping_ = nullptr;  // non-null when we own an mmap
  size_t mapping_bytes_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF v3 file in memory and writes it. Keys keep insertion order;
// setting a key twice replaces its value. Tensor data is copied.
class GgufWriter {
 public:
  void set_uint32(std::string key, uint32_t v);
  void set_int32(std::string key, int32_t v);
  void set_uint64(std::string key, uint64_t v);
  void set_float32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string v);
  void set_string_array(std::string key, std::vector<std::string> v);
  void set_float32_array(std::string key, std::vector<float> v);
  void set_int32_array(std::string key, std::vector<int32_t> v);
  void set_value(std::string key, Value v);  // any value, e.g. copied from a GgufFile

  // dims in ggml order (dims[0] contiguous). bytes.size() must equal the
  // type's size for dims; a mismatch is reported by write().
  void add_tensor(std::string name, TensorType type, std::vector<uint64_t> dims,
                  std::span<const uint8_t> bytes);

  [[nodiscard]] std::vector<uint8_t> serialize(uint32_t alignment = 32) const;
  [[nodiscard]] Status write(const std::string& path, uint32_t alignment = 32) const;

 private:
  struct PendingTensor {
    std::string name;
    TensorType type;
    std::vector<uint64_t> dims;
    std::vector<uint8_t> bytes;
  };
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace kvforge::gguf
