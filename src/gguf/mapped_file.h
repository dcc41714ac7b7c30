// MappedFile: a read-only memory map of a whole regular file (POSIX mmap).
//
// The MappedFile owns the mapping and unmaps it on destruction; the span from
// bytes() is valid for the object's lifetime. Opening checks that the path is
// a regular, non-empty file and reports failures as Status (kNotFound for a
// missing file, kIoError for other refusals, kCorrupt for an empty file).
// Immutable after open, so concurrent reads are safe. If another process
// truncates the file while it is mapped, reads may fault (SIGBUS); that is a
// property of mmap that no reader can check for.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "kvforge/status.h"

namespace kvforge::gguf {

class MappedFile {
 public:
  [[nodiscard]] static Result<std::unique_ptr<MappedFile>> open(const std::string& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  [[nodiscard]] std::span<const uint8_t> bytes() const { return {data_, size_bytes_}; }
  // GgufFile::release_pages, for a range inside bytes().
  void release_pages(const void* data, size_t n_bytes) const;

 private:
  MappedFile(const uint8_t* data, size_t size_bytes) : data_(data), size_bytes_(size_bytes) {}

  const uint8_t* data_;
  size_t size_bytes_;
};

}  // namespace kvforge::gguf
