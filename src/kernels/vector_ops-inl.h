// Small f32 vector primitives shared by the attention kernels (contiguous and
// paged), compiled once per SIMD target: include it after hwy/highway.h inside
// a file that uses foreach_target.h. The include guard toggles per target, as
// Highway's -inl.h convention requires.
#if defined(KVFORGE_KERNELS_VECTOR_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVFORGE_KERNELS_VECTOR_OPS_INL_H_
#undef KVFORGE_KERNELS_VECTOR_OPS_INL_H_
#else
#define KVFORGE_KERNELS_VECTOR_OPS_INL_H_
#endif

#include <cmath>
#include <cstdint>

#include "hwy/highway.h"
#include "util/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace kvforge::kernels {
namespace HWY_NAMESPACE {
namespace vec {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// One f16 at p (any alignment) as f32, converted by the target's instruction
// where it has one (F16C on x86) instead of the portable bit manipulation.
HWY_INLINE float load_f16(const uint8_t* p) {
  const hn::CappedTag<float, 1> d1;
  const hn::Rebind<hwy::float16_t, decltype(d1)> dh1;
  return hn::GetLane(hn::PromoteTo(d1, hn::LoadU(dh1, reinterpret_cast<const hwy::float16_t*>(p))));
}

// dst[0, n) = f16 src[0, n) as f32.
HWY_INLINE void load_f16_row(const uint16_t* src, float* dst, int32_t n) {
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const auto* h = reinterpret_cast<const hwy::float16_t*>(src);
  int32_t i = 0;
  for (; i + static_cast<int32_t>(hn::Lanes(df)) <= n; i += static_cast<int32_t>(hn::Lanes(df))) {
    hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, h + i)), df, dst + i);
  }
  for (; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}

HWY_INLINE float dot(const float* a, const float* b, int32_t n) {
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  auto sum = hn::Zero(df);
  int32_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    sum = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), sum);
  }
  float s = hn::GetLane(hn::SumOfLanes(df, sum));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y[0, n) += p * x[0, n)
HWY_INLINE void axpy(float p, const float* x, float* y, int32_t n) {
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  const auto vp = hn::Set(df, p);
  int32_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::MulAdd(vp, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  }
  for (; i < n; ++i) y[i] += p * x[i];
}

// y[0, n) *= s
HWY_INLINE void scale(float s, float* y, int32_t n) {
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  const auto vs = hn::Set(df, s);
  int32_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Mul(vs, hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] *= s;
}

// e^x for x <= 0, as the softmax takes it, with a relative error below
// 2e-7 (tests/ops/softmax_exp_test.cpp): x = n·ln2 + r with |r| <= ln2/2
// (ln2 split in two parts so that n·ln2 is exact), e^r by its Taylor
// polynomial of degree 7 (truncation below 6e-9), times 2^n built in the
// exponent bits. About half the instructions of a general exp (no overflow,
// no subnormals). Inputs below -87.3 give about 1e-38 instead of their
// subnormal or zero value (a softmax weight that small never counts); NaN
// stays NaN.
template <class V>
HWY_INLINE V exp_nonpositive(V x) {
  const hn::DFromV<V> df;
  const hn::RebindToSigned<decltype(df)> di;
  const V limit = hn::Set(df, -87.3f);
  x = hn::IfThenElse(hn::Lt(x, limit), limit, x);               // NaN compares false: stays
  const V n = hn::Round(hn::Mul(x, hn::Set(df, 1.44269504f)));  // x / ln2
  const V r = hn::NegMulAdd(n, hn::Set(df, -2.12194440e-4f),
                            hn::NegMulAdd(n, hn::Set(df, 0.693359375f), x));
  V p = hn::Set(df, 1.0f / 5040.0f);
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 720.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 120.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 24.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 6.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 0.5f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f));
  const auto two_to_n = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127)));
  return hn::Mul(p, hn::BitCast(df, two_to_n));
}

// y[0, n) *= x[0, n), element by element
HWY_INLINE void multiply(const float* x, float* y, int32_t n) {
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  int32_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::Mul(hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  }
  for (; i < n; ++i) y[i] *= x[i];
}

// One step of the online (streaming) softmax: folds n new scores into a
// running maximum and denominator. The scores become their weights
// exp(score - new max) in place (vector exp: at long contexts a decode step
// spends more time in exp than in the dot products otherwise); the return
// value is the factor by which the caller must rescale what it accumulated.
HWY_INLINE float online_softmax_fold(float* scores, int32_t n, float& running_max, float& denom) {
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  float new_max = running_max;
  int32_t j = 0;
  if (n >= lanes) {
    auto vmax = hn::LoadU(df, scores);
    for (j = lanes; j + lanes <= n; j += lanes) vmax = hn::Max(vmax, hn::LoadU(df, scores + j));
    const float m = hn::GetLane(hn::MaxOfLanes(df, vmax));
    new_max = m > new_max ? m : new_max;
  }
  for (; j < n; ++j) new_max = scores[j] > new_max ? scores[j] : new_max;
  // Once the maximum stops rising (after the first few chunks of a long
  // context, as a rule) the factor is exactly 1 = e^0: no call to exp.
  const float rescale = new_max == running_max ? 1.0f : std::exp(running_max - new_max);
  running_max = new_max;
  const auto vmax = hn::Set(df, new_max);
  auto vsum = hn::Zero(df);
  for (j = 0; j + lanes <= n; j += lanes) {
    const auto w = exp_nonpositive(hn::Sub(hn::LoadU(df, scores + j), vmax));
    hn::StoreU(w, df, scores + j);
    vsum = hn::Add(vsum, w);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
  for (; j < n; ++j) {
    scores[j] = std::exp(scores[j] - new_max);
    sum += scores[j];
  }
  denom = denom * rescale + sum;
  return rescale;
}

}  // namespace vec
}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#endif  // KVFORGE_KERNELS_VECTOR_OPS_INL_H_
