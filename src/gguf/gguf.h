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
// The limits the reader enforces, and why, are described in docs/gguf.md.
#pragma once

#include <cstdint>
#include <functional>
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

class MappedFile;
class ByteSink;  // where GgufWriter emits bytes (gguf_writer.cpp)

// Limits beyond the format's own rules. The format allows arrays of arrays to
// any depth; deeper nesting than this is rejected (kUnsupported) so that a
// hostile file cannot exhaust the stack. The element budget bounds the memory
// a file can make the reader allocate per metadata byte (each element becomes
// a Value); real vocabularies use well under a million elements.
inline constexpr uint32_t kMaxArrayNesting = 4;
inline constexpr uint64_t kMaxMetadataElements = uint64_t{1} << 23;
inline constexpr uint32_t kMaxTensorDims = 4;
inline constexpr uint32_t kDefaultAlignment = 32;

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
  uint64_t offset = 0;   // from the start of the data section
  uint64_t n_bytes = 0;  // validated against type geometry
  const uint8_t* data = nullptr;

  [[nodiscard]] uint64_t n_elements() const;
};

class GgufFile {
 public:
  // Maps and validates the file at `path`. Errors: kNotFound (no such file),
  // kIoError (a directory, unreadable, mmap failed), kCorrupt (empty,
  // truncated or self-contradicting), kUnsupported (version 1, big-endian,
  // an unknown tensor type id, or beyond the limits above).
  [[nodiscard]] static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Validates an in-memory image; `bytes` must outlive the returned object.
  [[nodiscard]] static Result<std::unique_ptr<GgufFile>> from_memory(
      std::span<const uint8_t> bytes);

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

  // Says that the process will not read the whole pages inside [data, data
  // + n_bytes) of a mapped file for now: they leave its memory (the file
  // keeps them, and a later read maps them again). No effect on an
  // in-memory image.
  void release_pages(const void* data, size_t n_bytes) const;

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
  std::unique_ptr<MappedFile> mapping_;  // set when open() mapped the file
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF v3 file and writes it. Keys keep insertion order; setting a
// key twice replaces its value in place. write() streams header, metadata and
// tensor data to disk one piece at a time, so the file image is never held in
// memory; serialize() builds the image in memory for small files and tests.
//
// Tensor data can be given three ways: add_tensor copies the bytes,
// add_tensor_view borrows them (they must stay valid until write/serialize
// return), add_tensor_fill produces them on demand, one tensor at a time, so
// a model larger than memory can be written. When `alignment` differs from the
// default, the writer records it as general.alignment (uint32); a
// general.alignment key set by the caller is overwritten with `alignment`.
// Not thread-safe; a writer is used by one thread.
class GgufWriter {
 public:
  // Produces one tensor's bytes into `out` (exactly the tensor's n_bytes).
  using TensorFill = std::function<Status(std::span<uint8_t> out)>;

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
  // type's size for dims; a mismatch is reported by validate() and write().
  void add_tensor(std::string name, TensorType type, std::vector<uint64_t> dims,
                  std::span<const uint8_t> bytes);
  void add_tensor_view(std::string name, TensorType type, std::vector<uint64_t> dims,
                       std::span<const uint8_t> bytes);
  void add_tensor_fill(std::string name, TensorType type, std::vector<uint64_t> dims,
                       TensorFill fill);

  // Checks everything write() would reject: the alignment (a non-zero power
  // of two), keys (non-empty), values (type tag matching the stored
  // alternative and range, array nesting within kMaxArrayNesting), tensors
  // (unique non-empty names, 1..4 dims each > 0, a known type, dims[0] a
  // multiple of the block size, byte count matching the geometry).
  [[nodiscard]] Status validate(uint32_t alignment = kDefaultAlignment) const;

  // The whole file in memory. Invalid contents are a programmer error here
  // (KVF_CHECK); call validate() first when they come from outside, and use
  // write() for anything large. A failing TensorFill is also a check failure.
  [[nodiscard]] std::vector<uint8_t> serialize(uint32_t alignment = kDefaultAlignment) const;
  // Writes to `path` + ".partial" and renames it over `path` when complete, so
  // a failed write never leaves a truncated file under the final name.
  [[nodiscard]] Status write(const std::string& path, uint32_t alignment = kDefaultAlignment) const;

 private:
  struct PendingTensor {
    std::string name;
    TensorType type;
    std::vector<uint64_t> dims;
    std::vector<uint8_t> owned_bytes;         // add_tensor
    std::span<const uint8_t> borrowed_bytes;  // add_tensor_view
    TensorFill fill;                          // add_tensor_fill
    enum class Source { kOwned, kBorrowed, kFill } source = Source::kOwned;
  };
  [[nodiscard]] Status emit(ByteSink& sink, uint32_t alignment) const;

  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace kvforge::gguf
