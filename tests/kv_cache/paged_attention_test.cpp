// The paged cache's attention against dequantize-then-attend: for every
// codec, the keys and values a query should see are rebuilt independently
// from fresh codec instances (encode the block's rows, decode, rotate back)
// following the documented read rule (its own implementation of it), and
// attention is computed in double.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/simd_targets_for_test.h"
#include "kv/hadamard.h"
#include "kv/kv_codec.h"
#include "kv/kv_codec_plan.h"
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

// The read rule of paged_kv_cache.h, written out here rather than taken from
// the engine: a side is staged when its codec quantizes across tokens or
// keeps a full-precision window of R tokens; then a query at position i reads
// block j (B tokens) encoded iff (j + 1) * B + R <= i + 1, i.e. iff every
// token of the block is more than R - 1 positions behind the query
// (j * B + B - 1 <= i - R). Unstaged sides always read the encoded block.
bool block_read_encoded(const KvCodec& codec, int32_t j, int32_t bt, int32_t query_pos) {
  const int32_t r = codec.residual_tokens();
  const bool staged = !codec.token_granular() || r > 0;
  if (!staged) return true;
  const int32_t last_in_block = j * bt + bt - 1;
  return last_in_block <= query_pos - r;
}

// Rows as a query at `query_pos` should read them: raw f32 where the side is
// staged and the block is inside the window, else encode -> decode (-> H back).
std::vector<float> expected_rows(const KvCodec& codec, const std::vector<float>& raw,
                                 int32_t n_kv_heads, int32_t d, int32_t bt, int32_t query_pos) {
  const int32_t n_keys = query_pos + 1;
  std::vector<float> out(static_cast<size_t>(n_keys) * n_kv_heads * d);
  std::vector<uint8_t> tile(codec.tile_bytes());
  std::vector<float> decoded(static_cast<size_t>(bt) * d);
  const int64_t row_stride = static_cast<int64_t>(n_kv_heads) * d;
  for (int32_t j = 0; j * bt < n_keys; ++j) {
    const int32_t rows = std::min(bt, n_keys - j * bt);
    for (int32_t h = 0; h < n_kv_heads; ++h) {
      const float* src = raw.data() + j * bt * row_stride + h * d;
      if (!block_read_encoded(codec, j, bt, query_pos)) {
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

// Bits per code of a KIVI key codec (its column formats), 0 for the others.
int32_t kivi_key_bits(const KvCodec& codec) {
  switch (codec.row_format()) {
    case KvRowFormat::kKivi2Columns:
      return 2;
    case KvRowFormat::kKivi4Columns:
      return 4;
    default:
      return 0;
  }
}

// The scores (times the attention scale) of KIVI keys as paged_attention.h
// defines them, for every query head and every row a query at `query_pos`
// sees. Rows of encoded blocks: per token group the scaled query x is folded
// with each channel's scale s into w = x * s, rounded per channel group of
// min(32, d) channels to int8 steps of max |w| / 127, and row i scores
// sum_c x_c * m_c + sum_k step_k * sum_{c in k} w8_c * code_ic, with the
// scales, mins and codes read from the tile in the layout of kv-codecs.md:
// per token group [d f16 scales][d f16 mins][d columns of B = g * bits / 8
// bytes], byte j of a column holding rows j, j + B, ... from its low bits.
// Rows inside the window (raw f32) score x · k.
std::vector<double> kivi_key_scores(const KvCodec& codec, const std::vector<float>& raw,
                                    const float* q, int32_t n_heads, int32_t n_kv_heads, int32_t d,
                                    int32_t bt, int32_t query_pos, float scale) {
  const int32_t bits = kivi_key_bits(codec);
  const int32_t g = codec.grid_tokens();
  const int32_t column_bytes = g * bits / 8;
  const size_t group_bytes = 4 * static_cast<size_t>(d) + static_cast<size_t>(d) * column_bytes;
  const int32_t channels = std::min(32, d);
  const int32_t n_keys = query_pos + 1;
  const int32_t group = n_heads / n_kv_heads;
  const int64_t row_stride = static_cast<int64_t>(n_kv_heads) * d;
  std::vector<double> scores(static_cast<size_t>(n_heads) * n_keys);
  std::vector<uint8_t> tile(codec.tile_bytes());
  auto half_at = [&](size_t byte) {
    uint16_t bits16;
    std::memcpy(&bits16, tile.data() + byte, 2);
    return fp16_to_fp32(bits16);
  };
  for (int32_t j = 0; j * bt < n_keys; ++j) {
    const int32_t rows = std::min(bt, n_keys - j * bt);
    for (int32_t kvh = 0; kvh < n_kv_heads; ++kvh) {
      const float* src = raw.data() + j * bt * row_stride + kvh * d;
      const bool encoded = block_read_encoded(codec, j, bt, query_pos);
      if (encoded) codec.encode(src, row_stride, 0, bt, tile.data());
      for (int32_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        std::vector<float> x(q + static_cast<size_t>(h) * d, q + static_cast<size_t>(h + 1) * d);
        for (float& e : x) e *= scale;
        for (int32_t r = 0; r < rows; ++r) {
          double score = 0;
          if (!encoded) {
            for (int32_t c = 0; c < d; ++c) score += double(x[c]) * src[r * row_stride + c];
          } else {
            const size_t at = static_cast<size_t>(r / g) * group_bytes;
            const int32_t i = r % g;
            for (int32_t k0 = 0; k0 < d; k0 += channels) {
              std::vector<float> w(static_cast<size_t>(channels));
              float amax = 0.0f;
              for (int32_t c = k0; c < k0 + channels; ++c) {
                w[c - k0] = x[c] * half_at(at + 2 * static_cast<size_t>(c));
                amax = std::max(amax, std::fabs(w[c - k0]));
              }
              const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
              int64_t dot = 0;
              for (int32_t c = k0; c < k0 + channels; ++c) {
                const uint8_t byte = tile[at + 4 * static_cast<size_t>(d) +
                                          static_cast<size_t>(c) * column_bytes + i % column_bytes];
                const int32_t code = (byte >> (bits * (i / column_bytes))) & ((1 << bits) - 1);
                dot += static_cast<int64_t>(std::nearbyint(w[c - k0] * inverse)) * code;
              }
              score += double(amax / 127.0f) * double(dot);
              for (int32_t c = k0; c < k0 + channels; ++c) {
                score += double(x[c]) * half_at(at + 2 * static_cast<size_t>(d + c));
              }
            }
          }
          scores[static_cast<size_t>(h) * n_keys + j * bt + r] = score;
        }
      }
    }
  }
  return scores;
}

// Attention in double over the rows a query sees; with `given_scores` (per
// head, n_keys scores already scaled) those replace q · k * scale.
void reference_attention(const std::vector<float>& k, const std::vector<float>& v, const float* q,
                         int32_t n_heads, int32_t n_kv_heads, int32_t d, int32_t n_keys,
                         float scale, std::vector<double>& out,
                         const std::vector<double>* given_scores = nullptr) {
  const int32_t group = n_heads / n_kv_heads;
  out.assign(static_cast<size_t>(n_heads) * d, 0.0);
  for (int32_t h = 0; h < n_heads; ++h) {
    const int32_t kvh = h / group;
    std::vector<double> s(static_cast<size_t>(n_keys));
    double m = -1e300;
    for (int32_t j = 0; j < n_keys; ++j) {
      if (given_scores != nullptr) {
        s[static_cast<size_t>(j)] = (*given_scores)[static_cast<size_t>(h) * n_keys + j];
        m = std::max(m, s[static_cast<size_t>(j)]);
        continue;
      }
      double dot = 0;
      for (int32_t i = 0; i < d; ++i) {
        dot += double(q[h * d + i]) * k[(static_cast<size_t>(j) * n_kv_heads + kvh) * d + i];
      }
      s[static_cast<size_t>(j)] = dot * scale;
      m = std::max(m, s[static_cast<size_t>(j)]);
    }
    double z = 0;
    for (double& x : s) z += (x = std::exp(x - m));
    for (int32_t j = 0; j < n_keys; ++j) {
      for (int32_t i = 0; i < d; ++i) {
        out[static_cast<size_t>(h) * d + i] +=
            s[static_cast<size_t>(j)] / z * v[(static_cast<size_t>(j) * n_kv_heads + kvh) * d + i];
      }
    }
  }
}

// The queries with which int4 and int8 keys are scored (paged_attention.h):
// scaled, rotated as the keys are, each group of `channels` channels rounded
// to integer steps of max|x| / levels, and rotated back to meet the expected
// keys (which expected_rows rotates back). int4 keys stored by channel
// pairs: groups of min(32, d), int8 steps (127); int8 keys: the whole head,
// int16 steps (32767).
std::vector<float> rounded_queries(const float* q, int32_t n_heads, int32_t d, float scale,
                                   bool rotated, int32_t channels, float levels) {
  std::vector<float> out(q, q + static_cast<size_t>(n_heads) * d);
  for (int32_t h = 0; h < n_heads; ++h) {
    float* x = out.data() + static_cast<size_t>(h) * d;
    for (int32_t i = 0; i < d; ++i) x[i] *= scale;
    if (rotated) hadamard_transform(x, d);
    for (int32_t k = 0; k < d; k += channels) {
      float amax = 0.0f;
      for (int32_t i = k; i < k + channels; ++i) amax = std::max(amax, std::fabs(x[i]));
      const float inverse = amax > 0.0f ? levels / amax : 0.0f;
      for (int32_t i = k; i < k + channels; ++i)
        x[i] = std::nearbyint(x[i] * inverse) * (amax / levels);
    }
    if (rotated) hadamard_transform(x, d);
  }
  return out;
}

// One case on the SIMD target the dispatcher picks (the caller sets it).
void check_against_reference(const Case& c) {
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
        rounded = rounded_queries(q_t, shape.n_heads, c.head_dim, scale, (*key_codec)->rotated(),
                                  std::min(32, c.head_dim), 127.0f);
        q_ref = rounded.data();
        ref_scale = 1.0f;
      } else if ((*key_codec)->row_format() == KvRowFormat::kInt8Columns) {
        rounded =
            rounded_queries(q_t, shape.n_heads, c.head_dim, scale, false, c.head_dim, 32767.0f);
        q_ref = rounded.data();
        ref_scale = 1.0f;
      }
      std::vector<double> kivi_scores;
      if (kivi_key_bits(**key_codec) != 0) {
        kivi_scores = kivi_key_scores(**key_codec, keys, q_t, shape.n_heads, shape.n_kv_heads,
                                      c.head_dim, c.block_tokens, query_pos, scale);
      }
      std::vector<double> expected;
      reference_attention(k_seen, v_seen, q_ref, shape.n_heads, shape.n_kv_heads, c.head_dim,
                          query_pos + 1, ref_scale, expected,
                          kivi_scores.empty() ? nullptr : &kivi_scores);
      for (size_t i = 0; i < expected.size(); ++i) {
        ASSERT_NEAR(out[static_cast<size_t>(t) * expected.size() + i], expected[i], 2e-5)
            << "query position " << query_pos << " element " << i;
      }
    }
    pos += n;
    kv.check_invariants();
  }
}

// Every compiled target this machine runs: the kernels differ (tiles read
// in place on fixed-width vector targets, int4 keys as integers on x86 with
// AVX2 or later, KIVI keys as integers with AVX-512 VNNI, tiles decoded on
// the scalar baseline), the results must not.
TEST_P(PagedAttentionTest, MatchesDequantizeThenAttend) {
  test_util::on_every_simd_target([this](int64_t) { check_against_reference(GetParam()); },
                                  test_util::attention_targets_for_test());
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
                      // Columns of 32 and 16 bytes in 64-token blocks, four channel groups
                      // (the VNNI kernel's layouts besides 8 and 16 bytes at g = 32).
                      Case{"kivi4:g=64:r=0", 64, 64}, Case{"kivi2:g=64:r=0", 128, 64, true},
                      // kivi4 values by token pairs, some blocks still in the window.
                      Case{"kivi4:g=16:r=40", 64, 16, true}, Case{"f32", 64, 16, true},
                      Case{"f16", 64, 16, true}, Case{"bf16", 64, 16, true},
                      Case{"int8", 64, 16, true}, Case{"int4", 64, 16, true},
                      Case{"kivi2:g=16:r=40", 64, 16, true},
                      // Groups of 3, 7 (4 + 3), 2 and 1 query heads.
                      Case{"f16", 64, 16, false, 6, 2}, Case{"int8", 64, 16, false, 7, 1},
                      Case{"int4", 64, 16, false, 7, 1}, Case{"bf16", 64, 16, false, 4, 2},
                      Case{"int8", 32, 16, false, 3, 3},
                      // int4 keys in channel groups of 8 (read in place where a vector
                      // holds at most 8 floats) and 16 (two blocks of four pairs for
                      // the AVX-512 VNNI kernel).
                      Case{"int4", 8, 16}, Case{"int4h", 16, 32},
                      // Three channel groups of 32, 48-token blocks (three 16-row chunks).
                      Case{"int4", 96, 48}, Case{"kivi2:g=16:r=0", 96, 48, true},
                      Case{"kivi4:g=16:r=40", 96, 48, false, 16, 1},
                      // A head_dim that is no multiple of the lane count: scratch, row by row.
                      Case{"f16", 12, 16}, Case{"f32", 20, 8, true}),
    case_name);

}  // namespace
}  // namespace kvforge
