// Decode kernels of matmul_decode.cpp in 256-bit code for the AVX2 and AVX3
// (AVX-512 without VNNI) targets: G = 8 rows per group, 32 columns (8 i32
// lanes of 4 products) per vpmaddubsw + vpmaddwd. Textually included by
// matmul_decode.cpp inside its HWY_NAMESPACE for those targets only (so no
// include guard), after Acts, GroupPrefetch and the scalar helpers.

constexpr int kGroup = kGroupRows;
using VOut = __m256;

HWY_INLINE __m256i dot(__m256i u, __m256i q) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1));
}
// Both factors signed: |w| * (q with w's sign). |w| <= 128, |q| <= 127: no
// i16 saturation (2 * 128 * 127 < 2^15).
HWY_INLINE __m256i dot_signed(__m256i w, __m256i q) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w)),
                           _mm256_set1_epi16(1));
}

HWY_INLINE __m256i quad_sum(__m256i d0, __m256i d1, __m256i d2, __m256i d3) {
  const __m256i s01 =
      _mm256_add_epi32(_mm256_unpacklo_epi32(d0, d1), _mm256_unpackhi_epi32(d0, d1));
  const __m256i s23 =
      _mm256_add_epi32(_mm256_unpacklo_epi32(d2, d3), _mm256_unpackhi_epi32(d2, d3));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
}

// u[k] from quad_sum of rows 4k..4k+3 -> 16-column sums s[L] (128-bit lane
// L), row i in lane i; their sum is the 32-column sum.
HWY_INLINE void halves_of(const __m256i (&u)[2], __m256i (&s)[2]) {
  s[0] = _mm256_permute2x128_si256(u[0], u[1], 0x20);
  s[1] = _mm256_permute2x128_si256(u[0], u[1], 0x31);
}
HWY_INLINE __m256i block_of(const __m256i (&u)[2]) {
  __m256i s[2];
  halves_of(u, s);
  return _mm256_add_epi32(s[0], s[1]);
}

HWY_INLINE __m256 scale_add(__m256 out, __m256i i, __m256 scale, float dx) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(scale, _mm256_set1_ps(dx)), out);
}
HWY_INLINE __m256 offset_add(__m256 out, __m256 offset, float sx) {
  return _mm256_fmadd_ps(offset, _mm256_set1_ps(sx), out);
}
HWY_INLINE __m256i minus(__m256i i, int32_t v) {
  return _mm256_sub_epi32(i, _mm256_set1_epi32(v));
}

HWY_INLINE __m256i acts32(const Acts& x, int t, int64_t c) {
  return load32(x.q + t * x.n_cols + c);
}

// The f16 words at byte offset `at` of the 8 rows, as f32.
HWY_INLINE __m256 halves_at(const uint8_t* const* rows, size_t at) {
  const __m128i lo = _mm_set_epi16(0, 0, 0, 0, static_cast<int16_t>(word_at(rows[3] + at)),
                                   static_cast<int16_t>(word_at(rows[2] + at)),
                                   static_cast<int16_t>(word_at(rows[1] + at)),
                                   static_cast<int16_t>(word_at(rows[0] + at)));
  const __m128i hi = _mm_set_epi16(0, 0, 0, 0, static_cast<int16_t>(word_at(rows[7] + at)),
                                   static_cast<int16_t>(word_at(rows[6] + at)),
                                   static_cast<int16_t>(word_at(rows[5] + at)),
                                   static_cast<int16_t>(word_at(rows[4] + at)));
  return _mm256_cvtph_ps(_mm_unpacklo_epi64(lo, hi));
}

// Low nibbles of 16 bytes in the low 128 bits, high nibbles in the high.
HWY_INLINE __m256i split_nibbles(const uint8_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

// Q4_0 (z = 8) and Q4_1, one block per step.
template <bool kHasMin>
struct GroupQ4 {
  static constexpr int64_t kStepCols = 32;
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[kT]) {
    constexpr size_t kBytes = kHasMin ? 20 : 18;
    for (int64_t b = 0; b < x.n_blocks; ++b) {
      pf.step();
      const size_t at = static_cast<size_t>(b) * kBytes;
      __m256i u[kT][2];
#pragma GCC unroll 2
      for (int k = 0; k < 2; ++k) {
        __m256i codes[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i)
          codes[i] = split_nibbles(rows[4 * k + i] + at + (kHasMin ? 4 : 2));
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) {
          const __m256i xq = acts32(x, t, b * 32);
          u[t][k] =
              quad_sum(dot(codes[0], xq), dot(codes[1], xq), dot(codes[2], xq), dot(codes[3], xq));
        }
      }
      const __m256 d = halves_at(rows, at);
      __m256 m = _mm256_setzero_ps();
      if (kHasMin) m = halves_at(rows, at + 2);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        __m256i i = block_of(u[t]);
        if (!kHasMin) {
          const int32_t* qs = x.qsum16 + t * 2 * x.n_blocks;
          i = minus(i, 8 * (qs[2 * b] + qs[2 * b + 1]));
        }
        out[t] = scale_add(out[t], i, d, x.d[t * x.n_blocks + b]);
        if (kHasMin) out[t] = offset_add(out[t], m, x.sum[t * x.n_blocks + b]);
      }
    }
  }
};

// Q8_0, one block per step, signed codes (sign trick).
struct GroupQ8_0 {
  static constexpr int64_t kStepCols = 32;
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[kT]) {
    for (int64_t b = 0; b < x.n_blocks; ++b) {
      pf.step();
      const size_t at = static_cast<size_t>(b) * 34;
      __m256i u[kT][2];
#pragma GCC unroll 2
      for (int k = 0; k < 2; ++k) {
        __m256i codes[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) codes[i] = load32(rows[4 * k + i] + at + 2);
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) {
          const __m256i xq = acts32(x, t, b * 32);
          u[t][k] = quad_sum(dot_signed(codes[0], xq), dot_signed(codes[1], xq),
                             dot_signed(codes[2], xq), dot_signed(codes[3], xq));
        }
      }
      const __m256 d = halves_at(rows, at);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        out[t] = scale_add(out[t], block_of(u[t]), d, x.d[t * x.n_blocks + b]);
      }
    }
  }
};

HWY_INLINE __m256i gather_words(const uint8_t* base, __m256i rows, int at) {
  return _mm256_i32gather_epi32(reinterpret_cast<const int*>(base + at), rows, 1);
}

HWY_INLINE __m256 byte_f32(__m256i v, int k) {
  return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 8 * k), _mm256_set1_epi32(0xff)));
}

// f16 words (low 16 bits of each i32 lane) to f32.
HWY_INLINE __m256 low_halves(__m256i v) {
  const __m256i packed =
      _mm256_packus_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)), _mm256_setzero_si256());
  return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08)));
}

HWY_INLINE __m256i row_offsets(const uint8_t* const* rows) {
  alignas(32) int32_t offs[8];
  for (int i = 0; i < 8; ++i) offs[i] = static_cast<int32_t>(rows[i] - rows[0]);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(offs));
}

// Q4_K and Q5_K, one sub-block of 32 per step (see the AVX-512 version).
template <bool kHighBit>
struct GroupQK45 {
  static constexpr int64_t kStepCols = 32;
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[kT]) {
    constexpr size_t kBytes = kHighBit ? 176 : 144;
    constexpr size_t kQs = kHighBit ? 48 : 16;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i row_offs = row_offsets(rows);
    for (int64_t sb = 0; sb < x.n_blocks / 8; ++sb) {
      const uint8_t* base = rows[0] + static_cast<size_t>(sb) * kBytes;
      const __m256i g0 = gather_words(base, row_offs, 0);
      const __m256i g1 = gather_words(base, row_offs, 4);
      const __m256i g2 = gather_words(base, row_offs, 8);
      const __m256i g3 = gather_words(base, row_offs, 12);
      const __m256 d = low_halves(g0);
      const __m256 dmin = low_halves(_mm256_srli_epi32(g0, 16));
      const __m256i m63 = _mm256_set1_epi32(0x3f3f3f3f);
      const __m256i m0f = _mm256_set1_epi32(0x0f0f0f0f);
      const __m256i m30 = _mm256_set1_epi32(0x30303030);
      const __m256i sc[2] = {_mm256_and_si256(g1, m63),
                             _mm256_or_si256(_mm256_and_si256(g3, m0f),
                                             _mm256_and_si256(_mm256_srli_epi32(g1, 2), m30))};
      const __m256i mn[2] = {_mm256_and_si256(g2, m63),
                             _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(g3, 4), m0f),
                                             _mm256_and_si256(_mm256_srli_epi32(g2, 2), m30))};
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        pf.step();
        __m256i u[kT][2];
#pragma GCC unroll 2
        for (int k = 0; k < 2; ++k) {
          __m256i codes[4];
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) {
            const uint8_t* blk = rows[4 * k + i] + static_cast<size_t>(sb) * kBytes;
            const __m256i raw = load32(blk + kQs + 32 * (j / 2));
            codes[i] = _mm256_and_si256(j % 2 == 0 ? raw : _mm256_srli_epi16(raw, 4), low4);
            if (kHighBit) {
              const __m256i bit =
                  _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(load32(blk + 16), j), 4),
                                   _mm256_set1_epi8(0x10));
              codes[i] = _mm256_or_si256(codes[i], bit);
            }
          }
#pragma GCC unroll 4
          for (int t = 0; t < kT; ++t) {
            const __m256i xq = acts32(x, t, sb * 256 + 32 * j);
            u[t][k] = quad_sum(dot(codes[0], xq), dot(codes[1], xq), dot(codes[2], xq),
                               dot(codes[3], xq));
          }
        }
        const __m256 scale = _mm256_mul_ps(d, byte_f32(sc[j / 4], j % 4));
        const __m256 offset = _mm256_castsi256_ps(
            _mm256_xor_si256(_mm256_castps_si256(_mm256_mul_ps(dmin, byte_f32(mn[j / 4], j % 4))),
                             _mm256_set1_epi32(static_cast<int32_t>(0x80000000u))));
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) {
          const int64_t blk = t * x.n_blocks + sb * 8 + j;
          out[t] = scale_add(out[t], block_of(u[t]), scale, x.d[blk]);
          out[t] = offset_add(out[t], offset, x.sum[blk]);
        }
      }
    }
  }
};

// Q6_K, 32 columns (two sub-blocks of 16) per step, z = 32.
struct GroupQ6_K {
  static constexpr int64_t kStepCols = 32;
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[kT]) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i bits45 = _mm256_set1_epi8(0x30);
    const __m256i row_offs = row_offsets(rows);
    for (int64_t sb = 0; sb < x.n_blocks / 8; ++sb) {
      const uint8_t* base = rows[0] + static_cast<size_t>(sb) * 210;
      __m256i sc[4];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) sc[k] = gather_words(base, row_offs, 192 + 4 * k);
      const __m256 d = low_halves(_mm256_srli_epi32(gather_words(base, row_offs, 206), 16));
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 4
        for (int k4 = 0; k4 < 4; ++k4) {
          pf.step();
          __m256i u[kT][2];
#pragma GCC unroll 2
          for (int k = 0; k < 2; ++k) {
            __m256i codes[4];
#pragma GCC unroll 4
            for (int i = 0; i < 4; ++i) {
              const uint8_t* blk = rows[4 * k + i] + static_cast<size_t>(sb) * 210;
              const __m256i ql = load32(blk + 64 * h + 32 * (k4 & 1));
              const __m256i qh = load32(blk + 128 + 32 * h);
              const __m256i low = _mm256_and_si256(k4 < 2 ? ql : _mm256_srli_epi16(ql, 4), low4);
              // Bits 2k4, 2k4+1 of qh to bits 4, 5.
              const __m256i shifted = k4 == 0   ? _mm256_slli_epi16(qh, 4)
                                      : k4 == 1 ? _mm256_slli_epi16(qh, 2)
                                      : k4 == 2 ? qh
                                                : _mm256_srli_epi16(qh, 2);
              codes[i] = _mm256_or_si256(low, _mm256_and_si256(shifted, bits45));
            }
            const int64_t col = sb * 256 + 128 * h + 32 * k4;
#pragma GCC unroll 4
            for (int t = 0; t < kT; ++t) {
              const __m256i xq = acts32(x, t, col);
              u[t][k] = quad_sum(dot(codes[0], xq), dot(codes[1], xq), dot(codes[2], xq),
                                 dot(codes[3], xq));
            }
          }
          const int first = 8 * h + 2 * k4;  // sub-block of 128-bit lane 0
#pragma GCC unroll 4
          for (int t = 0; t < kT; ++t) {
            const int64_t sub = t * 2 * x.n_blocks + sb * 16 + first;
            __m256i s[2];
            halves_of(u[t], s);
#pragma GCC unroll 2
            for (int l = 0; l < 2; ++l) {
              const int i = first + l;
              const __m256 scale =
                  _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_srai_epi32(
                                       _mm256_slli_epi32(sc[i / 4], 24 - 8 * (i % 4)), 24)));
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
// columns in order (matmul_prefill.cpp), with rows in lanes: 8 columns of
// the 8 rows are loaded as f32 and transposed in registers (24 shuffles),
// then each column is one FMA per token, the activation broadcast.

struct LoadF32 {
  static HWY_INLINE __m256 load(const uint8_t* row, int64_t c) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
  }
  static constexpr size_t kBytes = 4;
};
struct LoadF16 {
  static HWY_INLINE __m256 load(const uint8_t* row, int64_t c) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * c)));
  }
  static constexpr size_t kBytes = 2;
};
// bf16 is the upper half of an f32.
struct LoadBF16 {
  static HWY_INLINE __m256 load(const uint8_t* row, int64_t c) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * c))), 16));
  }
  static constexpr size_t kBytes = 2;
};

// v[i] lane k -> v[k] lane i.
HWY_INLINE void transpose8(__m256 (&v)[8]) {
  __m256 p[8], q[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    p[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    p[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    q[4 * i] = _mm256_shuffle_ps(p[4 * i], p[4 * i + 2], 0x44);
    q[4 * i + 1] = _mm256_shuffle_ps(p[4 * i], p[4 * i + 2], 0xee);
    q[4 * i + 2] = _mm256_shuffle_ps(p[4 * i + 1], p[4 * i + 3], 0x44);
    q[4 * i + 3] = _mm256_shuffle_ps(p[4 * i + 1], p[4 * i + 3], 0xee);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2f128_ps(q[i], q[i + 4], 0x20);
    v[i + 4] = _mm256_permute2f128_ps(q[i], q[i + 4], 0x31);
  }
}

// A step is one 64-byte line of each row (16 or 32 columns).
template <class Load>
struct GroupFloat {
  static constexpr int64_t kStepCols = 64 / static_cast<int64_t>(Load::kBytes);
  // Two groups of rows per pass: each output is one FMA chain over the
  // columns (the canonical f32 order), so a group alone, for one token, is
  // one dependent chain running at the FMA latency; the second group's
  // chain runs beside it (2x the F16 decode rate on AVX2, docs/kernels.md).
  static constexpr int kGroupsPerPass = 2;
  // Columns [c, c + 8) of both groups into out[0] and out[1].
  template <int kT>
  static HWY_INLINE void block(const uint8_t* const* rows, const Acts& x, int64_t c,
                               VOut (&out)[2][kT]) {
    __m256 a[8], b[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) a[i] = Load::load(rows[i], c);
    transpose8(a);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) b[i] = Load::load(rows[8 + i], c);
    transpose8(b);
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) {
      const float* xt = x.xf + t * x.n_cols + c;
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m256 xk = _mm256_set1_ps(xt[k]);
        out[0][t] = _mm256_fmadd_ps(a[k], xk, out[0][t]);
        out[1][t] = _mm256_fmadd_ps(b[k], xk, out[1][t]);
      }
    }
  }
  // rows: 16 row pointers (group 0, then group 1).
  template <int kT>
  static HWY_INLINE void run(const uint8_t* const* rows, const Acts& x, GroupPrefetch& pf,
                             VOut (&out)[2][kT]) {
    int64_t c = 0;
    for (; c + kStepCols <= x.n_cols; c += kStepCols) {
      pf.step();
#pragma GCC unroll 4
      for (int64_t sub = 0; sub < kStepCols; sub += 8) block<kT>(rows, x, c + sub, out);
    }
    if (c == x.n_cols) return;
    pf.step();
    for (; c + 8 <= x.n_cols; c += 8) block<kT>(rows, x, c, out);
    if (c == x.n_cols) return;
    // The last n < 8 columns through a zero-padded copy.
    const int64_t n = x.n_cols - c;
    for (int g = 0; g < 2; ++g) {
      alignas(32) uint8_t part[8][8 * Load::kBytes] = {};
      __m256 v[8];
      for (int i = 0; i < 8; ++i) {
        std::memcpy(part[i], rows[8 * g + i] + static_cast<size_t>(c) * Load::kBytes,
                    static_cast<size_t>(n) * Load::kBytes);
        v[i] = Load::load(part[i], 0);
      }
      transpose8(v);
      for (int t = 0; t < kT; ++t) {
        const float* xt = x.xf + t * x.n_cols + c;
        for (int64_t k = 0; k < n; ++k) {
          out[g][t] = _mm256_fmadd_ps(v[k], _mm256_set1_ps(xt[k]), out[g][t]);
        }
      }
    }
  }
};

HWY_INLINE void store_rows(float* y, VOut v, int64_t n_live) {
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, v);
  std::memcpy(y, tmp, static_cast<size_t>(n_live) * sizeof(float));
}
HWY_INLINE VOut zero_out() {
  return _mm256_setzero_ps();
}
