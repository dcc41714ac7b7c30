// make_kv_codec: names, properties per side, and the errors it reports.
#include <gtest/gtest.h>

#include <string>

#include "kv/kv_codec.h"

namespace kvforge {
namespace {

constexpr KvCodecParams kParams{16, 64};

std::string error_of(std::string_view spec, KvCodecParams params = kParams,
                     KvSide side = KvSide::kKey) {
  auto codec = make_kv_codec(spec, side, params);
  if (codec.ok()) return "ok";
  EXPECT_EQ(codec.status().code(), StatusCode::kInvalidArgument) << spec;
  return codec.status().message();
}

TEST(KvCodecSpec, CanonicalNamesRoundTrip) {
  const struct {
    const char* spec;
    const char* canonical;
  } cases[] = {
      {"f32", "f32"},
      {"f16", "f16"},
      {"bf16", "bf16"},
      {"int8", "int8"},
      {"int4", "int4"},
      {"int4h", "int4h"},
      {"kivi2", "kivi2:g=16:r=128"},  // default g = min(32, block_tokens = 16)
      {"kivi4:r=0", "kivi4:g=16:r=0"},
      {"kivi2:r=64:g=8", "kivi2:g=8:r=64"},
  };
  for (const auto& c : cases) {
    for (KvSide side : {KvSide::kKey, KvSide::kValue}) {
      auto codec = make_kv_codec(c.spec, side, kParams);
      ASSERT_TRUE(codec.ok()) << c.spec << ": " << codec.status().to_string();
      EXPECT_EQ((*codec)->name(), c.canonical);
      auto again = make_kv_codec((*codec)->name(), side, kParams);
      ASSERT_TRUE(again.ok());
      EXPECT_EQ((*again)->name(), c.canonical);
      EXPECT_EQ((*again)->tile_bytes(), (*codec)->tile_bytes());
    }
  }
  auto at32 = make_kv_codec("kivi2", KvSide::kKey, {32, 128});
  ASSERT_TRUE(at32.ok());
  EXPECT_EQ((*at32)->name(), "kivi2:g=32:r=128");  // the KIVI paper's G and R
}

TEST(KvCodecSpec, PropertiesPerSide) {
  auto property = [](std::string_view spec, KvSide side) {
    auto codec = make_kv_codec(spec, side, kParams);
    EXPECT_TRUE(codec.ok()) << spec;
    return std::move(codec).value();
  };
  for (const std::string& name : kv_codec_names()) {
    for (KvSide side : {KvSide::kKey, KvSide::kValue}) {
      const auto codec = property(name, side);
      const bool kivi = name.starts_with("kivi");
      EXPECT_EQ(codec->token_granular(), !(kivi && side == KvSide::kKey)) << name;
      EXPECT_EQ(codec->rotated(), name == "int4h") << name;
      EXPECT_EQ(codec->residual_tokens(), kivi ? 128 : 0) << name;
      EXPECT_EQ(codec->block_tokens(), 16);
      EXPECT_EQ(codec->head_dim(), 64);
    }
  }
  EXPECT_EQ(property("kivi4:g=4:r=32", KvSide::kValue)->residual_tokens(), 32);
}

TEST(KvCodecSpec, NamesListEveryCodec) {
  const std::vector<std::string> expected = {"f32",  "f16",   "bf16",  "int8",
                                             "int4", "int4h", "kivi2", "kivi4"};
  EXPECT_EQ(kv_codec_names(), expected);
}

TEST(KvCodecSpec, ErrorsNameTheProblem) {
  EXPECT_EQ(error_of("int3"),
            "unknown KV codec 'int3'; valid codecs: f32, f16, bf16, int8, int4, int4h, kivi2, "
            "kivi4");
  EXPECT_EQ(error_of(""),
            "unknown KV codec ''; valid codecs: f32, f16, bf16, int8, int4, int4h, kivi2, kivi4");
  EXPECT_EQ(error_of("int8:g=4"), "KV codec 'int8' takes no parameters, got 'g=4'");
  EXPECT_EQ(error_of("kivi2:g"), "KV codec 'kivi2:g': parameter 'g' needs a value (key=value)");
  EXPECT_EQ(error_of("kivi2:g=x"), "KV codec 'kivi2:g=x': g='x' is not a non-negative integer");
  EXPECT_EQ(error_of("kivi2:r=-1"), "KV codec 'kivi2:r=-1': r='-1' is not a non-negative integer");
  EXPECT_EQ(error_of("kivi2:g=0"), "KV codec 'kivi2:g=0': g must be at least 1");
  EXPECT_EQ(error_of("kivi2:g=4:g=8"), "KV codec 'kivi2:g=4:g=8': g given twice");
  EXPECT_EQ(error_of("kivi2:w=3"),
            "KV codec 'kivi2:w=3': unknown parameter 'w' (known: g = key token group, r = "
            "residual window)");
  EXPECT_EQ(error_of("kivi2:g=5"),
            "codec 'kivi2:g=5:r=128': the key token group g=5 must divide block_tokens=16");
  EXPECT_EQ(error_of("kivi2:g=2"),
            "codec 'kivi2:g=2:r=128': the key token group g=2 must be a multiple of 4 (a "
            "channel's 2-bit codes of one group fill whole bytes)");
  EXPECT_EQ(error_of("kivi4:g=1"),
            "codec 'kivi4:g=1:r=128': the key token group g=1 must be a multiple of 2 (a "
            "channel's 4-bit codes of one group fill whole bytes)");
  EXPECT_EQ(error_of("kivi2", {48, 64}),
            "codec 'kivi2:g=32:r=128': the key token group g=32 must divide block_tokens=48 "
            "(pass g=<divisor> explicitly)");
  EXPECT_EQ(error_of("int4h", {16, 96}),
            "codec 'int4h' rotates head vectors by a Walsh-Hadamard matrix, which needs a "
            "power-of-two head_dim (8 ... 256), got 96");
  EXPECT_EQ(error_of("int4", {16, 48}),
            "codec 'int4' quantizes head_dim in groups of 8, 16 or 32: head_dim must be 8, 16 or "
            "a multiple of 32 up to 256, got 48");
  EXPECT_EQ(error_of("kivi2", {16, 12}, KvSide::kValue),
            "codec 'kivi2:g=16:r=128' quantizes head_dim in groups of 8, 16 or 32: head_dim must "
            "be 8, 16 or a multiple of 32 up to 256, got 12");
  EXPECT_EQ(error_of("f16", {0, 64}), "KV codec 'f16': block_tokens must be at least 1, got 0");
  EXPECT_EQ(error_of("f16", {16, 300}), "KV codec 'f16': head_dim must be in [1, 256], got 300");
  EXPECT_EQ(error_of("int8", {16, 12}), "ok");  // int8 needs no grouping
  EXPECT_TRUE(check_kv_codec_spec("kivi4:g=3:r=7").ok());
  EXPECT_FALSE(check_kv_codec_spec("kivi4:q=3").ok());
}

}  // namespace
}  // namespace kvforge
