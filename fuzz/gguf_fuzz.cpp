// libFuzzer target for the GGUF reader.
//
// Feeds arbitrary bytes to GgufFile::from_memory. When the reader accepts an
// input, the target checks the promises the reader makes about it:
// every tensor's [data, data + n_bytes) lies inside the input (and is read
// byte by byte, so ASan would catch a lie), every value is walked, every
// getter answers without crashing, and re-emitting the file with GgufWriter
// yields bytes the reader accepts again with the same contents. A broken
// promise traps, which libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "gguf/gguf.h"

namespace {

using kvforge::gguf::Array;
using kvforge::gguf::GgufFile;
using kvforge::gguf::GgufWriter;
using kvforge::gguf::Value;
using kvforge::gguf::ValueType;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

// Visits every value so that a malformed Value (wrong alternative for its
// type tag) surfaces as a bad variant access here rather than in a caller.
uint64_t walk(const Value& v) {
  switch (v.type) {
    case ValueType::kUint8:
    case ValueType::kUint16:
    case ValueType::kUint32:
    case ValueType::kUint64:
      return std::get<uint64_t>(v.data);
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64:
      return static_cast<uint64_t>(std::get<int64_t>(v.data));
    case ValueType::kFloat32:
    case ValueType::kFloat64:
      return std::get<double>(v.data) == 0.0 ? 0 : 1;
    case ValueType::kBool:
      return std::get<bool>(v.data) ? 1 : 0;
    case ValueType::kString:
      return std::get<std::string>(v.data).size();
    case ValueType::kArray: {
      const Array& array = std::get<Array>(v.data);
      uint64_t sum = array.items.size();
      for (const Value& item : array.items) {
        require(item.type == array.elem_type);
        sum += walk(item);
      }
      return sum;
    }
  }
  __builtin_trap();
}

uint64_t touch(const GgufFile& file, std::span<const uint8_t> input) {
  uint64_t sum = 0;
  for (const auto& [key, value] : file.metadata()) {
    require(file.find(key) == &value);
    sum += walk(value);
    // Every getter must answer with a value or a Status, whatever the type.
    sum += file.get_uint(key).ok() + file.get_int(key).ok() + file.get_float(key).ok();
    sum += file.get_bool(key).ok() + file.get_string(key).ok();
    sum += file.get_string_array(key).ok() + file.get_float_array(key).ok();
    sum += file.get_int_array(key).ok();
    sum += file.find_uint(key).ok() + file.find_float(key).ok() + file.find_bool(key).ok();
    sum += file.find_string(key).ok();
  }
  const uint8_t* begin = input.data();
  const uint8_t* end = input.data() + input.size();
  for (const auto& tensor : file.tensors()) {
    require(file.find_tensor(tensor.name) == &tensor);
    require(tensor.data >= begin && tensor.data <= end);
    require(tensor.n_bytes <= static_cast<uint64_t>(end - tensor.data));
    require(tensor.offset % file.alignment() == 0);
    require(tensor.n_elements() > 0);
    for (uint64_t i = 0; i < tensor.n_bytes; ++i) sum += tensor.data[i];
  }
  return sum;
}

// Whatever the reader accepts, the writer must reproduce and the reader
// accept again, unchanged.
void check_round_trip(const GgufFile& file) {
  GgufWriter writer;
  for (const auto& [key, value] : file.metadata()) writer.set_value(key, value);
  for (const auto& t : file.tensors()) {
    writer.add_tensor_view(t.name, t.type, t.dims, {t.data, t.n_bytes});
  }
  const auto alignment = static_cast<uint32_t>(file.alignment());
  require(writer.validate(alignment).ok());
  const std::vector<uint8_t> image = writer.serialize(alignment);
  auto again = GgufFile::from_memory(image);
  require(again.ok());
  require((*again)->alignment() == file.alignment());
  require((*again)->tensors().size() == file.tensors().size());
  // The writer adds general.alignment when it is not the default.
  require((*again)->metadata().size() >= file.metadata().size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const auto& a = file.tensors()[i];
    const auto& b = (*again)->tensors()[i];
    require(a.name == b.name && a.type == b.type && a.dims == b.dims && a.n_bytes == b.n_bytes);
    for (uint64_t j = 0; j < a.n_bytes; ++j) require(a.data[j] == b.data[j]);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);
  auto file = GgufFile::from_memory(input);
  if (!file.ok()) {
    require(!file.status().message().empty());
    return 0;
  }
  volatile uint64_t sink = touch(**file, input);
  (void)sink;
  check_round_trip(**file);
  return 0;
}
