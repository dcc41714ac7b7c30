#include "util/tensor_type.h"

#include <gtest/gtest.h>

namespace kvforge {
namespace {

// Block sizes from the GGUF specification: a 4096-wide row of each type.
TEST(TensorType, RowBytesMatchSpec) {
  EXPECT_EQ(tensor_row_bytes(TensorType::kF32, 4096), 16384u);
  EXPECT_EQ(tensor_row_bytes(TensorType::kF16, 4096), 8192u);
  EXPECT_EQ(tensor_row_bytes(TensorType::kBF16, 4096), 8192u);
  EXPECT_EQ(tensor_row_bytes(TensorType::kQ8_0, 4096), 128u * 34);
  EXPECT_EQ(tensor_row_bytes(TensorType::kQ4_0, 4096), 128u * 18);
  EXPECT_EQ(tensor_row_bytes(TensorType::kQ4_1, 4096), 128u * 20);
  EXPECT_EQ(tensor_row_bytes(TensorType::kQ4_K, 4096), 16u * 144);
  EXPECT_EQ(tensor_row_bytes(TensorType::kQ5_K, 4096), 16u * 176);
  EXPECT_EQ(tensor_row_bytes(TensorType::kQ6_K, 4096), 16u * 210);
}

TEST(TensorType, ParseAndName) {
  EXPECT_EQ(parse_tensor_type("Q4_K"), TensorType::kQ4_K);
  EXPECT_EQ(parse_tensor_type("q8_0"), TensorType::kQ8_0);
  EXPECT_EQ(parse_tensor_type("bf16"), TensorType::kBF16);
  EXPECT_FALSE(parse_tensor_type("q5_0").has_value());  // known but unsupported
  EXPECT_FALSE(parse_tensor_type("nonsense").has_value());
  EXPECT_EQ(tensor_type_name(TensorType::kQ6_K), "q6_K");
  EXPECT_FALSE(tensor_type_traits(4).has_value());  // ids 4 and 5 were removed from the format
  EXPECT_FALSE(tensor_type_traits(999).has_value());
}

}  // namespace
}  // namespace kvforge
