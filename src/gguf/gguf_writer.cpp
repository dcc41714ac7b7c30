// GgufWriter: validation and serialization of GGUF v3 files.
//
// Output layout (ggml docs/gguf.md): header, metadata, tensor infos, padding
// to the alignment, then each tensor's data padded to the alignment, so every
// tensor offset is a multiple of the alignment, as readers require.
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <string>

#include "gguf/gguf.h"

namespace kvforge::gguf {

// Where emitted bytes go: a growing vector (serialize) or a buffered file
// (write). Tracks the number of bytes emitted so far for padding.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  [[nodiscard]] virtual Status write(const void* data, size_t n_bytes) = 0;
  [[nodiscard]] uint64_t position() const { return position_; }

 protected:
  uint64_t position_ = 0;
};

namespace {

constexpr uint32_t kVersion = 3;
constexpr std::string_view kAlignmentKey = "general.alignment";

class VectorSink final : public ByteSink {
 public:
  explicit VectorSink(std::vector<uint8_t>& out) : out_(out) {}
  Status write(const void* data, size_t n_bytes) override {
    const auto* p = static_cast<const uint8_t*>(data);
    out_.insert(out_.end(), p, p + n_bytes);
    position_ += n_bytes;
    return Status::ok_status();
  }

 private:
  std::vector<uint8_t>& out_;
};

class FileSink final : public ByteSink {
 public:
  FileSink(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  Status write(const void* data, size_t n_bytes) override {
    if (n_bytes > 0 && std::fwrite(data, 1, n_bytes, file_) != n_bytes) {
      return io_error("cannot write " + std::to_string(n_bytes) + " bytes at offset " +
                      std::to_string(position_) + " of '" + path_ + "': " + std::strerror(errno));
    }
    position_ += n_bytes;
    return Status::ok_status();
  }

 private:
  std::FILE* file_;
  std::string path_;
};

template <class T>
Status put(ByteSink& sink, T value) {
  static_assert(std::endian::native == std::endian::little);
  return sink.write(&value, sizeof value);
}

Status put_string(ByteSink& sink, std::string_view s) {
  KVF_RETURN_IF_ERROR(put<uint64_t>(sink, s.size()));
  return sink.write(s.data(), s.size());
}

Status pad_to(ByteSink& sink, uint64_t alignment) {
  static constexpr uint8_t kZeros[256] = {};
  uint64_t pad = (alignment - sink.position() % alignment) % alignment;
  while (pad > 0) {
    const uint64_t n = std::min<uint64_t>(pad, sizeof kZeros);
    KVF_RETURN_IF_ERROR(sink.write(kZeros, n));
    pad -= n;
  }
  return Status::ok_status();
}

// Checks that a value's variant alternative matches its type tag and that
// the number fits the tagged width, so emission can trust it.
Status validate_value(const Value& v, uint32_t nesting) {
  auto fits_unsigned = [&](uint64_t max) -> Status {
    if (!std::holds_alternative<uint64_t>(v.data)) {
      return invalid_argument(std::string(value_type_name(v.type)) + " value does not hold uint64");
    }
    if (std::get<uint64_t>(v.data) > max) {
      return invalid_argument(std::to_string(std::get<uint64_t>(v.data)) + " does not fit in " +
                              std::string(value_type_name(v.type)));
    }
    return Status::ok_status();
  };
  auto fits_signed = [&](int64_t min, int64_t max) -> Status {
    if (!std::holds_alternative<int64_t>(v.data)) {
      return invalid_argument(std::string(value_type_name(v.type)) + " value does not hold int64");
    }
    const int64_t i = std::get<int64_t>(v.data);
    if (i < min || i > max) {
      return invalid_argument(std::to_string(i) + " does not fit in " +
                              std::string(value_type_name(v.type)));
    }
    return Status::ok_status();
  };
  auto holds = [&](bool ok, std::string_view alternative) -> Status {
    if (ok) return Status::ok_status();
    return invalid_argument(std::string(value_type_name(v.type)) + " value does not hold " +
                            std::string(alternative));
  };
  switch (v.type) {
    case ValueType::kUint8:
      return fits_unsigned(std::numeric_limits<uint8_t>::max());
    case ValueType::kUint16:
      return fits_unsigned(std::numeric_limits<uint16_t>::max());
    case ValueType::kUint32:
      return fits_unsigned(std::numeric_limits<uint32_t>::max());
    case ValueType::kUint64:
      return fits_unsigned(std::numeric_limits<uint64_t>::max());
    case ValueType::kInt8:
      return fits_signed(INT8_MIN, INT8_MAX);
    case ValueType::kInt16:
      return fits_signed(INT16_MIN, INT16_MAX);
    case ValueType::kInt32:
      return fits_signed(INT32_MIN, INT32_MAX);
    case ValueType::kInt64:
      return fits_signed(INT64_MIN, INT64_MAX);
    case ValueType::kFloat32:
    case ValueType::kFloat64:
      return holds(std::holds_alternative<double>(v.data), "double");
    case ValueType::kBool:
      return holds(std::holds_alternative<bool>(v.data), "bool");
    case ValueType::kString:
      return holds(std::holds_alternative<std::string>(v.data), "string");
    case ValueType::kArray: {
      KVF_RETURN_IF_ERROR(holds(std::holds_alternative<Array>(v.data), "Array"));
      if (nesting + 1 > kMaxArrayNesting) {
        return invalid_argument("arrays nested more than " + std::to_string(kMaxArrayNesting) +
                                " levels deep");
      }
      const Array& array = std::get<Array>(v.data);
      if (static_cast<uint32_t>(array.elem_type) > static_cast<uint32_t>(ValueType::kFloat64)) {
        return invalid_argument("array element type " +
                                std::to_string(static_cast<uint32_t>(array.elem_type)) +
                                " is not a GGUF value type");
      }
      for (size_t i = 0; i < array.items.size(); ++i) {
        const Value& item = array.items[i];
        if (item.type != array.elem_type) {
          return invalid_argument("element " + std::to_string(i) + " has type " +
                                  std::string(value_type_name(item.type)) + " in an array of " +
                                  std::string(value_type_name(array.elem_type)));
        }
        KVF_RETURN_IF_ERROR(
            validate_value(item, nesting + 1).with_context("element " + std::to_string(i)));
      }
      return Status::ok_status();
    }
  }
  return invalid_argument("value type " + std::to_string(static_cast<uint32_t>(v.type)) +
                          " is not a GGUF value type");
}

// Emits a value's payload (not its type tag) in GGUF encoding; `v` is valid.
Status put_value(ByteSink& sink, const Value& v) {
  switch (v.type) {
    case ValueType::kUint8:
      return put<uint8_t>(sink, std::get<uint64_t>(v.data));
    case ValueType::kUint16:
      return put<uint16_t>(sink, std::get<uint64_t>(v.data));
    case ValueType::kUint32:
      return put<uint32_t>(sink, std::get<uint64_t>(v.data));
    case ValueType::kUint64:
      return put<uint64_t>(sink, std::get<uint64_t>(v.data));
    case ValueType::kInt8:
      return put<int8_t>(sink, std::get<int64_t>(v.data));
    case ValueType::kInt16:
      return put<int16_t>(sink, std::get<int64_t>(v.data));
    case ValueType::kInt32:
      return put<int32_t>(sink, std::get<int64_t>(v.data));
    case ValueType::kInt64:
      return put<int64_t>(sink, std::get<int64_t>(v.data));
    case ValueType::kFloat32:
      return put<float>(sink, static_cast<float>(std::get<double>(v.data)));
    case ValueType::kFloat64:
      return put<double>(sink, std::get<double>(v.data));
    case ValueType::kBool:
      return put<uint8_t>(sink, std::get<bool>(v.data) ? 1 : 0);
    case ValueType::kString:
      return put_string(sink, std::get<std::string>(v.data));
    case ValueType::kArray: {
      const Array& array = std::get<Array>(v.data);
      KVF_RETURN_IF_ERROR(put<uint32_t>(sink, static_cast<uint32_t>(array.elem_type)));
      KVF_RETURN_IF_ERROR(put<uint64_t>(sink, array.items.size()));
      for (const Value& item : array.items) KVF_RETURN_IF_ERROR(put_value(sink, item));
      return Status::ok_status();
    }
  }
  return internal_error("unhandled value type");
}

// Bytes a tensor of `type` and `dims` occupies, or an error saying why the
// geometry is invalid.
Result<uint64_t> tensor_bytes(TensorType type, const std::vector<uint64_t>& dims) {
  auto traits = tensor_type_traits(static_cast<uint32_t>(type));
  if (!traits) {
    return invalid_argument("unknown tensor type id " +
                            std::to_string(static_cast<uint32_t>(type)));
  }
  if (dims.empty() || dims.size() > kMaxTensorDims) {
    return invalid_argument("has " + std::to_string(dims.size()) + " dims; must have 1.." +
                            std::to_string(kMaxTensorDims));
  }
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 0) return invalid_argument("dimension " + std::to_string(d) + " is 0");
  }
  if (dims[0] % traits->block_elems != 0) {
    return invalid_argument("row length " + std::to_string(dims[0]) + " is not a multiple of the " +
                            std::string(traits->name) + " block size " +
                            std::to_string(traits->block_elems));
  }
  uint64_t n_bytes = dims[0] / traits->block_elems;
  bool overflow = __builtin_mul_overflow(n_bytes, traits->block_bytes, &n_bytes);
  uint64_t n_elements = dims[0];
  for (size_t d = 1; d < dims.size() && !overflow; ++d) {
    overflow = __builtin_mul_overflow(n_bytes, dims[d], &n_bytes) ||
               __builtin_mul_overflow(n_elements, dims[d], &n_elements);
  }
  if (overflow || n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return invalid_argument("dims overflow the element or byte count");
  }
  return n_bytes;
}

uint64_t align_up(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

}  // namespace

void GgufWriter::set_uint32(std::string key, uint32_t v) {
  set_value(std::move(key), Value{ValueType::kUint32, uint64_t{v}});
}
void GgufWriter::set_int32(std::string key, int32_t v) {
  set_value(std::move(key), Value{ValueType::kInt32, int64_t{v}});
}
void GgufWriter::set_uint64(std::string key, uint64_t v) {
  set_value(std::move(key), Value{ValueType::kUint64, v});
}
void GgufWriter::set_float32(std::string key, float v) {
  set_value(std::move(key), Value{ValueType::kFloat32, double{v}});
}
void GgufWriter::set_bool(std::string key, bool v) {
  set_value(std::move(key), Value{ValueType::kBool, v});
}
void GgufWriter::set_string(std::string key, std::string v) {
  set_value(std::move(key), Value{ValueType::kString, std::move(v)});
}

void GgufWriter::set_string_array(std::string key, std::vector<std::string> v) {
  Array array{ValueType::kString, {}};
  // Elements are filled in place; constructing temporaries here trips a
  // GCC 12 -Wmaybe-uninitialized false positive on the variant's Array member.
  array.items.reserve(v.size());
  for (std::string& s : v) {
    Value& item = array.items.emplace_back();
    item.type = ValueType::kString;
    item.data = std::move(s);
  }
  set_value(std::move(key), Value{ValueType::kArray, std::move(array)});
}

void GgufWriter::set_float32_array(std::string key, std::vector<float> v) {
  Array array{ValueType::kFloat32, {}};
  array.items.reserve(v.size());
  for (float f : v) {
    Value& item = array.items.emplace_back();
    item.type = ValueType::kFloat32;
    item.data = double{f};
  }
  set_value(std::move(key), Value{ValueType::kArray, std::move(array)});
}

void GgufWriter::set_int32_array(std::string key, std::vector<int32_t> v) {
  Array array{ValueType::kInt32, {}};
  array.items.reserve(v.size());
  for (int32_t i : v) {
    Value& item = array.items.emplace_back();
    item.type = ValueType::kInt32;
    item.data = int64_t{i};
  }
  set_value(std::move(key), Value{ValueType::kArray, std::move(array)});
}

void GgufWriter::set_value(std::string key, Value v) {
  for (auto& [existing_key, existing_value] : kv_) {
    if (existing_key == key) {
      existing_value = std::move(v);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(v));
}

void GgufWriter::add_tensor(std::string name, TensorType type, std::vector<uint64_t> dims,
                            std::span<const uint8_t> bytes) {
  PendingTensor t{std::move(name), type, std::move(dims), {bytes.begin(), bytes.end()}, {}, {}};
  t.source = PendingTensor::Source::kOwned;
  tensors_.push_back(std::move(t));
}

void GgufWriter::add_tensor_view(std::string name, TensorType type, std::vector<uint64_t> dims,
                                 std::span<const uint8_t> bytes) {
  PendingTensor t{std::move(name), type, std::move(dims), {}, bytes, {}};
  t.source = PendingTensor::Source::kBorrowed;
  tensors_.push_back(std::move(t));
}

void GgufWriter::add_tensor_fill(std::string name, TensorType type, std::vector<uint64_t> dims,
                                 TensorFill fill) {
  PendingTensor t{std::move(name), type, std::move(dims), {}, {}, std::move(fill)};
  t.source = PendingTensor::Source::kFill;
  tensors_.push_back(std::move(t));
}

Status GgufWriter::validate(uint32_t alignment) const {
  if (!std::has_single_bit(alignment)) {
    return invalid_argument("alignment " + std::to_string(alignment) +
                            " is not a non-zero power of two");
  }
  for (const auto& [key, value] : kv_) {
    if (key.empty()) return invalid_argument("a metadata key is empty");
    if (key.size() > 65535) {
      return invalid_argument("metadata key of " + std::to_string(key.size()) +
                              " bytes exceeds the format's 65535");
    }
    KVF_RETURN_IF_ERROR(validate_value(value, 0).with_context("key '" + key + "'"));
  }
  std::set<std::string_view> names;
  for (const PendingTensor& t : tensors_) {
    if (t.name.empty()) return invalid_argument("a tensor has an empty name");
    if (!names.insert(t.name).second) {
      return invalid_argument("tensor name '" + t.name + "' is used twice");
    }
    auto n_bytes = tensor_bytes(t.type, t.dims);
    if (!n_bytes.ok()) return n_bytes.status().with_context("tensor '" + t.name + "'");
    if (t.source == PendingTensor::Source::kFill) {
      if (!t.fill) return invalid_argument("tensor '" + t.name + "' has an empty fill function");
      continue;
    }
    const size_t given =
        t.source == PendingTensor::Source::kOwned ? t.owned_bytes.size() : t.borrowed_bytes.size();
    if (given != *n_bytes) {
      return invalid_argument("tensor '" + t.name + "': " + std::to_string(given) +
                              " bytes given, but " + std::string(tensor_type_name(t.type)) +
                              " with these dims needs " + std::to_string(*n_bytes));
    }
  }
  return Status::ok_status();
}

Status GgufWriter::emit(ByteSink& sink, uint32_t alignment) const {
  KVF_RETURN_IF_ERROR(validate(alignment));
  bool has_alignment_key = false;
  for (const auto& entry : kv_) has_alignment_key |= entry.first == kAlignmentKey;
  const bool add_alignment_key = !has_alignment_key && alignment != kDefaultAlignment;

  KVF_RETURN_IF_ERROR(sink.write("GGUF", 4));
  KVF_RETURN_IF_ERROR(put<uint32_t>(sink, kVersion));
  KVF_RETURN_IF_ERROR(put<uint64_t>(sink, tensors_.size()));
  KVF_RETURN_IF_ERROR(put<uint64_t>(sink, kv_.size() + (add_alignment_key ? 1 : 0)));

  const Value alignment_value{ValueType::kUint32, uint64_t{alignment}};
  for (const auto& [key, value] : kv_) {
    const Value& v = key == kAlignmentKey ? alignment_value : value;
    KVF_RETURN_IF_ERROR(put_string(sink, key));
    KVF_RETURN_IF_ERROR(put<uint32_t>(sink, static_cast<uint32_t>(v.type)));
    KVF_RETURN_IF_ERROR(put_value(sink, v));
  }
  if (add_alignment_key) {
    KVF_RETURN_IF_ERROR(put_string(sink, kAlignmentKey));
    KVF_RETURN_IF_ERROR(put<uint32_t>(sink, static_cast<uint32_t>(ValueType::kUint32)));
    KVF_RETURN_IF_ERROR(put_value(sink, alignment_value));
  }

  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    const uint64_t n_bytes = tensor_bytes(t.type, t.dims).value();  // validated above
    sizes.push_back(n_bytes);
    KVF_RETURN_IF_ERROR(put_string(sink, t.name));
    KVF_RETURN_IF_ERROR(put<uint32_t>(sink, static_cast<uint32_t>(t.dims.size())));
    for (uint64_t d : t.dims) KVF_RETURN_IF_ERROR(put<uint64_t>(sink, d));
    KVF_RETURN_IF_ERROR(put<uint32_t>(sink, static_cast<uint32_t>(t.type)));
    KVF_RETURN_IF_ERROR(put<uint64_t>(sink, offset));
    offset = align_up(offset + n_bytes, alignment);
  }
  // Without tensors there is no data section to align, and a file ends after
  // its metadata (as llama.cpp's vocab-only files do); padding would cost up
  // to alignment - 1 bytes for nothing.
  if (tensors_.empty()) return Status::ok_status();
  KVF_RETURN_IF_ERROR(pad_to(sink, alignment));

  std::vector<uint8_t> fill_buffer;  // reused: one produced tensor in memory at a time
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    switch (t.source) {
      case PendingTensor::Source::kOwned:
        KVF_RETURN_IF_ERROR(sink.write(t.owned_bytes.data(), t.owned_bytes.size()));
        break;
      case PendingTensor::Source::kBorrowed:
        KVF_RETURN_IF_ERROR(sink.write(t.borrowed_bytes.data(), t.borrowed_bytes.size()));
        break;
      case PendingTensor::Source::kFill:
        fill_buffer.assign(sizes[i], 0);
        KVF_RETURN_IF_ERROR(t.fill(fill_buffer).with_context("filling tensor '" + t.name + "'"));
        KVF_RETURN_IF_ERROR(sink.write(fill_buffer.data(), fill_buffer.size()));
        break;
    }
    KVF_RETURN_IF_ERROR(pad_to(sink, alignment));
  }
  return Status::ok_status();
}

std::vector<uint8_t> GgufWriter::serialize(uint32_t alignment) const {
  std::vector<uint8_t> out;
  VectorSink sink(out);
  Status status = emit(sink, alignment);
  if (!status.ok()) {
    std::fprintf(stderr, "kvforge: GgufWriter::serialize: %s\n", status.to_string().c_str());
  }
  KVF_CHECK(status.ok());
  return out;
}

Status GgufWriter::write(const std::string& path, uint32_t alignment) const {
  KVF_RETURN_IF_ERROR(validate(alignment).with_context("writing '" + path + "'"));
  const std::string partial_path = path + ".partial";
  std::FILE* file = std::fopen(partial_path.c_str(), "wb");
  if (file == nullptr) {
    return io_error("cannot create '" + partial_path + "': " + std::strerror(errno));
  }
  // A large buffer keeps the many small metadata writes cheap.
  std::setvbuf(file, nullptr, _IOFBF, size_t{1} << 20);
  FileSink sink(file, partial_path);
  Status status = emit(sink, alignment);
  if (std::fflush(file) != 0 && status.ok()) {
    status = io_error("cannot flush '" + partial_path + "': " + std::strerror(errno));
  }
  if (std::fclose(file) != 0 && status.ok()) {
    status = io_error("cannot close '" + partial_path + "': " + std::strerror(errno));
  }
  if (status.ok() && std::rename(partial_path.c_str(), path.c_str()) != 0) {
    status =
        io_error("cannot rename '" + partial_path + "' to '" + path + "': " + std::strerror(errno));
  }
  if (!status.ok()) std::remove(partial_path.c_str());
  return status;
}

}  // namespace kvforge::gguf
