// Running a check once per SIMD target: every target Highway compiled the
// kernels for (src/kernels/simd_targets.h) that this CPU supports. While a
// ScopedSimdTarget lives, Highway's dynamic dispatch picks only that target;
// the kernels' results on each are compared with their scalar references.
// (kernels/simd_dispatch_test.cpp checks that each listed target runs its own
// code.)
#pragma once

#include "kernels/simd_target_select.h"
#include "kernels/simd_targets.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hwy/targets.h>

namespace kvforge::test_util {

// Restricts dispatch to `target` (and, for files not compiled for it, the
// best target below it) for the object's lifetime.
class ScopedSimdTarget {
 public:
  explicit ScopedSimdTarget(int64_t target) { kernels::restrict_simd_targets(target); }
  ~ScopedSimdTarget() { kernels::restrict_simd_targets(0); }
  ScopedSimdTarget(const ScopedSimdTarget&) = delete;
  ScopedSimdTarget& operator=(const ScopedSimdTarget&) = delete;
};

// Every target the kernels are compiled for and this CPU supports, best
// first (Highway gives better targets lower bits). A test file may be
// compiled for more targets than the kernels (HWY_DISABLED_TARGETS is set
// only where simd_targets.h comes first); dispatch on such a target would run
// a lower target's kernels again, so they are left out.
// (A build for one static target has only that one, whatever it is.)
inline std::vector<int64_t> simd_targets_for_test() {
  std::vector<int64_t> targets;
  const std::vector<int64_t> generated = hwy::SupportedAndGeneratedTargets();
  for (int64_t t : generated) {
    if ((t & KVFORGE_DISABLED_SIMD_TARGETS) == 0) targets.push_back(t);
  }
  if (targets.empty()) targets = generated;
  std::sort(targets.begin(), targets.end());
  return targets;
}

// The matmul kernels are compiled for one target more (AVX3_DL, for VNNI):
// their tests use this list.
inline std::vector<int64_t> matmul_targets_for_test() {
  return kernels::matmul_simd_targets();
}

// The paged attention is compiled for AVX3_DL as well (VNNI for KIVI keys):
// its tests use the matmul files' targets without the AMX pseudo-target,
// which the attention does not use.
inline std::vector<int64_t> attention_targets_for_test() {
  std::vector<int64_t> targets;
  for (const int64_t t : kernels::matmul_simd_targets()) {
    if (t != kernels::kAmxTarget) targets.push_back(t);
  }
  return targets;
}

// check(target) once per target, with the target's name in every failure.
// Stops at the first fatal failure.
template <class F>
void on_every_simd_target(const F& check,
                          const std::vector<int64_t>& targets = simd_targets_for_test()) {
  for (const int64_t target : targets) {
    ScopedSimdTarget scoped(target);
    SCOPED_TRACE(std::string("SIMD target ") + kernels::simd_target_name(target));
    check(target);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace kvforge::test_util
