#include "kvforge/status.h"

#include <gtest/gtest.h>

namespace kvforge {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return invalid_argument("value must be positive");
  return v;
}

Result<int> doubled(int v) {
  KVF_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Status check_twice(int v) {
  KVF_RETURN_IF_ERROR(doubled(v).status());
  return Status();
}

TEST(Status, OkAndErrorPropagate) {
  EXPECT_TRUE(Status().ok());
  EXPECT_EQ(doubled(4).value(), 8);
  Result<int> bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().to_string(), "invalid argument: value must be positive");
  EXPECT_FALSE(check_twice(0).ok());
  EXPECT_TRUE(check_twice(3).ok());
}

TEST(Status, WithContextPrefixesMessage) {
  Status s = corrupt("bad magic").with_context("model.gguf");
  EXPECT_EQ(s.message(), "model.gguf: bad magic");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Status().with_context("x").ok());
}

TEST(StatusDeath, CheckAbortsWithLocation) {
  EXPECT_DEATH(KVF_CHECK(1 + 1 == 3), "status_test.cpp:[0-9]+: 1 \\+ 1 == 3");
}

}  // namespace
}  // namespace kvforge
