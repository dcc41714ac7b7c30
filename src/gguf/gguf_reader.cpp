// GgufFile: parsing and validation of a GGUF v2/v3 image.
//
// Layout (ggml docs/gguf.md): magic "GGUF" | uint32 version | uint64 tensor
// count | uint64 metadata count | metadata (key string, uint32 value type,
// value) | tensor infos (name string, uint32 n_dims, uint64 dims[n_dims],
// uint32 type, uint64 offset) | padding to general.alignment | tensor data.
// A GGUF string is a uint64 byte length followed by that many bytes; an array
// is a uint32 element type, a uint64 count and the elements.
//
// Every count is checked against the bytes that remain before anything is
// allocated for it, so memory use is bounded by the file size (and
// kMaxMetadataElements), not by numbers the file claims.
#include <bit>
#include <cstdio>
#include <limits>
#include <string>

#include "gguf/byte_cursor.h"
#include "gguf/gguf.h"
#include "gguf/mapped_file.h"

namespace kvforge::gguf {
namespace {

// "GGUF" as it reads when the first four bytes are taken as a little-endian uint32.
constexpr uint32_t kMagic = 0x46554747;
// The smallest encodings: a metadata entry with an empty key and a one-byte
// value, and a tensor info with an empty name and one dimension.
constexpr uint64_t kMinMetadataEntryBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
// The spec caps keys at 2^16 - 1 bytes.
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint32_t kLastValueType = static_cast<uint32_t>(ValueType::kFloat64);

std::string quoted(std::string_view s) {
  // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on "'" + std::string + "'".
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('\'');
  out.append(s);
  out.push_back('\'');
  return out;
}

// Bytes an element of `type` occupies at minimum (strings and arrays may be
// longer); used to reject counts that cannot fit in what is left of the file.
uint64_t min_encoded_bytes(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
    case ValueType::kString:
      return 8;
    case ValueType::kArray:
      return 4 + 8;
  }
  return 1;
}

Result<ValueType> read_value_type(ByteCursor& cursor, std::string_view what) {
  KVF_ASSIGN_OR_RETURN(uint32_t raw, cursor.read<uint32_t>(what));
  if (raw > kLastValueType) {
    return corrupt(std::string(what) + " is " + std::to_string(raw) +
                   ", not a GGUF value type (0.." + std::to_string(kLastValueType) + ")");
  }
  return static_cast<ValueType>(raw);
}

// Reads metadata values, keeping count of array elements across the whole
// file so that the total stays within kMaxMetadataElements.
class ValueReader {
 public:
  explicit ValueReader(ByteCursor& cursor) : cursor_(cursor) {}

  // Reads a value of `type` into `out`; `nesting` is the number of arrays
  // enclosing it. Values are filled in place rather than returned as
  // Result<Value>, which saves a move per array element.
  Status read(ValueType type, uint32_t nesting, Value& out) {
    out.type = type;
    switch (type) {
      case ValueType::kUint8:
        return read_unsigned<uint8_t>(out);
      case ValueType::kUint16:
        return read_unsigned<uint16_t>(out);
      case ValueType::kUint32:
        return read_unsigned<uint32_t>(out);
      case ValueType::kUint64:
        return read_unsigned<uint64_t>(out);
      case ValueType::kInt8:
        return read_signed<int8_t>(out);
      case ValueType::kInt16:
        return read_signed<int16_t>(out);
      case ValueType::kInt32:
        return read_signed<int32_t>(out);
      case ValueType::kInt64:
        return read_signed<int64_t>(out);
      case ValueType::kFloat32: {
        KVF_ASSIGN_OR_RETURN(float v, cursor_.read<float>("float32 value"));
        out.data = static_cast<double>(v);
        return Status::ok_status();
      }
      case ValueType::kFloat64: {
        KVF_ASSIGN_OR_RETURN(double v, cursor_.read<double>("float64 value"));
        out.data = v;
        return Status::ok_status();
      }
      case ValueType::kBool: {
        KVF_ASSIGN_OR_RETURN(uint8_t v, cursor_.read<uint8_t>("bool value"));
        if (v > 1) {
          return corrupt("bool value at offset " + std::to_string(cursor_.position() - 1) + " is " +
                         std::to_string(v) + "; the format allows only 0 and 1");
        }
        out.data = v == 1;
        return Status::ok_status();
      }
      case ValueType::kString: {
        KVF_ASSIGN_OR_RETURN(std::string s, cursor_.read_string("string value"));
        out.data = std::move(s);
        return Status::ok_status();
      }
      case ValueType::kArray:
        return read_array(nesting + 1, out.data.emplace<Array>());
    }
    return internal_error("unhandled value type");
  }

 private:
  template <class T>
  Status read_unsigned(Value& out) {
    KVF_ASSIGN_OR_RETURN(T v, cursor_.read<T>(value_type_name(out.type)));
    out.data = static_cast<uint64_t>(v);
    return Status::ok_status();
  }
  template <class T>
  Status read_signed(Value& out) {
    KVF_ASSIGN_OR_RETURN(T v, cursor_.read<T>(value_type_name(out.type)));
    out.data = static_cast<int64_t>(v);
    return Status::ok_status();
  }

  // `nesting` is this array's level: 1 for an array that is a key's value.
  Status read_array(uint32_t nesting, Array& array) {
    if (nesting > kMaxArrayNesting) {
      return unsupported("arrays nested more than " + std::to_string(kMaxArrayNesting) +
                         " levels deep (at offset " + std::to_string(cursor_.position()) + ")");
    }
    KVF_ASSIGN_OR_RETURN(array.elem_type, read_value_type(cursor_, "array element type"));
    KVF_ASSIGN_OR_RETURN(uint64_t count, cursor_.read<uint64_t>("array length"));
    const uint64_t min_bytes = min_encoded_bytes(array.elem_type);
    if (count > cursor_.remaining() / min_bytes) {
      return corrupt("array of " + std::to_string(count) + " " +
                     std::string(value_type_name(array.elem_type)) + " elements needs at least " +
                     (count > std::numeric_limits<uint64_t>::max() / min_bytes
                          ? std::string("2^64")
                          : std::to_string(count * min_bytes)) +
                     " bytes but only " + std::to_string(cursor_.remaining()) +
                     " remain at offset " + std::to_string(cursor_.position()));
    }
    if (count > kMaxMetadataElements - elements_read_) {
      return unsupported("metadata arrays hold more than " + std::to_string(kMaxMetadataElements) +
                         " elements in total (this array has " + std::to_string(count) + ")");
    }
    elements_read_ += count;
    // Bounded by the remaining bytes and the element budget, checked above.
    array.items.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      Status s = read(array.elem_type, nesting, array.items[i]);
      if (!s.ok()) return s.with_context("element " + std::to_string(i));
    }
    return Status::ok_status();
  }

  ByteCursor& cursor_;
  uint64_t elements_read_ = 0;
};

uint32_t byte_swapped(uint32_t v) {
  return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

Status check_version(uint32_t version) {
  if (version == 2 || version == 3) return Status::ok_status();
  // A big-endian writer stores the small version number with its bytes reversed.
  const uint32_t swapped = byte_swapped(version);
  if (swapped >= 1 && swapped <= 3) {
    return unsupported("big-endian GGUF file (version field reads " + std::to_string(version) +
                       ", byte-swapped " + std::to_string(swapped) +
                       "); only little-endian files are supported");
  }
  if (version == 1) {
    return unsupported(
        "GGUF version 1 (32-bit counts) is not supported; convert the model again with a "
        "current converter to get version 3");
  }
  return unsupported("GGUF version " + std::to_string(version) +
                     " is not supported (this reader knows versions 2 and 3)");
}

std::string dims_text(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

// Reads one tensor info (not its data) and checks its geometry; `alignment`
// is the file's data alignment.
Result<TensorInfo> read_tensor_info(ByteCursor& cursor, uint64_t index, uint64_t alignment) {
  TensorInfo info;
  KVF_ASSIGN_OR_RETURN(info.name, cursor.read_string("name of tensor " + std::to_string(index)));
  if (info.name.empty()) return corrupt("tensor " + std::to_string(index) + " has an empty name");
  const std::string context = "tensor " + quoted(info.name);
  auto fail = [&](Status s) { return s.with_context(context); };

  auto n_dims = cursor.read<uint32_t>("n_dims");
  if (!n_dims.ok()) return fail(n_dims.status());
  if (*n_dims < 1 || *n_dims > kMaxTensorDims) {
    return fail(corrupt("n_dims is " + std::to_string(*n_dims) + "; it must be 1.." +
                        std::to_string(kMaxTensorDims)));
  }
  KVF_RETURN_IF_ERROR(cursor.require(uint64_t{8} * *n_dims, "dims").with_context(context));
  uint64_t n_elements = 1;
  for (uint32_t d = 0; d < *n_dims; ++d) {
    auto dim = cursor.read<uint64_t>("dims");
    if (!dim.ok()) return fail(dim.status());
    info.dims.push_back(*dim);
    if (*dim == 0) return fail(corrupt("dimension " + std::to_string(d) + " is 0"));
    if (__builtin_mul_overflow(n_elements, *dim, &n_elements) ||
        n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return fail(corrupt("dims " + dims_text(info.dims) + "... overflow: the element count " +
                          "exceeds 2^63 - 1"));
    }
  }

  auto type_id = cursor.read<uint32_t>("tensor type");
  if (!type_id.ok()) return fail(type_id.status());
  auto traits = tensor_type_traits(*type_id);
  if (!traits) {
    return fail(unsupported("unknown tensor type id " + std::to_string(*type_id) +
                            " (no GGUF type has this number in this reader's table)"));
  }
  info.type = static_cast<TensorType>(*type_id);
  if (info.dims[0] % traits->block_elems != 0) {
    return fail(corrupt("row length " + std::to_string(info.dims[0]) +
                        " is not a multiple of the " + std::string(traits->name) + " block size " +
                        std::to_string(traits->block_elems)));
  }
  // n_bytes = blocks per row * block bytes * rows, each step overflow-checked.
  uint64_t n_bytes = (info.dims[0] / traits->block_elems);
  bool overflow = __builtin_mul_overflow(n_bytes, traits->block_bytes, &n_bytes);
  for (size_t d = 1; d < info.dims.size() && !overflow; ++d) {
    overflow = __builtin_mul_overflow(n_bytes, info.dims[d], &n_bytes);
  }
  if (overflow) {
    return fail(corrupt("dims " + dims_text(info.dims) + " of type " + std::string(traits->name) +
                        " need more than 2^64 bytes"));
  }
  info.n_bytes = n_bytes;

  auto offset = cursor.read<uint64_t>("tensor data offset");
  if (!offset.ok()) return fail(offset.status());
  info.offset = *offset;
  if (info.offset % alignment != 0) {
    return fail(corrupt("data offset " + std::to_string(info.offset) +
                        " is not a multiple of the alignment " + std::to_string(alignment)));
  }
  return info;
}

}  // namespace

uint64_t TensorInfo::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;  // validated against overflow when read
  return n;
}

GgufFile::~GgufFile() = default;

void GgufFile::release_pages(const void* data, size_t n_bytes) const {
  if (mapping_ != nullptr) mapping_->release_pages(data, n_bytes);
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  KVF_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapping, MappedFile::open(path));
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->bytes_ = mapping->bytes();
  file->mapping_ = std::move(mapping);
  KVF_RETURN_IF_ERROR(file->parse().with_context(quoted(path)));
  return file;
}

Result<std::unique_ptr<GgufFile>> GgufFile::from_memory(std::span<const uint8_t> bytes) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->bytes_ = bytes;
  KVF_RETURN_IF_ERROR(file->parse());
  return file;
}

Status GgufFile::parse() {
  if (bytes_.empty()) return corrupt("file is empty (0 bytes); not a GGUF file");
  ByteCursor cursor(bytes_);

  KVF_ASSIGN_OR_RETURN(uint32_t magic, cursor.read<uint32_t>("magic"));
  if (magic != kMagic) {
    char hex[48];
    std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", bytes_[0], bytes_[1], bytes_[2],
                  bytes_[3]);
    return corrupt(std::string("not a GGUF file: the first bytes are ") + hex +
                   ", expected 'GGUF' (47 47 55 46)");
  }
  KVF_ASSIGN_OR_RETURN(version_, cursor.read<uint32_t>("version"));
  KVF_RETURN_IF_ERROR(check_version(version_));
  KVF_ASSIGN_OR_RETURN(uint64_t tensor_count, cursor.read<uint64_t>("tensor count"));
  KVF_ASSIGN_OR_RETURN(uint64_t kv_count, cursor.read<uint64_t>("metadata count"));

  // Reject counts that could not fit before reading (or allocating) anything.
  const uint64_t left = cursor.remaining();
  if (kv_count > left / kMinMetadataEntryBytes) {
    return corrupt("metadata count " + std::to_string(kv_count) + " cannot fit in the " +
                   std::to_string(left) + " bytes after the header (each entry needs at least " +
                   std::to_string(kMinMetadataEntryBytes) + ")");
  }
  if (tensor_count > left / kMinTensorInfoBytes ||
      kv_count * kMinMetadataEntryBytes + tensor_count * kMinTensorInfoBytes > left) {
    return corrupt("tensor count " + std::to_string(tensor_count) + " cannot fit in the " +
                   std::to_string(left) + " bytes after the header (each tensor info needs at " +
                   "least " + std::to_string(kMinTensorInfoBytes) + ")");
  }

  ValueReader values(cursor);
  for (uint64_t i = 0; i < kv_count; ++i) {
    const std::string entry = "metadata entry " + std::to_string(i);
    auto key = cursor.read_string("key of " + entry);
    if (!key.ok()) return key.status();
    if (key->empty()) return corrupt(entry + " has an empty key");
    if (key->size() > kMaxKeyBytes) {
      return corrupt(entry + " has a key of " + std::to_string(key->size()) +
                     " bytes; the format allows at most " + std::to_string(kMaxKeyBytes));
    }
    const std::string context = "key " + quoted(*key);
    auto type = read_value_type(cursor, "value type");
    if (!type.ok()) return type.status().with_context(context);
    Value value;
    KVF_RETURN_IF_ERROR(values.read(*type, 0, value).with_context(context));
    if (!kv_index_.emplace(*key, kv_.size()).second) {
      return corrupt("duplicate key " + quoted(*key) + " (" + entry + " repeats an earlier key)");
    }
    kv_.emplace_back(std::move(key).value(), std::move(value));
  }

  if (const Value* align = find("general.alignment")) {
    if (align->type != ValueType::kUint32) {
      return corrupt("general.alignment has type " + std::string(value_type_name(align->type)) +
                     "; the format requires uint32");
    }
    const uint64_t a = std::get<uint64_t>(align->data);
    if (!std::has_single_bit(a)) {
      return corrupt("general.alignment is " + std::to_string(a) +
                     "; it must be a non-zero power of two");
    }
    alignment_ = a;
  }

  for (uint64_t i = 0; i < tensor_count; ++i) {
    KVF_ASSIGN_OR_RETURN(TensorInfo info, read_tensor_info(cursor, i, alignment_));
    if (!tensor_index_.emplace(info.name, tensors_.size()).second) {
      return corrupt("duplicate tensor name " + quoted(info.name) + " (tensor " +
                     std::to_string(i) + " repeats an earlier name)");
    }
    tensors_.push_back(std::move(info));
  }

  // The data section starts at the first aligned offset after the infos.
  // Cannot overflow: the position is at most the file size and alignment_ < 2^32.
  const uint64_t infos_end = cursor.position();
  const uint64_t data_start = (infos_end + alignment_ - 1) / alignment_ * alignment_;
  uint64_t data_bytes = 0;
  if (data_start <= bytes_.size()) {
    data_bytes = bytes_.size() - data_start;
  } else if (!tensors_.empty()) {
    return corrupt("the tensor data section would start at offset " + std::to_string(data_start) +
                   " (tensor infos end at " + std::to_string(infos_end) + ", aligned to " +
                   std::to_string(alignment_) + ") but the file has only " +
                   std::to_string(bytes_.size()) + " bytes");
  }
  for (TensorInfo& info : tensors_) {
    if (info.offset > data_bytes || info.n_bytes > data_bytes - info.offset) {
      return corrupt("tensor " + quoted(info.name) + ": data [offset " +
                     std::to_string(info.offset) + ", " + std::to_string(info.n_bytes) +
                     " bytes] extends past the end of the file (file has " +
                     std::to_string(data_bytes) + " bytes of tensor data)");
    }
    info.data = bytes_.data() + data_start + info.offset;
  }
  return Status::ok_status();
}

}  // namespace kvforge::gguf
