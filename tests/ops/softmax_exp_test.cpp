// exp_nonpositive (kernels/vector_ops-inl.h), the online softmax's exp, on
// every compiled SIMD target against std::exp in double.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/softmax_exp_test.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on
#include "kernels/vector_ops-inl.h"

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace kvforge::softmax_exp_test {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// out[i] = exp_nonpositive(x[i]); n a multiple of every target's lane count.
void exp_each(const float* x, float* out, size_t n) {
  const hn::ScalableTag<float> df;
  for (size_t i = 0; i < n; i += hn::Lanes(df)) {
    hn::StoreU(kernels::HWY_NAMESPACE::vec::exp_nonpositive(hn::LoadU(df, x + i)), df, out + i);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::softmax_exp_test
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <gtest/gtest.h>

namespace kvforge::softmax_exp_test {
namespace {

HWY_EXPORT(exp_each);

// exp_nonpositive of x on the target the dispatcher picks (x.size() a multiple of 64).
std::vector<float> exp_of(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  HWY_DYNAMIC_DISPATCH(exp_each)(x.data(), out.data(), x.size());
  return out;
}

// Runs check() once per SIMD target compiled and supported here.
template <class F>
void on_every_target(const F& check) {
  for (const int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    check();
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(SoftmaxExp, RelativeErrorBelow2e7DownToMinus87) {
  // Every 1/4096 from 0 to -87, plus points on both sides of the reduction
  // boundaries x = (k + 1/2) ln2.
  std::vector<float> x;
  for (int i = 0; i <= 87 * 4096; ++i) x.push_back(-static_cast<float>(i) / 4096.0f);
  for (int k = 0; k < 125; ++k) {
    const float boundary = -static_cast<float>((k + 0.5) * std::log(2.0));
    x.push_back(std::nextafter(boundary, 0.0f));
    x.push_back(boundary);
    x.push_back(std::nextafter(boundary, -1.0f));
  }
  while (x.size() % 64 != 0) x.push_back(0.0f);
  on_every_target([&] {
    const std::vector<float> y = exp_of(x);
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double expected = std::exp(static_cast<double>(x[i]));
      worst = std::max(worst, std::fabs(y[i] - expected) / expected);
    }
    EXPECT_LT(worst, 2e-7);  // 1.0e-7 measured on SSE4, AVX2 and scalar
  });
}

TEST(SoftmaxExp, ZeroGivesExactlyOne) {
  on_every_target([] {
    for (const float y : exp_of(std::vector<float>(64, 0.0f))) EXPECT_EQ(y, 1.0f);
  });
}

TEST(SoftmaxExp, FarBelowGivesATinyPositiveWeight) {
  std::vector<float> x(64, -100.0f);
  x[1] = -std::numeric_limits<float>::infinity();
  x[2] = -std::numeric_limits<float>::max();
  x[3] = -87.5f;
  on_every_target([&] {
    for (const float y : exp_of(x)) {
      EXPECT_GT(y, 0.0f);
      EXPECT_LT(y, 2e-38f);
    }
  });
}

TEST(SoftmaxExp, NotANumberStaysNotANumber) {
  std::vector<float> x(64, -1.0f);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  on_every_target([&] {
    const std::vector<float> y = exp_of(x);
    EXPECT_TRUE(std::isnan(y[5]));
    EXPECT_NEAR(y[4], std::exp(-1.0), 1e-7);
  });
}

}  // namespace
}  // namespace kvforge::softmax_exp_test
#endif  // HWY_ONCE
