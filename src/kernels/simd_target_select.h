// Which SIMD target Highway's dynamic dispatch may pick, for benchmarks and
// tests: by default every kernel runs on the best target it was compiled for
// that the CPU supports; restricting to a target makes every kernel run on
// that target or, where a file was not compiled for it, on its best target
// below it (Highway's SSE4 < AVX2 < AVX3 < AVX3_DL on x86).
//
// The restriction is process-wide (Highway keeps one mask): set it before
// starting work, not while kernels run on other threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"

namespace kvforge::kernels {

// The environment variable read by restrict_simd_targets_from_env.
inline constexpr const char* kSimdTargetEnv = "KVFORGE_SIMD_TARGET";

// Targets the matmul kernels are compiled for and this CPU supports, best
// first (Highway target bits), whatever restriction is in force.
[[nodiscard]] std::vector<int64_t> matmul_simd_targets();

// Restricts dispatch to `target` (a Highway target bit) and the targets
// below it; 0 lifts the restriction.
void restrict_simd_targets(int64_t target);

// The target bit named `name` (Highway's names, any case: "AVX3_DL", "avx3",
// "avx2", "sse4", "emu128", "neon", ...). Error: unknown or not supported by
// this CPU (the message lists the supported names).
[[nodiscard]] Result<int64_t> parse_simd_target(std::string_view name);

// Applies $KVFORGE_SIMD_TARGET when it is set and not empty; an invalid
// value is an error (nothing changes).
[[nodiscard]] Status restrict_simd_targets_from_env();

// Name of the target the matmul kernels dispatch to now.
[[nodiscard]] std::string matmul_simd_target_name();

}  // namespace kvforge::kernels
