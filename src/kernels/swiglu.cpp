// SwiGLU, out = silu(gate) * up = gate / (1 + exp(-gate)) * up, with
// Highway's vector exp (hwy/contrib/math, within 1 ulp of the correctly
// rounded value on inputs where exp(-gate) is finite): the FFN applies it to
// n_ff values per token, which the scalar std::exp made a few percent of a
// prefill. Compiled once per SIMD target.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/swiglu.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
// clang-format on

#include <algorithm>

#include "kernels/ops.h"

HWY_BEFORE_NAMESPACE();
namespace kvforge::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void swiglu_impl(const float* gate, const float* up, float* out, int64_t n) {
  const hn::ScalableTag<float> df;
  const auto lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto one = hn::Set(df, 1.0f);
  auto swiglu_lanes = [&](const float* g_in, const float* u_in, float* dst) {
    const auto g = hn::LoadU(df, g_in);
    // exp(-g) overflows to inf for g < -88.7: g / inf = -0, silu's limit.
    const auto silu = hn::Div(g, hn::Add(one, hn::Exp(df, hn::Neg(g))));
    hn::StoreU(hn::Mul(silu, hn::LoadU(df, u_in)), df, dst);
  };
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) swiglu_lanes(gate + i, up + i, out + i);
  if (i == n) return;
  // The tail takes the same vector operations (hn::Exp differs from
  // std::exp in the last bit): an element's result must not depend on where
  // it falls in the call, which the batched forward's rows of n_ff elements
  // each rely on (docs/kernels.md, "Batch invariance").
  HWY_ALIGN float g_tail[hn::MaxLanes(df)] = {};
  HWY_ALIGN float u_tail[hn::MaxLanes(df)] = {};
  HWY_ALIGN float o_tail[hn::MaxLanes(df)];
  const auto rest = static_cast<size_t>(n - i);
  std::copy_n(gate + i, rest, g_tail);
  std::copy_n(up + i, rest, u_tail);
  swiglu_lanes(g_tail, u_tail, o_tail);
  std::copy_n(o_tail, rest, out + i);
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kernels {

HWY_EXPORT(swiglu_impl);

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(swiglu_impl)(gate, up, out, n);
}

}  // namespace kvforge::kernels
#endif
