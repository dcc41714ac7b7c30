#include "convert/file_bytes.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kvforge::convert {

Result<std::vector<uint8_t>> read_file_bytes(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    if (errno == ENOENT) return not_found("'" + path + "' does not exist");
    return io_error("cannot open '" + path + "': " + std::strerror(errno));
  }
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
    bytes.insert(bytes.end(), buffer, buffer + n);
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return io_error("reading '" + path + "' failed");
  return bytes;
}

}  // namespace kvforge::convert
