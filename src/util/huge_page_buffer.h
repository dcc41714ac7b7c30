// Anonymous memory for large arrays that live as long as a model (its
// repacked weights): mapped directly, 2 MiB aligned, with transparent huge
// pages requested, so that filling it faults once per 2 MiB rather than per
// 4 KiB page and reading it misses the TLB less. Where the kernel gives no
// huge pages the buffer works the same with small ones.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvforge {

class HugePageBuffer {
 public:
  HugePageBuffer() = default;
  // An empty buffer (data() null) when the memory cannot be mapped.
  explicit HugePageBuffer(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(HugePageBuffer&& other) noexcept;
  HugePageBuffer& operator=(HugePageBuffer&& other) noexcept;
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  [[nodiscard]] uint8_t* data() const { return data_; }
  [[nodiscard]] size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;  // bytes mapped at data_ (the request rounded up to 2 MiB)
};

}  // namespace kvforge
