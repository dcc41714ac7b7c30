#include "gguf/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kvforge::gguf {
namespace {

// Closes a descriptor on every return path; the mapping outlives it.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd_); }

 private:
  int fd_;
};

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

Result<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string message = "cannot open '" + path + "': " + errno_text(err);
    if (err == ENOENT) return not_found(message);
    return io_error(message);
  }
  FdCloser closer(fd);

  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return io_error("cannot stat '" + path + "': " + errno_text(errno));
  }
  if (S_ISDIR(info.st_mode)) return io_error("'" + path + "' is a directory, not a file");
  if (!S_ISREG(info.st_mode)) return io_error("'" + path + "' is not a regular file");
  if (info.st_size == 0) return corrupt("'" + path + "' is empty (0 bytes); not a GGUF file");

  const auto size_bytes = static_cast<size_t>(info.st_size);
  void* data = ::mmap(nullptr, size_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  if (data == MAP_FAILED) {
    return io_error("cannot map '" + path + "' (" + std::to_string(size_bytes) +
                    " bytes): " + errno_text(errno));
  }
  return std::unique_ptr<MappedFile>(new MappedFile(static_cast<const uint8_t*>(data), size_bytes));
}

void MappedFile::release_pages(const void* data, size_t n_bytes) const {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t first = (begin + page - 1) / page * page, last = (begin + n_bytes) / page * page;
  if (first >= last) return;
  // Advice only: a failure leaves the pages mapped, which is still correct.
  (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  // const_cast: munmap takes void*, the pages were mapped read-only by us.
  ::munmap(const_cast<uint8_t*>(data_), size_bytes_);
}

}  // namespace kvforge::gguf
