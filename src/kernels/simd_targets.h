// Which SIMD targets kvforge's Highway kernel files compile for. Include it
// before hwy/highway.h in every file that uses foreach_target.h.
//
// Highway compiles each dispatched file once per attainable target; on x86
// that would be SSSE3, SSE4, AVX2, AVX-512 and AVX-512 "DL" plus a portable
// baseline. SSSE3 and AVX3_DL add compile time but nothing these kernels use,
// so they are left out: machines with them run the SSE4 or AVX3 code. Other
// architectures (Arm NEON/SVE, ...) keep Highway's defaults.
#pragma once

// The targets left out, also for tests that loop over the compiled targets
// (expands to Highway's target bits where it is used, after hwy/targets.h).
#define KVFORGE_DISABLED_SIMD_TARGETS (HWY_SSSE3 | HWY_AVX3_DL)
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS KVFORGE_DISABLED_SIMD_TARGETS
#endif
