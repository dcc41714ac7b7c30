// Integer tile primitives of the x86 vector targets (AVX2, AVX3, AVX3_DL)
// shared by the integer prefill kernels (matmul_prefill_int8.cpp,
// matmul_q4_0_strips.cpp). Textually included inside each file's
// HWY_NAMESPACE for those targets only (so no include guard): the register
// tile geometry (kLanes rows per vector, kV vectors per panel, kT tokens per
// tile) and the vector operations the tile kernels are written in.

#if HWY_TARGET == HWY_AVX2
using VI = __m256i;
using VF = __m256;
constexpr int kLanes = 8;
constexpr int kV = 2;  // row vectors per panel
constexpr int kT = 4;  // tokens per tile: 8 accumulators + 2 weights + 3 temporaries
HWY_INLINE VI load_i(const void* p) {
  return _mm256_load_si256(static_cast<const __m256i*>(p));
}
HWY_INLINE void store_i(void* p, VI v) {
  _mm256_store_si256(static_cast<__m256i*>(p), v);
}
HWY_INLINE VI set1_i(int32_t v) {
  return _mm256_set1_epi32(v);
}
HWY_INLINE VI zero_i() {
  return _mm256_setzero_si256();
}
HWY_INLINE VI add_i(VI a, VI b) {
  return _mm256_add_epi32(a, b);
}
HWY_INLINE VI neg_times_128(VI a) {
  return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(a, 7));
}
HWY_INLINE VI maddubs(VI u, VI s) {
  return _mm256_maddubs_epi16(u, s);
}
HWY_INLINE VI madd(VI a, VI b) {
  return _mm256_madd_epi16(a, b);
}
HWY_INLINE VI add_i16(VI a, VI b) {
  return _mm256_add_epi16(a, b);
}
HWY_INLINE VI set1_i16(int16_t v) {
  return _mm256_set1_epi16(v);
}
HWY_INLINE VI xor_i(VI a, VI b) {
  return _mm256_xor_si256(a, b);
}
HWY_INLINE VI abs8(VI w) {
  return _mm256_abs_epi8(w);
}
// x negated in the bytes where w < 0 (zero where w == 0).
HWY_INLINE VI sign8(VI x, VI w) {
  return _mm256_sign_epi8(x, w);
}
HWY_INLINE VF load_f(const float* p) {
  return _mm256_load_ps(p);
}
HWY_INLINE void store_f(float* p, VF v) {
  _mm256_store_ps(p, v);
}
HWY_INLINE void store_unaligned_f(float* p, VF v) {
  _mm256_storeu_ps(p, v);
}
HWY_INLINE VF set1_f(float v) {
  return _mm256_set1_ps(v);
}
HWY_INLINE VF zero_f() {
  return _mm256_setzero_ps();
}
HWY_INLINE VF mul_f(VF a, VF b) {
  return _mm256_mul_ps(a, b);
}
HWY_INLINE VF fmadd_f(VF a, VF b, VF c) {
  return _mm256_fmadd_ps(a, b, c);
}
HWY_INLINE VF cvt_f(VI a) {
  return _mm256_cvtepi32_ps(a);
}
#else
using VI = __m512i;
using VF = __m512;
constexpr int kLanes = 16;
constexpr int kV = 3;
// 4 x 6 = 24 accumulators + 4 weights + 1 broadcast of the 32 registers with
// VNNI; one fewer token without (a constant and a temporary more).
constexpr int kT = HWY_TARGET == HWY_AVX3_DL ? 4 : 5;
HWY_INLINE VI load_i(const void* p) {
  return _mm512_load_si512(p);
}
HWY_INLINE void store_i(void* p, VI v) {
  _mm512_store_si512(p, v);
}
HWY_INLINE VI set1_i(int32_t v) {
  return _mm512_set1_epi32(v);
}
HWY_INLINE VI zero_i() {
  return _mm512_setzero_si512();
}
HWY_INLINE VI add_i(VI a, VI b) {
  return _mm512_add_epi32(a, b);
}
HWY_INLINE VI neg_times_128(VI a) {
  return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(a, 7));
}
HWY_INLINE VI maddubs(VI u, VI s) {
  return _mm512_maddubs_epi16(u, s);
}
HWY_INLINE VI madd(VI a, VI b) {
  return _mm512_madd_epi16(a, b);
}
HWY_INLINE VI add_i16(VI a, VI b) {
  return _mm512_add_epi16(a, b);
}
HWY_INLINE VI set1_i16(int16_t v) {
  return _mm512_set1_epi16(v);
}
HWY_INLINE VI xor_i(VI a, VI b) {
  return _mm512_xor_si512(a, b);
}
HWY_INLINE VI abs8(VI w) {
  return _mm512_abs_epi8(w);
}
// x negated in the bytes where w < 0.
HWY_INLINE VI sign8(VI x, VI w) {
  return _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
}
HWY_INLINE VF load_f(const float* p) {
  return _mm512_load_ps(p);
}
HWY_INLINE void store_f(float* p, VF v) {
  _mm512_store_ps(p, v);
}
HWY_INLINE void store_unaligned_f(float* p, VF v) {
  _mm512_storeu_ps(p, v);
}
HWY_INLINE VF set1_f(float v) {
  return _mm512_set1_ps(v);
}
HWY_INLINE VF zero_f() {
  return _mm512_setzero_ps();
}
HWY_INLINE VF mul_f(VF a, VF b) {
  return _mm512_mul_ps(a, b);
}
HWY_INLINE VF fmadd_f(VF a, VF b, VF c) {
  return _mm512_fmadd_ps(a, b, c);
}
HWY_INLINE VF cvt_f(VI a) {
  return _mm512_cvtepi32_ps(a);
}
#endif

constexpr int kPanelRows = kV * kLanes;
constexpr bool kHasVnni = HWY_TARGET == HWY_AVX3_DL;

// acc + sum over each group of 4 bytes of u[i] * s[i] (u unsigned, s signed).
// `ones` (i16 lanes of 1) is used only without VNNI.
HWY_INLINE VI dot4(VI acc, VI u, VI s, VI ones) {
#if HWY_TARGET == HWY_AVX3_DL
  (void)ones;
  return _mm512_dpbusd_epi32(acc, u, s);
#else
  return add_i(acc, madd(maddubs(u, s), ones));
#endif
}

HWY_INLINE VI broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return set1_i(v);
}
