// The per-target kernel tests (common/simd_targets_for_test.h) rely on
// hwy::SetSupportedTargetsForTest steering every HWY_DYNAMIC_DISPATCH to one
// target. This file is compiled for the same targets as the kernels
// (kernels/simd_targets.h) and checks, for each target the tests loop over,
// that dispatch really runs that target's code; it prints the list.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_dispatch_test.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace kvforge::simd_dispatch_test {
namespace HWY_NAMESPACE {

// The target this copy of the function was compiled for.
int64_t compiled_target() {
  return HWY_TARGET;
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::simd_dispatch_test
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "common/simd_targets_for_test.h"

namespace kvforge::simd_dispatch_test {
namespace {

HWY_EXPORT(compiled_target);

TEST(SimdDispatch, EveryTestedTargetRunsItsOwnCode) {
  const std::vector<int64_t> targets = test_util::simd_targets_for_test();
  ASSERT_FALSE(targets.empty());
  std::string names;
  for (const int64_t target : targets) {
    test_util::ScopedSimdTarget scoped(target);
    EXPECT_EQ(HWY_DYNAMIC_DISPATCH(compiled_target)(), target) << hwy::TargetName(target);
    names += std::string(names.empty() ? "" : " ") + hwy::TargetName(target);
  }
  // Without the override, dispatch picks the best target.
  EXPECT_EQ(HWY_DYNAMIC_DISPATCH(compiled_target)(), targets.front());
  std::printf("[ SIMD ] per-target kernel tests run on: %s\n", names.c_str());
#ifndef HWY_COMPILE_ONLY_STATIC
  // With runtime dispatch the baseline the compiler flags guarantee is among
  // them: the portable one on x86-64, NEON on 64-bit Arm.
  EXPECT_EQ(targets.back(), HWY_STATIC_TARGET) << hwy::TargetName(targets.back());
#endif
}

}  // namespace
}  // namespace kvforge::simd_dispatch_test
#endif  // HWY_ONCE
