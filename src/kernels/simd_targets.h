// Which SIMD targets kvforge's Highway kernel files compile for. Include it
// before hwy/highway.h in every file that uses foreach_target.h.
//
// Highway compiles each dispatched file once per attainable target; on x86
// that would be SSSE3, SSE4, AVX2, AVX-512 and AVX-512 "DL" (Ice Lake and
// later, Zen 4 and later: VNNI, VBMI2, ...) plus a portable baseline. SSSE3
// adds compile time but nothing these kernels use, so it is left out:
// machines with it run the SSE4 code. AVX3_DL is compiled only by files that
// define KVFORGE_SIMD_WITH_AVX3_DL before including this header (the matmul
// kernels, whose int8 dot products use AVX-512 VNNI there, and the paged
// attention, for KIVI keys); other files run their AVX3 code on such
// machines. On Arm the kernels are compiled for NEON (Highway's
// baseline there) but not for SVE: they keep vectors in arrays (register
// blocking), which SVE's sizeless vector types do not allow, so SVE
// machines run the NEON code. scripts/test-arm64.sh builds for Arm and runs
// the tests under emulation.
//
// Highway 1.0.3 (Debian 12) knows no finer x86 targets than AVX3_DL (later
// releases split it into AVX3_ZEN4 and AVX3_SPR).
#pragma once

// The targets left out where KVFORGE_SIMD_WITH_AVX3_DL is not defined, also
// for tests that loop over the compiled targets (expands to Highway's target
// bits where it is used, after hwy/targets.h).
#define KVFORGE_DISABLED_SIMD_TARGETS (HWY_SSSE3 | HWY_AVX3_DL | KVFORGE_SVE_TARGETS)
#define KVFORGE_SVE_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128)

#if defined(KVFORGE_SIMD_WITH_AVX3_DL) && !defined(HWY_DISABLED_TARGETS)
#define HWY_WANT_AVX3_DL
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | KVFORGE_SVE_TARGETS)
#endif

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS KVFORGE_DISABLED_SIMD_TARGETS
#endif
