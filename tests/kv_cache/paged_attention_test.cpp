// The paged cache's attention against dequantize-then-attend: for every
// codec, the keys and values a query should see are rebuilt independently
// from fresh codec instances (encode the block's rows, decode, rotate back)
// following the documented read rule, and attention is computed in double.
#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include "kv/hadamard.h"
#include "kv/kv_codec.h"
#include "kv/kv_codec_plan.h"
#include "kv/paged_attention.h"
#include "kv/paged_kv_cache.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace kvforge {
namespace {

struct Case {
  std::string codec;
  int32_t head_dim;
  int32_t block_tokens;
  // Another sequence takes a block before each of the first chunks, so this
  // sequence's block ids are not one consecutive run.
  bool interleaved = false;
  int32_t n_heads = 8;  // query heads per KV head: n_heads / n_kv_heads
  int32_t n_kv_heads = 2;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.codec + "_d" + std::to_string(info.param.head_dim) + "_b" +
                     std::to_string(info.param.block_tokens) +
                     (info.param.interleaved ? "_interleaved" : "") +
                     (info.param.n_heads != 8 || info.param.n_kv_heads != 2
                          ? "_h" + std::to_string(info.param.n_heads) + "_kv" +
                                std::to_string(info.param.n_kv_heads)
                          : "");
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class PagedAttentionTest : public ::testing::TestWithParam<Case> {};

// Rows as a query at `query_pos` should read them: raw f32 where the side is
// staged and the block is inside the window, else encode -> decode (-> H back).
std::vector<float> expected_rows(const KvCodec& codec, const std::vector<float>& raw,
                                 int32_t n_kv_heads, int32_t d, int32_t bt, int32_t query_pos) {
  const bool staged = !codec.token_granular() || codec.residual_tokens() > 0;
  PagedSide side;
  side.staged = staged;
  side.residual = codec.residual_tokens();
  const int32_t n_keys = query_pos + 1;
  std::vector<float> out(static_cast<size_t>(n_keys) * n_kv_heads * d);
  std::vector<uint8_t> tile(codec.tile_bytes());
  std::vector<float> decoded(static_cast<size_t>(bt) * d);
  const int64_t row_stride = static_cast<int64_t>(n_kv_heads) * d;
  for (int32_t j = 0; j * bt < n_keys; ++j) {
    const int32_t rows = std::min(bt, n_keys - j * bt);
    for (int32_t h = 0; h < n_kv_heads; ++h) {
      const float* src = raw.data() + j * bt * row_stride + h * d;
      if (!reads_encoded(side, j, bt, query_pos)) {
        for (int32_t r = 0; r < rows; ++r) {
          std::copy_n(src + r * row_stride, d, out.data() + (j * bt + r) * row_stride + h * d);
        }
        continue;
      }
      const int32_t encoded_rows = codec.token_granular() ? rows : bt;
      codec.encode(src, row_stride, 0, encoded_rows, tile.data());
      codec.decode(tile.data(), rows, decoded.data());
      for (int32_t r = 0; r < rows; ++r) {
        float* dst = out.data() + (j * bt + r) * row_stride + h * d;
        std::copy_n(decoded.data() + r * d, d, dst);
        if (codec.rotated()) hadamard_transform(dst, d);
      }
    }
  }
  return out;
}

// The numbers of 4- or 2-bit values stored by token pairs (kv_codec.h,
// kInt4TokenPairs, kInt2TokenPairs), per position and KV head: each group's
// f16 scale and min, and each channel's code, read from the tiles as documented;
// the rows a query reads from the staged window (KIVI), as they are.
struct TokenPairValues {
  int32_t n_kv_heads = 0;
  int32_t d = 0;
  std::vector<float> scales, mins;  // [position][kv head][group]
  std::vector<int> codes;           // [position][kv head][channel]
  std::vector<bool> staged;         // [position]: read from `raw` instead
  std::vector<float> raw;           // [position][kv head][channel]
};

TokenPairValues token_pair_values(const KvCodec& codec, const std::vector<float>& raw,
                                  int32_t n_kv_heads, int32_t d, int32_t bt, int32_t n_keys) {
  TokenPairValues v;
  v.n_kv_heads = n_kv_heads;
  v.d = d;
  const int32_t n_groups = d / 32;
  v.scales.resize(static_cast<size_t>(n_keys) * n_kv_heads * n_groups);
  v.mins.resize(v.scales.size());
  v.codes.resize(static_cast<size_t>(n_keys) * n_kv_heads * d);
  v.raw = raw;
  v.staged.assign(static_cast<size_t>(n_keys), false);
  const bool four_bits = codec.row_format() == KvRowFormat::kInt4TokenPairs;
  PagedSide side;
  side.staged = codec.residual_tokens() > 0;
  side.residual = codec.residual_tokens();
  std::vector<uint8_t> tile(codec.tile_bytes());
  const int64_t row_stride = static_cast<int64_t>(n_kv_heads) * d;
  auto half_at = [&](size_t index) {
    uint16_t bits;
    std::memcpy(&bits, tile.data() + 2 * index, 2);
    return fp16_to_fp32(bits);
  };
  for (int32_t j = 0; j * bt < n_keys; ++j) {
    const int32_t rows = std::min(bt, n_keys - j * bt);
    if (!reads_encoded(side, j, bt, n_keys - 1)) {
      std::fill_n(v.staged.begin() + j * bt, rows, true);
      continue;
    }
    for (int32_t h = 0; h < n_kv_heads; ++h) {
      codec.encode(raw.data() + j * bt * row_stride + h * d, row_stride, 0, rows, tile.data());
      for (int32_t r = 0; r < rows; ++r) {
        const size_t at = static_cast<size_t>(j * bt + r) * n_kv_heads + h;
        for (int32_t k = 0; k < n_groups; ++k) {
          v.scales[at * n_groups + k] = half_at(static_cast<size_t>(k) * bt + r);
          v.mins[at * n_groups + k] = half_at(static_cast<size_t>(n_groups + k) * bt + r);
        }
        const uint8_t* codes = tile.data() + 4 * static_cast<size_t>(n_groups) * bt;
        const size_t group0 = static_cast<size_t>(r / 16) * n_groups;
        for (int32_t c = 0; c < d; ++c) {
          const size_t in_byte = 2 * static_cast<size_t>(c % 16) + r % 2;
          if (four_bits) {  // 32 bytes per row pair and group
            const uint8_t byte = codes[((group0 + c / 32) * 8 + (r % 16) / 2) * 32 + in_byte];
            v.codes[at * d + c] = c % 32 < 16 ? byte & 0xF : byte >> 4;
          } else {  // 32 bytes per row quad and group, four 2-bit fields per byte
            const uint8_t byte = codes[((group0 + c / 32) * 4 + (r % 16) / 4) * 32 + in_byte];
            const int field = 2 * (r % 4 / 2) + (c % 32 < 16 ? 0 : 1);
            v.codes[at * d + c] = (byte >> (2 * field)) & 3;
          }
        }
      }
    }
  }
  return v;
}

// out[c] = sum_j p[j] * value j of KV head kvh as the integer value kernel
// forms it (paged_attention.cpp, token_pair_value_sums): per group and 8
// positions, w = p * scale rounded to u = nearbyint(w * 255 / max w), the
// codes summed with weights u * max w / 255, the mins with weights p; staged
// rows with weights p.
// tolerance[c]: one rounding step of one row per 8 rows (the kernel's float
// weights may round to the other side of a half than these doubles).
void rounded_value_sums(const TokenPairValues& v, const std::vector<double>& p, int32_t kvh,
                        double* out, double* tolerance) {
  const int32_t d = v.d;
  const int32_t n_groups = d / 32;
  const auto n_keys = static_cast<int32_t>(p.size());
  auto at = [&](int32_t j) { return static_cast<size_t>(j) * v.n_kv_heads + kvh; };
  for (int32_t c = 0; c < d; ++c) {
    const int32_t k = c / 32;
    double sum = 0, slack = 0;
    for (int32_t j0 = 0; j0 < n_keys; j0 += 8) {
      const int32_t j1 = std::min(n_keys, j0 + 8);
      if (v.staged[static_cast<size_t>(j0)]) {  // whole blocks are staged, 8 | block_tokens
        for (int32_t j = j0; j < j1; ++j) sum += p[static_cast<size_t>(j)] * v.raw[at(j) * d + c];
        continue;
      }
      double w_max = 0;
      for (int32_t j = j0; j < j1; ++j) {
        w_max = std::max(w_max, p[static_cast<size_t>(j)] * v.scales[at(j) * n_groups + k]);
      }
      const double step = w_max / 255;
      int max_code = 0;
      for (int32_t j = j0; j < j1; ++j) {
        const double w = p[static_cast<size_t>(j)] * v.scales[at(j) * n_groups + k];
        const double u = w_max > 0 ? std::nearbyint(w * 255 / w_max) : 0.0;
        sum += u * step * v.codes[at(j) * d + c] +
               p[static_cast<size_t>(j)] * v.mins[at(j) * n_groups + k];
        max_code = std::max(max_code, v.codes[at(j) * d + c]);
      }
      slack += step * max_code;
    }
    out[c] = sum;
    tolerance[c] = slack;
  }
}

// Rotates each head's expected output back from the Walsh-Hadamard domain
// (rotated values); an error e becomes H e, |H e|_c <= sum_i |e_i| / sqrt(d).
void rotate_back(std::vector<double>& expected, std::vector<double>& tolerance, int32_t d) {
  std::vector<float> head(static_cast<size_t>(d));
  for (size_t h = 0; h * d < expected.size(); ++h) {
    double slack = 0;
    for (int32_t i = 0; i < d; ++i) {
      head[static_cast<size_t>(i)] = static_cast<float>(expected[h * d + i]);
      slack += tolerance[h * d + i];
    }
    hadamard_transform(head.data(), d);
    for (int32_t i = 0; i < d; ++i) {
      expected[h * d + i] = head[static_cast<size_t>(i)];
      tolerance[h * d + i] = slack / std::sqrt(static_cast<double>(d));
    }
  }
}

// Attention in double over the rows a query sees. With `pairs`, the value
// sums are formed as the integer value kernel forms them (rounded_value_sums)
// and `tolerance` receives their allowance.
void reference_attention(const std::vector<float>& k, const std::vector<float>& v, const float* q,
                         int32_t n_heads, int32_t n_kv_heads, int32_t d, int32_t n_keys,
                         float scale, std::vector<double>& out,
                         const TokenPairValues* pairs = nullptr,
                         std::vector<double>* tolerance = nullptr) {
  const int32_t group = n_heads / n_kv_heads;
  out.assign(static_cast<size_t>(n_heads) * d, 0.0);
  if (tolerance != nullptr) tolerance->assign(out.size(), 0.0);
  for (int32_t h = 0; h < n_heads; ++h) {
    const int32_t kvh = h / group;
    std::vector<double> s(static_cast<size_t>(n_keys));
    double m = -1e300;
    for (int32_t j = 0; j < n_keys; ++j) {
      double dot = 0;
      for (int32_t i = 0; i < d; ++i) {
        dot += double(q[h * d + i]) * k[(static_cast<size_t>(j) * n_kv_heads + kvh) * d + i];
      }
      s[static_cast<size_t>(j)] = dot * scale;
      m = std::max(m, s[static_cast<size_t>(j)]);
    }
    double z = 0;
    for (double& x : s) z += (x = std::exp(x - m));
    if (pairs != nullptr) {
      for (double& x : s) x /= z;
      rounded_value_sums(*pairs, s, kvh, out.data() + static_cast<size_t>(h) * d,
                         tolerance->data() + static_cast<size_t>(h) * d);
      continue;
    }
    for (int32_t j = 0; j < n_keys; ++j) {
      for (int32_t i = 0; i < d; ++i) {
        out[static_cast<size_t>(h) * d + i] +=
            s[static_cast<size_t>(j)] / z * v[(static_cast<size_t>(j) * n_kv_heads + kvh) * d + i];
      }
    }
  }
}

// The queries with which int4 keys stored by channel pairs are scored
// (paged_attention.h): scaled, rotated as the keys are, each group of
// min(32, d) channels rounded to int8 steps of max|x| / 127, and rotated back
// to meet the expected keys (which expected_rows rotates back).
std::vector<float> int8_rounded_queries(const float* q, int32_t n_heads, int32_t d, float scale,
                                        bool rotated) {
  std::vector<float> out(q, q + static_cast<size_t>(n_heads) * d);
  const int32_t channels = std::min(32, d);
  for (int32_t h = 0; h < n_heads; ++h) {
    float* x = out.data() + static_cast<size_t>(h) * d;
    for (int32_t i = 0; i < d; ++i) x[i] *= scale;
    if (rotated) hadamard_transform(x, d);
    for (int32_t k = 0; k < d; k += channels) {
      float amax = 0.0f;
      for (int32_t i = k; i < k + channels; ++i) amax = std::max(amax, std::fabs(x[i]));
      const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int32_t i = k; i < k + channels; ++i)
        x[i] = std::nearbyint(x[i] * inverse) * (amax / 127.0f);
    }
    if (rotated) hadamard_transform(x, d);
  }
  return out;
}

// One case on the SIMD target the dispatcher picks (the caller sets it).
void check_against_reference(const Case& c, int64_t target) {
  const KvShape shape{1, c.n_heads, c.n_kv_heads, c.head_dim};
  PagedKvCacheOptions options;
  auto plan = plan_kv_codecs(c.codec, "", 1);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  options.layer_codecs = *plan;
  options.block_tokens = c.block_tokens;
  options.n_ctx = 256;
  options.n_seq = 2;
  auto cache = PagedKvCache::create(shape, options);
  ASSERT_TRUE(cache.ok()) << cache.status().to_string();
  PagedKvCache& kv = **cache;
  const KvCodecParams params{c.block_tokens, c.head_dim};
  auto key_codec = make_kv_codec((*plan)[0].key, KvSide::kKey, params);
  auto value_codec = make_kv_codec((*plan)[0].value, KvSide::kValue, params);
  ASSERT_TRUE(key_codec.ok() && value_codec.ok());
  // Values stored by token pairs are summed in integers on x86 with AVX2
  // or better (paged_attention.cpp), from decoded rows elsewhere.
  const bool integer_values =
      is_token_pair_format((*value_codec)->row_format()) && HWY_ARCH_X86 && target <= HWY_AVX2;

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int32_t row = shape.n_kv_heads * c.head_dim;
  const int32_t total = 150;
  std::vector<float> keys(static_cast<size_t>(total) * row), values(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    // A few outlier channels, as real keys have.
    const bool outlier = (i % c.head_dim) == 3;
    keys[i] = normal(rng) * (outlier ? 8.0f : 1.0f);
    values[i] = normal(rng);
  }
  ThreadPool pool(2);
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  // A prefill of 70 tokens, one of 33, then single-token decode steps.
  const std::vector<int32_t> chunks = {70, 33, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                       1,  1,  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  int32_t pos = 0;
  int32_t other_pos = 0;
  for (int32_t n : chunks) {
    if (c.interleaved && other_pos + c.block_tokens <= options.n_ctx) {
      const std::vector<int32_t> other(static_cast<size_t>(c.block_tokens), 6);
      ASSERT_TRUE(kv.begin_append(SeqId{1}, other_pos, other).ok());
      kv.store(SeqId{1}, LayerId{0}, other_pos, c.block_tokens, values.data(), keys.data());
      other_pos += c.block_tokens;
    }
    std::vector<int32_t> ids(static_cast<size_t>(n), 5);
    ASSERT_TRUE(kv.begin_append(SeqId{0}, pos, ids).ok());
    kv.store(SeqId{0}, LayerId{0}, pos, n, keys.data() + pos * row, values.data() + pos * row);
    std::vector<float> q(static_cast<size_t>(n) * shape.n_heads * c.head_dim);
    for (float& x : q) x = normal(rng);
    std::vector<float> out(q.size());
    kv.attend(SeqId{0}, LayerId{0}, pos, n, q.data(), scale, out.data(), pool);
    for (int32_t t = 0; t < n; ++t) {
      const int32_t query_pos = pos + t;
      const auto k_seen =
          expected_rows(**key_codec, keys, shape.n_kv_heads, c.head_dim, c.block_tokens, query_pos);
      const auto v_seen = expected_rows(**value_codec, values, shape.n_kv_heads, c.head_dim,
                                        c.block_tokens, query_pos);
      const float* q_t = q.data() + t * shape.n_heads * c.head_dim;
      std::vector<float> rounded;
      const float* q_ref = q_t;
      float ref_scale = scale;
      if ((*key_codec)->row_format() == KvRowFormat::kInt4Pairs) {
        rounded =
            int8_rounded_queries(q_t, shape.n_heads, c.head_dim, scale, (*key_codec)->rotated());
        q_ref = rounded.data();
        ref_scale = 1.0f;
      }
      std::optional<TokenPairValues> pairs;
      if (integer_values) {
        pairs = token_pair_values(**value_codec, values, shape.n_kv_heads, c.head_dim,
                                  c.block_tokens, query_pos + 1);
      }
      std::vector<double> expected, tolerance;
      reference_attention(k_seen, v_seen, q_ref, shape.n_heads, shape.n_kv_heads, c.head_dim,
                          query_pos + 1, ref_scale, expected, pairs ? &*pairs : nullptr,
                          &tolerance);
      if (pairs && (*value_codec)->rotated()) rotate_back(expected, tolerance, c.head_dim);
      for (size_t i = 0; i < expected.size(); ++i) {
        ASSERT_NEAR(out[static_cast<size_t>(t) * expected.size() + i], expected[i],
                    2e-5 + tolerance[i])
            << "query position " << query_pos << " element " << i;
      }
    }
    pos += n;
    kv.check_invariants();
  }
}

// Every compiled target this machine runs: the kernels differ (in-place
// column and pair kernels on x86, decoded tiles elsewhere), the results
// must not.
TEST_P(PagedAttentionTest, MatchesDequantizeThenAttend) {
  for (const int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    check_against_reference(GetParam(), target);
    if (HasFatalFailure()) break;
  }
  hwy::SetSupportedTargetsForTest(0);
}

INSTANTIATE_TEST_SUITE_P(
    Codecs, PagedAttentionTest,
    ::testing::Values(Case{"f32", 64, 16}, Case{"f16", 64, 16}, Case{"bf16", 64, 16},
                      Case{"int8", 64, 16}, Case{"int8", 8, 16}, Case{"int4", 64, 16},
                      Case{"int4", 8, 4}, Case{"int4h", 64, 16}, Case{"int4h", 128, 32},
                      Case{"k=int4h,v=int4h", 64, 16}, Case{"k=int8,v=int4h", 64, 16},
                      Case{"kivi2:g=16:r=0", 64, 16}, Case{"kivi2:g=16:r=40", 64, 16},
                      Case{"kivi4:g=32:r=128", 64, 32}, Case{"kivi2:g=8:r=24", 128, 16},
                      Case{"k=kivi2:g=16:r=0,v=int8", 64, 16},
                      // KIVI key columns of 8, 16 and 4 bytes (loaded at bit offsets, or
                      // one word shifted per lane).
                      Case{"kivi4:g=16:r=0", 64, 16}, Case{"kivi4:g=32:r=0", 64, 32},
                      Case{"kivi2:g=32:r=16", 64, 32}, Case{"kivi4:g=8:r=0", 64, 16},
                      Case{"kivi4:g=16:r=0", 64, 16, false, 7, 1},
                      // kivi4 values by token pairs, some blocks still in the window.
                      Case{"kivi4:g=16:r=40", 64, 16, true}, Case{"f32", 64, 16, true},
                      Case{"f16", 64, 16, true}, Case{"bf16", 64, 16, true},
                      Case{"int8", 64, 16, true}, Case{"int4", 64, 16, true},
                      Case{"kivi2:g=16:r=40", 64, 16, true},
                      // Groups of 3, 7 (4 + 3), 2 and 1 query heads.
                      Case{"f16", 64, 16, false, 6, 2}, Case{"int8", 64, 16, false, 7, 1},
                      Case{"int4", 64, 16, false, 7, 1}, Case{"bf16", 64, 16, false, 4, 2},
                      Case{"int8", 32, 16, false, 3, 3},
                      // A head_dim that is no multiple of the lane count: scratch, row by row.
                      Case{"f16", 12, 16}, Case{"f32", 20, 8, true}),
    case_name);

}  // namespace
}  // namespace kvforge
