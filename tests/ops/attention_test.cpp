#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/simd_targets_for_test.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace kvforge::kernels {
namespace {

struct Case {
  int n_tokens, first_pos, n_heads, n_kv_heads, head_dim;
};

// The streaming kernel must equal the two-pass double-precision reference,
// for prefill and decode shapes, GQA groups, chunk boundaries and f16 keys,
// on every SIMD target compiled and supported here.
TEST(Attention, MatchesReference) {
  const Case cases[] = {{1, 0, 2, 2, 8},    {1, 300, 8, 4, 8},     {7, 0, 4, 1, 16},
                        {5, 129, 6, 2, 64}, {1, 1000, 16, 2, 128}, {3, 250, 14, 2, 64}};
  ThreadPool pool(3);
  std::mt19937 rng(7);
  std::normal_distribution<float> n01;
  for (const Case& c : cases) {
    for (KvElement element : {KvElement::kF32, KvElement::kF16}) {
      const int capacity = c.first_pos + c.n_tokens + 3;
      const size_t kv_elems = size_t(c.n_kv_heads) * capacity * c.head_dim;
      std::vector<float> kf(kv_elems), vf(kv_elems);
      std::vector<uint16_t> kh(kv_elems), vh(kv_elems);
      for (size_t i = 0; i < kv_elems; ++i) {
        kf[i] = 2 * n01(rng);
        vf[i] = n01(rng);
        kh[i] = fp32_to_fp16(kf[i]);
        vh[i] = fp32_to_fp16(vf[i]);
      }
      std::vector<float> q(size_t(c.n_tokens) * c.n_heads * c.head_dim);
      for (auto& x : q) x = n01(rng);
      std::vector<float> ref(q.size());
      AttentionArgs a;
      a.q = q.data();
      a.k = element == KvElement::kF32 ? static_cast<const void*>(kf.data()) : kh.data();
      a.v = element == KvElement::kF32 ? static_cast<const void*>(vf.data()) : vh.data();
      a.element = element;
      a.head_stride = int64_t(capacity) * c.head_dim;
      a.n_tokens = c.n_tokens;
      a.first_pos = c.first_pos;
      a.n_heads = c.n_heads;
      a.n_kv_heads = c.n_kv_heads;
      a.head_dim = c.head_dim;
      a.scale = 1.0f / std::sqrt(float(c.head_dim));
      a.out = ref.data();
      attention_reference(a);
      test_util::on_every_simd_target([&](int64_t) {
        std::vector<float> out(q.size(), NAN);
        a.out = out.data();
        attention(a, pool);
        for (size_t i = 0; i < out.size(); ++i) {
          ASSERT_NEAR(out[i], ref[i], 2e-5)
              << "case " << c.n_tokens << "x" << c.first_pos << " i=" << i;
        }
      });
      if (HasFatalFailure()) return;
    }
  }
}

// A query attending to a single position returns that position's value.
TEST(Attention, SinglePositionReturnsValue) {
  ThreadPool pool(1);
  const float k[4] = {0.3f, -1.0f, 2.0f, 0.5f};
  const float v[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  const float q[4] = {9.0f, 9.0f, 9.0f, 9.0f};
  float out[4];
  AttentionArgs a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.out = out;
  a.head_stride = 4;
  a.n_tokens = 1;
  a.first_pos = 0;
  a.n_heads = 1;
  a.n_kv_heads = 1;
  a.head_dim = 4;
  attention(a, pool);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out[i], v[i]);
}

}  // namespace
}  // namespace kvforge::kernels
