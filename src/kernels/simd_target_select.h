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

// AVX3_DL with the AMX matrix unit (amx.h), a target above AVX3_DL for the
// kernels that have an AMX form, named "amx". Its bit lies in the range
// Highway 1.0.3 leaves unused on x86 and never reaches Highway:
// restricting to it lifts Highway's restriction and allows AMX; restricting
// to any Highway target forbids AMX.
inline constexpr int64_t kAmxTarget = int64_t{1} << 6;

// Targets the matmul kernels are compiled for and this CPU supports, best
// first (Highway target bits, and kAmxTarget first where AMX is available),
// whatever restriction is in force.
[[nodiscard]] std::vector<int64_t> matmul_simd_targets();

// Restricts dispatch to `target` (a Highway target bit) and the targets
// below it; 0 lifts the restriction.
void restrict_simd_targets(int64_t target);

// The target bit named `name` (Highway's names, any case: "AVX3_DL", "avx3",
// "avx2", "sse4", "emu128", "neon", ..., and "amx"). Error: unknown or not supported by
// this CPU (the message lists the supported names).
[[nodiscard]] Result<int64_t> parse_simd_target(std::string_view name);

// Applies $KVFORGE_SIMD_TARGET when it is set and not empty; an invalid
// value is an error (nothing changes).
[[nodiscard]] Status restrict_simd_targets_from_env();

// Name of a target bit: Highway's name, or "AMX" for kAmxTarget.
[[nodiscard]] std::string simd_target_name(int64_t target);

// Name of the target the matmul kernels dispatch to now ("AVX3_DL+AMX"
// where AMX is in use).
[[nodiscard]] std::string matmul_simd_target_name();

}  // namespace kvforge::kernels
