// Intel AMX (Advanced Matrix Extensions: Sapphire Rapids and later Xeons):
// eight tile registers of up to 16 rows x 64 bytes and a matrix unit whose
// TDPBSSD multiplies a 16 x 64 int8 tile by a 64 x 16 one into 16 x 16
// int32 sums in one instruction (16 times the products of a 512-bit
// vpdpbusd). The Q4_0 strip kernel uses it for calls of many tokens
// (matmul_q4_0_strips_amx.cpp); every integer it computes is the same exact
// dot product as the vector kernels', so results do not change. The tile
// loop is in amx_tile_ops-inl.h, compiled with the AVX3_DL kernels.
//
// AMX is used only where the CPU has AMX-TILE and AMX-INT8, the operating
// system lets the process use the tile state (Linux: arch_prctl
// ARCH_REQ_XCOMP_PERM for XTILEDATA, asked once) and the SIMD target in
// force is AVX3_DL, the best one: KVFORGE_SIMD_TARGET=avx3_dl (or lower)
// turns it off, `amx` names it (simd_target_select.h).
#pragma once

#include <cstdint>

namespace kvforge::kernels {

// Whether this CPU and operating system can run the AMX kernels.
[[nodiscard]] bool amx_available();

// Whether the matmul kernels use AMX now: amx_available() and allowed.
[[nodiscard]] bool amx_enabled();
// Allows or forbids AMX (simd_target_select.cpp; allowed at start).
void allow_amx(bool allowed);

// Fewest tokens of a panel call (one task of a matmul) that go to the AMX
// kernels; fewer run the vector kernels. A panel's codes are unpacked for
// AMX in a pass of their own, which pays off only over enough tokens: at
// 16 and 24 tokens the AMX strip kernel measured 4-8% slower than VNNI,
// at 32 as fast or faster (docs/kernels.md, "AMX").
constexpr int64_t kAmxMinTokens = 32;

}  // namespace kvforge::kernels
