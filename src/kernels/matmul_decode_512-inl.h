// Decode kernels of matmul_decode.cpp for AVX-512 VNNI (Highway's AVX3_DL
// target): G = 16 rows per group, 64 columns (16 i32 lanes of 4 products)
// per vpdpbusd. Textually included by matmul_decode.cpp inside its
// HWY_NAMESPACE for that target only (so no include guard), after Acts,
// GroupPrefetch and the scalar helpers.

constexpr int kGroup = kGroupRows;
using VOut = __m512;

HWY_INLINE __m512i dot(__m512i u, __m512i q) {
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, q);
}

// d[i] (row i of 4) -> lane 4L + i = sum of d[i]'s 4 lanes in 128-bit lane L.
HWY_INLINE __m512i quad_sum(__m512i d0, __m512i d1, __m512i d2, __m512i d3) {
  const __m512i s01 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(d0, d1), _mm512_unpackhi_epi32(d0, d1));
  const __m512i s23 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(d2, d3), _mm512_unpackhi_epi32(d2, d3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

// u[k] from quad_sum of rows 4k..4k+3 -> 32-column sums: a (128-bit lanes 0
// and 1) and b (lanes 2 and 3), row i in lane i.
HWY_INLINE void halves_of(const __m512i (&u)[4], __m512i& a, __m512i& b) {
  const __m512i p = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x88),
                                     _mm512_shuffle_i32x4(u[0], u[1], 0xdd));
  const __m512i q = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], 0x88),
                                     _mm512_shuffle_i32x4(u[2], u[3], 0xdd));
  a = _mm512_shuffle_i32x4(p, q, 0x88);
  b = _mm512_shuffle_i32x4(p, q, 0xdd);
}

// The same -> 16-column sums s[L] (128-bit lane L), row i in lane i.
HWY_INLINE void quarters_of(const __m512i (&u)[4], __m512i (&s)[4]) {
  const __m512i t0 = _mm512_shuffle_i32x4(u[0], u[1], 0x44);
  const __m512i t1 = _mm512_shuffle_i32x4(u[0], u[1], 0xee);
  const __m512i t2 = _mm512_shuffle_i32x4(u[2], u[3], 0x44);
  const __m512i t3 = _mm512_shuffle_i32x4(u[2], u[3], 0xee);
  s[0] = _mm512_shuffle_i32x4(t0, t2, 0x88);
  s[1] = _mm512_shuffle_i32x4(t0, t2, 0xdd);
  s[2] = _mm512_shuffle_i32x4(t1, t3, 0x88);
  s[3] = _mm512_shuffle_i32x4(t1, t3, 0xdd);
}

HWY_INLINE __m512 scale_add(__m512 out, __m512i i, __m512 scale, float dx) {
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(scale, _mm512_set1_ps(dx)), out);
}
HWY_INLINE __m512 offset_add(__m512 out, __m512 offset, float sx) {
  return _mm512_fmadd_ps(offset, _mm512_set1_ps(sx), out);
}
HWY_INLINE __m512i minus(__m512i i, int32_t v) {
  return _mm512_sub_epi32(i, _mm512_set1_epi32(v));
}

// 64 activation codes of token t from column c, or 32 (the rest zero).
HWY_INLINE __m512i acts64(const Acts& x, int t, int64_t c, bool pair) {
  const int8_t* p = x.q + t * x.n_cols + c;
  return pair ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(0xffffffffULL, p);
}

// Word idx[r] of raw into lane r and word idx[16 + r] into lane 16 + r of
// acc (idx: word_index).
HWY_INLINE __m512i merge_words(__m512i acc, __m512i idx, int r, __m512i raw) {
  const __mmask32 k = (__mmask32{1} << r) | (__mmask32{1} << (16 + r));
  return _mm512_mask_permutexvar_epi16(acc, k, idx, raw);
}

HWY_INLINE __m512i word_index(int w0, int w1) {
  return _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(w0)),
                            _mm256_set1_epi16(static_cast<int16_t>(w1)), 1);
}

// Lanes 0-15 and 16-31 of 32 f16 words as two vectors of f32.
HWY_INLINE void halves_to_f32(__m512i words, __m512& a, __m512& b) {
  a = _mm512_cvtph_ps(_mm512_castsi512_si256(words));
  b = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(words, 1));
}

// Q4_0 (kHasMin false) and Q4_1: two blocks (36 or 40 bytes) per step in one
// masked load; vpermb places block b's 16 code bytes in 128-bit lanes 0 and
// 1 and block b + 1's in lanes 2 and 3, and lanes 1 and 3 are shifted by 4:
// [lo(b) hi(b) lo(b+1) hi(b+1)] is columns 0..63 in order. The f16 scales
// (and Q4_1's m) of the 16 rows are merged into one vector of words by
// masked vpermw. Q4_0's code is q - 8: z = 8.
template <bool kHasMin>
struct GroupQ4 {
  static constexpr int64_t kStepCols = 64;
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[kT]) {
    constexpr int kBytes = kHasMin ? 20 : 18;
    constexpr int kQs = kHasMin ? 4 : 2;
    alignas(64) static constexpr uint8_t kPick[64] = {
#define KVF_Q(i) static_cast<uint8_t>(kQs + (i))
#define KVF_LANE(base)                                                                          \
  KVF_Q(base + 0), KVF_Q(base + 1), KVF_Q(base + 2), KVF_Q(base + 3), KVF_Q(base + 4),          \
      KVF_Q(base + 5), KVF_Q(base + 6), KVF_Q(base + 7), KVF_Q(base + 8), KVF_Q(base + 9),      \
      KVF_Q(base + 10), KVF_Q(base + 11), KVF_Q(base + 12), KVF_Q(base + 13), KVF_Q(base + 14), \
      KVF_Q(base + 15)
        KVF_LANE(0), KVF_LANE(0), KVF_LANE(kBytes), KVF_LANE(kBytes)
#undef KVF_LANE
#undef KVF_Q
    };
    const __m512i pick = _mm512_load_si512(kPick);
    const __m512i shifts =
        _mm512_set_epi64(4 * 0x0001000100010001LL, 4 * 0x0001000100010001LL, 0, 0,
                         4 * 0x0001000100010001LL, 4 * 0x0001000100010001LL, 0, 0);
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i d_idx = word_index(0, kBytes / 2);
    const __m512i m_idx = word_index(1, kBytes / 2 + 1);
    for (int64_t b = 0; b < x.n_blocks; b += 2) {
      const bool pair = b + 1 < x.n_blocks;
      const __mmask64 bytes = (__mmask64{1} << (pair ? 2 * kBytes : kBytes)) - 1;
      pf.step();
      __m512i u[kT][4];
      __m512i dw[4], mw[4];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        dw[k] = mw[k] = _mm512_setzero_si512();
        __m512i codes[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
          const __m512i raw = _mm512_maskz_loadu_epi8(bytes, rows[4 * k + i] + b * kBytes);
          codes[i] =
              _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi8(pick, raw), shifts), low4);
          dw[k] = merge_words(dw[k], d_idx, 4 * k + i, raw);
          if (kHasMin) mw[k] = merge_words(mw[k], m_idx, 4 * k + i, raw);
        }
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) {
          const __m512i xq = acts64(x, t, b * 32, pair);
          u[t][k] =
              quad_sum(dot(codes[0], xq), dot(codes[1], xq), dot(codes[2], xq), dot(codes[3], xq));
        }
      }
      __m512 d_a, d_b, m_a, m_b;
      halves_to_f32(_mm512_or_si512(_mm512_or_si512(dw[0], dw[1]), _mm512_or_si512(dw[2], dw[3])),
                    d_a, d_b);
      if (kHasMin) {
        halves_to_f32(_mm512_or_si512(_mm512_or_si512(mw[0], mw[1]), _mm512_or_si512(mw[2], mw[3])),
                      m_a, m_b);
      }
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        const float* dx = x.d + t * x.n_blocks;
        const float* sx = x.sum + t * x.n_blocks;
        const int32_t* qs = x.qsum16 + t * 2 * x.n_blocks;
        __m512i ia, ib;
        halves_of(u[t], ia, ib);
        if (!kHasMin) ia = minus(ia, 8 * (qs[2 * b] + qs[2 * b + 1]));
        out[t] = scale_add(out[t], ia, d_a, dx[b]);
        if (kHasMin) out[t] = offset_add(out[t], m_a, sx[b]);
        if (pair) {
          if (!kHasMin) ib = minus(ib, 8 * (qs[2 * b + 2] + qs[2 * b + 3]));
          out[t] = scale_add(out[t], ib, d_b, dx[b + 1]);
          if (kHasMin) out[t] = offset_add(out[t], m_b, sx[b + 1]);
        }
      }
    }
  }
};

// Q8_0, two blocks (68 bytes) per step: the codes as unsigned bytes q + 128
// (an exclusive or), z = 128; the scales from a third load of the first 64
// (or 34) bytes.
struct GroupQ8_0 {
  static constexpr int64_t kStepCols = 64;
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[kT]) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    const __m512i d_idx = word_index(0, 17);
    for (int64_t b = 0; b < x.n_blocks; b += 2) {
      const bool pair = b + 1 < x.n_blocks;
      const __mmask64 head = pair ? ~__mmask64{0} : (__mmask64{1} << 34) - 1;
      pf.step();
      __m512i u[kT][4];
      __m512i dw[4];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        dw[k] = _mm512_setzero_si512();
        __m512i codes[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
          const uint8_t* p = rows[4 * k + i] + b * 34;
          const __m256i second = pair ? load32(p + 36) : _mm256_setzero_si256();
          codes[i] = _mm512_xor_si512(
              _mm512_inserti64x4(_mm512_castsi256_si512(load32(p + 2)), second, 1), flip);
          dw[k] = merge_words(dw[k], d_idx, 4 * k + i, _mm512_maskz_loadu_epi8(head, p));
        }
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) {
          const __m512i xq = acts64(x, t, b * 32, pair);
          u[t][k] =
              quad_sum(dot(codes[0], xq), dot(codes[1], xq), dot(codes[2], xq), dot(codes[3], xq));
        }
      }
      __m512 d_a, d_b;
      halves_to_f32(_mm512_or_si512(_mm512_or_si512(dw[0], dw[1]), _mm512_or_si512(dw[2], dw[3])),
                    d_a, d_b);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        const float* dx = x.d + t * x.n_blocks;
        const int32_t* qs = x.qsum16 + t * 2 * x.n_blocks;
        __m512i ia, ib;
        halves_of(u[t], ia, ib);
        out[t] = scale_add(out[t], minus(ia, 128 * (qs[2 * b] + qs[2 * b + 1])), d_a, dx[b]);
        if (pair) {
          out[t] =
              scale_add(out[t], minus(ib, 128 * (qs[2 * b + 2] + qs[2 * b + 3])), d_b, dx[b + 1]);
        }
      }
    }
  }
};

// Per-row 32-bit words at byte offset `at` of the super-block at `base` of
// each of the 16 rows (byte offsets `rows`), one per lane.
HWY_INLINE __m512i gather_words(const uint8_t* base, __m512i rows, int at) {
  return _mm512_i32gather_epi32(rows, base + at, 1);
}

// Byte k (0..3) of each lane, as f32.
HWY_INLINE __m512 byte_f32(__m512i v, int k) {
  return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, 8 * k), _mm512_set1_epi32(0xff)));
}

// Q4_K and Q5_K: per super-block the d, dmin and 12 scale bytes of the 16
// rows come in by 4 gathers and are unpacked with 32-bit word ops into the
// 8 scales d * sc[j] and offsets -(dmin * m[j]), one row per lane. Per
// step the 32 bytes of qs holding sub-blocks j (low nibbles) and j + 1
// (high nibbles) are broadcast to both halves of a vector and shifted by 0
// and 4; Q5_K's fifth bits: bit j of qh[l] for sub-block j.
template <bool kHighBit>
struct GroupQK45 {
  static constexpr int64_t kStepCols = 64;
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[kT]) {
    constexpr size_t kBytes = kHighBit ? 176 : 144;
    constexpr size_t kQs = kHighBit ? 48 : 16;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i nibble_shift =
        _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    // Byte offset of each lane's row from rows[0].
    alignas(64) int32_t offs[16];
    for (int i = 0; i < 16; ++i) offs[i] = static_cast<int32_t>(rows[i] - rows[0]);
    const __m512i row_offs = _mm512_load_si512(offs);
    for (int64_t sb = 0; sb < x.n_blocks / 8; ++sb) {
      const uint8_t* base = rows[0] + static_cast<size_t>(sb) * kBytes;
      const __m512i g0 = gather_words(base, row_offs, 0);
      const __m512i g1 = gather_words(base, row_offs, 4);
      const __m512i g2 = gather_words(base, row_offs, 8);
      const __m512i g3 = gather_words(base, row_offs, 12);
      const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g0));
      const __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g0, 16)));
      const __m512i m63 = _mm512_set1_epi32(0x3f3f3f3f);
      const __m512i m0f = _mm512_set1_epi32(0x0f0f0f0f);
      const __m512i m30 = _mm512_set1_epi32(0x30303030);
      const __m512i sc[2] = {_mm512_and_si512(g1, m63),
                             _mm512_or_si512(_mm512_and_si512(g3, m0f),
                                             _mm512_and_si512(_mm512_srli_epi32(g1, 2), m30))};
      const __m512i mn[2] = {_mm512_and_si512(g2, m63),
                             _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(g3, 4), m0f),
                                             _mm512_and_si512(_mm512_srli_epi32(g2, 2), m30))};
#pragma GCC unroll 4
      for (int step = 0; step < 4; ++step) {
        const int j = 2 * step;  // sub-blocks j, j + 1
        pf.step();
        __m512i u[kT][4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
          __m512i codes[4];
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) {
            const uint8_t* blk = rows[4 * k + i] + static_cast<size_t>(sb) * kBytes;
            const __m512i raw = _mm512_broadcast_i64x4(load32(blk + kQs + 32 * step));
            codes[i] = _mm512_and_si512(_mm512_srlv_epi16(raw, nibble_shift), low4);
            if (kHighBit) {
              const __m512i count =
                  _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(j)),
                                     _mm256_set1_epi16(static_cast<int16_t>(j + 1)), 1);
              const __m512i high = _mm512_broadcast_i64x4(load32(blk + 16));
              const __m512i bit = _mm512_slli_epi16(_mm512_srlv_epi16(high, count), 4);
              codes[i] = _mm512_ternarylogic_epi32(codes[i], bit, _mm512_set1_epi8(0x10),
                                                   0xf8);  // a | (b & c)
            }
          }
#pragma GCC unroll 4
          for (int t = 0; t < kT; ++t) {
            const __m512i xq = acts64(x, t, sb * 256 + 32 * j, true);
            u[t][k] = quad_sum(dot(codes[0], xq), dot(codes[1], xq), dot(codes[2], xq),
                               dot(codes[3], xq));
          }
        }
        __m512 scale[2], offset[2];
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const int jj = j + h;
          scale[h] = _mm512_mul_ps(d, byte_f32(sc[jj / 4], jj % 4));
          offset[h] = _mm512_castsi512_ps(_mm512_xor_si512(
              _mm512_castps_si512(_mm512_mul_ps(dmin, byte_f32(mn[jj / 4], jj % 4))),
              _mm512_set1_epi32(static_cast<int32_t>(0x80000000u))));
        }
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) {
          const int64_t blk = t * x.n_blocks + sb * 8 + j;
          __m512i i2[2];
          halves_of(u[t], i2[0], i2[1]);
#pragma GCC unroll 2
          for (int h = 0; h < 2; ++h) {
            out[t] = scale_add(out[t], i2[h], scale[h], x.d[blk + h]);
            out[t] = offset_add(out[t], offset[h], x.sum[blk + h]);
          }
        }
      }
    }
  }
};

// Q6_K: element 128h + 64m + i (i < 64) has its low 4 bits in the low (m = 0)
// or high (m = 1) nibble of ql[64h + i], and bits 4-5 in bits 4m + 2(i / 32),
// +1 of qh[32h + i % 32]; value d * sc[e / 16] * (q - 32), z = 32. The 16
// int8 scales and d of the 16 rows come in by 5 gathers per super-block.
struct GroupQ6_K {
  static constexpr int64_t kStepCols = 64;
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[kT]) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i bits45 = _mm512_set1_epi8(0x30);
    const __m512i left0 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i right1 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    alignas(64) int32_t offs[16];
    for (int i = 0; i < 16; ++i) offs[i] = static_cast<int32_t>(rows[i] - rows[0]);
    const __m512i row_offs = _mm512_load_si512(offs);
    for (int64_t sb = 0; sb < x.n_blocks / 8; ++sb) {
      const uint8_t* base = rows[0] + static_cast<size_t>(sb) * 210;
      __m512i sc[4];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) sc[k] = gather_words(base, row_offs, 192 + 4 * k);
      // Bytes 206..209: d is the upper word (the last 4 bytes of the block).
      const __m512 d = _mm512_cvtph_ps(
          _mm512_cvtepi32_epi16(_mm512_srli_epi32(gather_words(base, row_offs, 206), 16)));
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 2
        for (int m = 0; m < 2; ++m) {
          pf.step();
          __m512i u[kT][4];
#pragma GCC unroll 4
          for (int k = 0; k < 4; ++k) {
            __m512i codes[4];
#pragma GCC unroll 4
            for (int i = 0; i < 4; ++i) {
              const uint8_t* blk = rows[4 * k + i] + static_cast<size_t>(sb) * 210;
              const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
              const __m512i qh = _mm512_broadcast_i64x4(load32(blk + 128 + 32 * h));
              const __m512i low = _mm512_and_si512(m == 0 ? ql : _mm512_srli_epi16(ql, 4), low4);
              const __m512i high =
                  m == 0 ? _mm512_sllv_epi16(qh, left0) : _mm512_srlv_epi16(qh, right1);
              codes[i] = _mm512_ternarylogic_epi32(low, high, bits45, 0xf8);  // a | (b & c)
            }
            const int64_t col = sb * 256 + 128 * h + 64 * m;
#pragma GCC unroll 4
            for (int t = 0; t < kT; ++t) {
              const __m512i xq = acts64(x, t, col, true);
              u[t][k] = quad_sum(dot(codes[0], xq), dot(codes[1], xq), dot(codes[2], xq),
                                 dot(codes[3], xq));
            }
          }
          const int first = 8 * h + 4 * m;  // sub-block of 128-bit lane 0
#pragma GCC unroll 4
          for (int t = 0; t < kT; ++t) {
            const int64_t sub = t * 2 * x.n_blocks + sb * 16 + first;
            __m512i s[4];
            quarters_of(u[t], s);
#pragma GCC unroll 4
            for (int l = 0; l < 4; ++l) {
              const int i = first + l;
              const __m512 scale =
                  _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_srai_epi32(
                                       _mm512_slli_epi32(sc[i / 4], 24 - 8 * (i % 4)), 24)));
              out[t] =
                  scale_add(out[t], minus(s[l], 32 * x.qsum16[sub + l]), scale, x.d[(sub + l) / 2]);
            }
          }
        }
      }
    }
  }
};

// ---------------------------------------------------------------------------
// Float formats: the prefill's chain out = fma(W[r, c], x[c], out) over the
// columns in order (matmul_prefill.cpp), with rows in lanes: 16 columns of
// the 16 rows are loaded as f32 and transposed in registers (64 shuffles),
// then each column is one FMA per token, the activation broadcast.

HWY_INLINE __mmask16 first_lanes(int64_t n) {
  return static_cast<__mmask16>((1u << n) - 1);
}

struct LoadF32 {
  static constexpr int64_t kBytes = 4;
  static HWY_INLINE __m512 load(const uint8_t* row, int64_t c) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + c);
  }
  static HWY_INLINE __m512 load_part(const uint8_t* row, int64_t c, int64_t n) {
    return _mm512_maskz_loadu_ps(first_lanes(n), reinterpret_cast<const float*>(row) + c);
  }
};
struct LoadF16 {
  static constexpr int64_t kBytes = 2;
  static HWY_INLINE __m512 load(const uint8_t* row, int64_t c) {
    return _mm512_cvtph_ps(load32(row + 2 * c));
  }
  static HWY_INLINE __m512 load_part(const uint8_t* row, int64_t c, int64_t n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_lanes(n), row + 2 * c));
  }
};
// bf16 is the upper half of an f32.
struct LoadBF16 {
  static constexpr int64_t kBytes = 2;
  static HWY_INLINE __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static HWY_INLINE __m512 load(const uint8_t* row, int64_t c) {
    return widen(load32(row + 2 * c));
  }
  static HWY_INLINE __m512 load_part(const uint8_t* row, int64_t c, int64_t n) {
    return widen(_mm256_maskz_loadu_epi16(first_lanes(n), row + 2 * c));
  }
};

// v[i] lane k -> v[k] lane i.
HWY_INLINE void transpose16(__m512 (&v)[16]) {
  __m512i a[16], b[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) a[i] = _mm512_castps_si512(v[i]);
    // Within 128-bit lanes: pairs of rows, then quads (a[4i + c] holds, per
    // lane L, column 4L + c of rows 4i..4i+3).
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    b[2 * i] = _mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
    b[2 * i + 1] = _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    a[4 * i] = _mm512_unpacklo_epi64(b[4 * i], b[4 * i + 2]);
    a[4 * i + 1] = _mm512_unpackhi_epi64(b[4 * i], b[4 * i + 2]);
    a[4 * i + 2] = _mm512_unpacklo_epi64(b[4 * i + 1], b[4 * i + 3]);
    a[4 * i + 3] = _mm512_unpackhi_epi64(b[4 * i + 1], b[4 * i + 3]);
  }
  // Across lanes: column 4L + c = lane L of a[c], a[4 + c], a[8 + c], a[12 + c].
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const __m512i c0 = _mm512_shuffle_i32x4(a[c], a[4 + c], 0x88);
    const __m512i c1 = _mm512_shuffle_i32x4(a[c], a[4 + c], 0xdd);
    const __m512i d0 = _mm512_shuffle_i32x4(a[8 + c], a[12 + c], 0x88);
    const __m512i d1 = _mm512_shuffle_i32x4(a[8 + c], a[12 + c], 0xdd);
    v[c] = _mm512_castsi512_ps(_mm512_shuffle_i32x4(c0, d0, 0x88));
    v[8 + c] = _mm512_castsi512_ps(_mm512_shuffle_i32x4(c0, d0, 0xdd));
    v[4 + c] = _mm512_castsi512_ps(_mm512_shuffle_i32x4(c1, d1, 0x88));
    v[12 + c] = _mm512_castsi512_ps(_mm512_shuffle_i32x4(c1, d1, 0xdd));
  }
}

// A step is one 64-byte line of each row (16 or 32 columns).
template <class Load>
struct GroupFloat {
  static constexpr int64_t kStepCols = 64 / Load::kBytes;
  // Columns [c, c + 16) into out.
  template <int kT>
  static HWY_INLINE void block(const uint8_t* const* rows, const Acts& x, int64_t c,
                               VOut (&out)[kT]) {
    __m512 v[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) v[i] = Load::load(rows[i], c);
    transpose16(v);
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) {
      const float* xt = x.xf + t * x.n_cols + c;
#pragma GCC unroll 16
      for (int k = 0; k < 16; ++k) out[t] = _mm512_fmadd_ps(v[k], _mm512_set1_ps(xt[k]), out[t]);
    }
  }
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[kT]) {
    int64_t c = 0;
    for (; c + kStepCols <= x.n_cols; c += kStepCols) {
      pf.step();
#pragma GCC unroll 2
      for (int64_t sub = 0; sub < kStepCols; sub += 16) block<kT>(rows, x, c + sub, out);
    }
    if (c == x.n_cols) return;
    pf.step();
    for (; c + 16 <= x.n_cols; c += 16) block<kT>(rows, x, c, out);
    if (c == x.n_cols) return;
    const int64_t n = x.n_cols - c;
    __m512 v[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) v[i] = Load::load_part(rows[i], c, n);
    transpose16(v);
    for (int t = 0; t < kT; ++t) {
      const float* xt = x.xf + t * x.n_cols + c;
      for (int64_t k = 0; k < n; ++k) out[t] = _mm512_fmadd_ps(v[k], _mm512_set1_ps(xt[k]), out[t]);
    }
  }
};

HWY_INLINE void store_rows(float* y, VOut v, int64_t n_live) {
  _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << n_live) - 1), v);
}
HWY_INLINE VOut zero_out() {
  return _mm512_setzero_ps();
}
