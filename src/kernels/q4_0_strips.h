// Q4_0 weights repacked into strips of 16 rows for the integer tile kernel
// (matmul_q4_0_strips.cpp), which then multiplies them in place instead of
// unpacking a panel per call. The bytes are the file's (18 per 32 weights:
// one f16 scale and 16 bytes of 4-bit codes), reordered:
//
//   strip s = rows [16s, 16s + 16), each strip q4_0_strip_bytes(n_cols) long;
//   within a strip, pairs of blocks of 32 columns (an odd last block is
//   padded with zeros), kStripPairBytes each:
//     [0, 32)    the 16 rows' f16 scales of block 2k
//     [32, 64)   the same of block 2k + 1
//     [64, 320)  the codes of block 2k: 4 units of 64 bytes, unit p holding
//                columns 8p..8p+7 as byte 4i + j = q(row i, column 8p + j)
//                | q(row i, column 8p + 4 + j) << 4
//     [320, 576) the codes of block 2k + 1
//
// so that one 64-byte load (or two of 32 on AVX2) and a nibble mask give 4
// consecutive columns of 16 rows in the order of the u8 x s8 dot products,
// and every load is aligned. Rows past n_rows have zero scales and codes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"

namespace kvforge::kernels {

constexpr int64_t kStripRows = 16;
constexpr size_t kStripPairBytes = 576;

// Whether this machine's SIMD target has the strip kernel (the x86 vector
// targets: AVX2, AVX-512); elsewhere matmul reads MatrixView::data.
[[nodiscard]] bool q4_0_strips_supported();

// Bytes of one strip of a matrix of n_cols columns (a multiple of 32).
[[nodiscard]] size_t q4_0_strip_bytes(int64_t n_cols);
// Bytes of all strips of an n_rows x n_cols matrix.
[[nodiscard]] size_t q4_0_strips_bytes(int64_t n_rows, int64_t n_cols);

// Writes strips [strip_begin, strip_end) of the Q4_0 matrix w into `strips`
// (the buffer of all strips, q4_0_strips_bytes long and 64-byte aligned).
void repack_q4_0_strips(const MatrixView& w, int64_t strip_begin, int64_t strip_end,
                        uint8_t* strips);

// Row `row` of w (w.strips set) as floats, equal to dequantize_row of the
// file's row: the embedding lookup of a tied output matrix reads it here.
void dequantize_q4_0_strip_row(const MatrixView& w, int64_t row, float* out);

// The AVX-512 VNNI strip kernel takes the codes' high nibbles with one GFNI
// instruction where the CPU has GFNI (the same bits as without). Tests
// switch that off to cover the kernel without it; on by default.
void allow_strip_gfni(bool allowed);
[[nodiscard]] bool strip_gfni_allowed();

}  // namespace kvforge::kernels
