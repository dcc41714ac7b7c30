#include "util/system_memory.h"

#include <gtest/gtest.h>

namespace kvforge {
namespace {

TEST(SystemMemoryTest, ParsesMemAvailableInKiB) {
  const char* meminfo =
      "MemTotal:       131072000 kB\n"
      "MemFree:         1000000 kB\n"
      "MemAvailable:   65536000 kB\n"
      "Buffers:           12345 kB\n";
  EXPECT_EQ(parse_mem_available(meminfo), size_t{65536000} * 1024);
}

TEST(SystemMemoryTest, RefusesWhatIsNotMemAvailable) {
  EXPECT_EQ(parse_mem_available(""), std::nullopt);
  EXPECT_EQ(parse_mem_available("MemTotal: 100 kB\n"), std::nullopt);
  EXPECT_EQ(parse_mem_available("XMemAvailable: 100 kB\n"), std::nullopt);
  EXPECT_EQ(parse_mem_available("MemAvailable: lots kB\n"), std::nullopt);
  EXPECT_EQ(parse_mem_available("MemAvailable: 100 MB\n"), std::nullopt);
  EXPECT_EQ(parse_mem_available("MemAvailable: 99999999999999999999999 kB\n"), std::nullopt);
}

TEST(SystemMemoryTest, ThisMachineHasSomeMemory) {
  const std::optional<size_t> bytes = available_memory_bytes();
  ASSERT_TRUE(bytes.has_value());
  EXPECT_GT(*bytes, size_t{1} << 20);
}

}  // namespace
}  // namespace kvforge
