// Round-trip error of every codec against its analytic bound, computed here
// from the data alone:
//   f16     |e| <= max(|x| 2^-11, 2^-25)       (round to nearest, subnormal step 2^-24)
//   bf16    |e| <= |x| 2^-8
//   int8    |e| <= step / 2 per row, step = max|x| / 127, plus the f16 round-up of the
//           step (2^-10 relative, 2^-24 absolute in the subnormal range)
//   b-bit   |e| <= step / 2 per group, step = (max - min) / (2^b - 1), the range widened by
//           rounding min down to f16, the step rounded up to f16
//   rotated the same bound on y = H x (naive Sylvester product), and the reconstruction
//           H decode(y) within the L2 norm of those bounds (H is orthonormal)
// plus a few ulps of f32 arithmetic on the largest magnitude involved.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "codec_cases.h"
#include "kv/kv_codec.h"
#include "tile_data.h"

namespace kvforge {
namespace {

using testing::CodecCase;
using testing::TileKind;

constexpr double kF32Ulp = 0x1p-23;
constexpr double kF16RoundUp = 1.0 + 0x1p-10 + 0x1p-20;  // f16 rounding up + f32 division
constexpr double kF16Subnormal = 0x1p-24;

// Half a step of a b-bit grid covering [lo, hi], as the codecs store it.
double affine_bound(double lo, double hi, int bits) {
  const double widened = (hi - lo) + std::max(std::fabs(lo) * 0x1p-10, kF16Subnormal);
  const double step = widened / ((1 << bits) - 1) * kF16RoundUp + kF16Subnormal;
  return step / 2 + 4 * kF32Ulp * std::max(std::fabs(lo), std::fabs(hi));
}

double symmetric_bound(double amax) {
  const double step = amax / 127 * kF16RoundUp + kF16Subnormal;
  return step / 2 + 4 * kF32Ulp * amax;
}

int bits_of(const std::string& spec) {
  return spec.starts_with("int4") || spec.starts_with("kivi4") ? 4 : 2;
}

int key_group_of(const KvCodec& codec) {
  const std::string name = codec.name();
  return std::stoi(name.substr(name.find(":g=") + 3));
}

// Per-element bounds for `codec` on `x` (rows × d), in the codec's stored domain.
std::vector<double> error_bounds(const KvCodec& codec, const std::string& spec,
                                 const std::vector<double>& x, int32_t rows) {
  const int32_t d = codec.head_dim();
  std::vector<double> bound(x.size());
  auto at = [&](int32_t r, int32_t c) { return x[static_cast<size_t>(r) * d + c]; };
  auto set = [&](int32_t r, int32_t c, double b) { bound[static_cast<size_t>(r) * d + c] = b; };
  if (spec == "f32") {
    std::fill(bound.begin(), bound.end(), 0.0);
  } else if (spec == "f16" || spec == "bf16") {
    for (size_t i = 0; i < x.size(); ++i) {
      bound[i] =
          spec == "f16" ? std::max(std::fabs(x[i]) * 0x1p-11, 0x1p-25) : std::fabs(x[i]) * 0x1p-8;
    }
  } else if (spec == "int8") {
    for (int32_t r = 0; r < rows; ++r) {
      double amax = 0;
      for (int32_t c = 0; c < d; ++c) amax = std::max(amax, std::fabs(at(r, c)));
      for (int32_t c = 0; c < d; ++c) set(r, c, symmetric_bound(amax));
    }
  } else if (codec.token_granular()) {  // per-token groups along head_dim
    const int32_t group = std::min(d, 32);
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t g = 0; g < d; g += group) {
        double lo = at(r, g), hi = at(r, g);
        for (int32_t c = g; c < g + group; ++c)
          lo = std::min(lo, at(r, c)), hi = std::max(hi, at(r, c));
        for (int32_t c = g; c < g + group; ++c) set(r, c, affine_bound(lo, hi, bits_of(spec)));
      }
    }
  } else {  // per channel over token groups
    const int32_t tokens = key_group_of(codec);
    for (int32_t t0 = 0; t0 < rows; t0 += tokens) {
      for (int32_t c = 0; c < d; ++c) {
        double lo = at(t0, c), hi = at(t0, c);
        for (int32_t t = t0; t < t0 + tokens; ++t)
          lo = std::min(lo, at(t, c)), hi = std::max(hi, at(t, c));
        for (int32_t t = t0; t < t0 + tokens; ++t) set(t, c, affine_bound(lo, hi, bits_of(spec)));
      }
    }
  }
  return bound;
}

// Rotated codecs store H x; their stored domain can exceed the f16 range when
// |x| is near 65504, so the extremes tile is scaled to keep ||x||_2 <= 65504.
std::vector<float> tile_for(const KvCodec& codec, TileKind kind, uint32_t seed) {
  std::vector<float> x = testing::make_tile(kind, codec.block_tokens(), codec.head_dim(), seed);
  if (codec.rotated() && kind == TileKind::kExtremes) {
    for (float& v : x) v /= static_cast<float>(codec.head_dim());
  }
  return x;
}

TEST(KvCodecError, RoundTripWithinTheAnalyticBound) {
  for (const CodecCase& c : testing::all_codec_cases()) {
    const auto codec = testing::make_codec(c);
    ASSERT_NE(codec, nullptr);
    const int32_t rows = c.params.block_tokens;
    const int32_t d = c.params.head_dim;
    for (TileKind kind : testing::kAllTileKinds) {
      const std::vector<float> x = tile_for(*codec, kind, 1234);
      std::vector<uint8_t> tile(codec->tile_bytes());
      codec->encode(x.data(), d, 0, rows, tile.data());
      std::vector<float> decoded(x.size());
      codec->decode(tile.data(), rows, decoded.data());

      // The stored domain: x, or H x computed independently of the codec.
      std::vector<double> stored(x.begin(), x.end());
      double rotation_slack = 0;
      if (codec->rotated()) {
        for (int32_t r = 0; r < rows; ++r) {
          const std::vector<double> y = testing::naive_hadamard(x.data() + r * d, d);
          std::copy(y.begin(), y.end(), stored.begin() + r * d);
        }
        double largest = 0;
        for (float v : x) largest = std::max(largest, std::fabs(static_cast<double>(v)));
        rotation_slack = 16 * kF32Ulp * largest * std::sqrt(d);  // f32 butterflies
      }
      const std::vector<double> bound = error_bounds(*codec, c.spec, stored, rows);
      const std::string where = c.label() + " tile=" + testing::tile_kind_name(kind);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(std::isfinite(decoded[i])) << where << " i=" << i;
        ASSERT_LE(std::fabs(decoded[i] - stored[i]), bound[i] + rotation_slack)
            << where << " row=" << i / d << " col=" << i % d << " x=" << stored[i];
      }
      if (!codec->rotated()) continue;
      // Back in the original domain: ||x - H decode|| <= ||bounds||.
      for (int32_t r = 0; r < rows; ++r) {
        const std::vector<double> back = testing::naive_hadamard(decoded.data() + r * d, d);
        double error2 = 0, bound2 = 0;
        for (int32_t i = 0; i < d; ++i) {
          const double e = back[static_cast<size_t>(i)] - x[static_cast<size_t>(r * d + i)];
          error2 += e * e;
          const double b = bound[static_cast<size_t>(r * d + i)] + rotation_slack;
          bound2 += b * b;
        }
        ASSERT_LE(std::sqrt(error2), std::sqrt(bound2)) << where << " row=" << r;
      }
    }
  }
}

TEST(KvCodecError, ExtremeInputsStayFinite) {
  // Beyond what the codecs can represent, they saturate instead of producing Inf/NaN.
  for (const CodecCase& c : testing::all_codec_cases()) {
    const auto codec = testing::make_codec(c);
    ASSERT_NE(codec, nullptr);
    const int32_t rows = c.params.block_tokens;
    std::vector<float> x = testing::make_tile(TileKind::kExtremes, rows, c.params.head_dim, 9);
    x[0] = 1e30f;
    x[1] = -3e38f;
    std::vector<uint8_t> tile(codec->tile_bytes());
    codec->encode(x.data(), c.params.head_dim, 0, rows, tile.data());
    std::vector<float> decoded(x.size());
    codec->decode(tile.data(), rows, decoded.data());
    if (c.spec == "f16") continue;  // plain f16 stores out-of-range values as ±Inf by design
    for (size_t i = 0; i < decoded.size(); ++i) {
      ASSERT_TRUE(std::isfinite(decoded[i])) << c.label() << " i=" << i;
    }
  }
}

// L2 error of one codec over a tile.
double l2_error(const std::string& spec, KvSide side, const std::vector<float>& x, int32_t rows,
                int32_t d, bool unrotate) {
  auto codec = make_kv_codec(spec, side, {rows, d});
  EXPECT_TRUE(codec.ok());
  std::vector<uint8_t> tile((*codec)->tile_bytes());
  (*codec)->encode(x.data(), d, 0, rows, tile.data());
  std::vector<float> decoded(x.size());
  (*codec)->decode(tile.data(), rows, decoded.data());
  double error2 = 0;
  for (int32_t r = 0; r < rows; ++r) {
    std::vector<double> row(decoded.begin() + r * d, decoded.begin() + (r + 1) * d);
    if (unrotate) row = testing::naive_hadamard(row.data(), d);
    for (int32_t i = 0; i < d; ++i) {
      const double e = row[static_cast<size_t>(i)] - x[static_cast<size_t>(r * d + i)];
      error2 += e * e;
    }
  }
  return std::sqrt(error2);
}

TEST(KvCodecError, HadamardRotationShrinksInt4ErrorOnOutlierChannels) {
  // Keys with a few outlier channels: plain int4 stretches the grid of each group holding an
  // outlier; the rotation spreads the outliers over all channels first.
  constexpr int32_t kRows = 32, kDim = 128;
  std::vector<float> x = testing::make_tile(TileKind::kGaussian, kRows, kDim, 21);
  for (int32_t r = 0; r < kRows; ++r) {
    for (int32_t c : {3, 40, 77, 100}) x[static_cast<size_t>(r * kDim + c)] *= 30.0f;
  }
  const double plain = l2_error("int4", KvSide::kKey, x, kRows, kDim, false);
  const double rotated = l2_error("int4h", KvSide::kKey, x, kRows, kDim, true);
  // Expected ratio about 0.5 (rotated groups see sigma ~ ||x|| / sqrt(128) instead of the
  // outlier's range); 0.7 leaves room for other standard libraries' normal generators.
  EXPECT_LT(rotated, 0.7 * plain) << "int4 " << plain << " int4h " << rotated;
}

TEST(KvCodecError, KiviPerChannelKeysBeatPerTokenGroupsOnOutlierChannels) {
  // KIVI's observation: key outliers sit in fixed channels, so per-channel grids fit them.
  constexpr int32_t kRows = 32, kDim = 128;
  std::vector<float> x = testing::make_tile(TileKind::kGaussian, kRows, kDim, 22);
  for (int32_t r = 0; r < kRows; ++r) {
    for (int32_t c : {5, 70})
      x[static_cast<size_t>(r * kDim + c)] = 20.0f + 0.1f * x[static_cast<size_t>(r * kDim + c)];
  }
  const double per_channel = l2_error("kivi2", KvSide::kKey, x, kRows, kDim, false);
  const double per_token = l2_error("kivi2", KvSide::kValue, x, kRows, kDim, false);
  EXPECT_LT(per_channel, 0.5 * per_token) << "keys " << per_channel << " values " << per_token;
}

}  // namespace
}  // namespace kvforge
