// plan_kv_codecs: the --kv-codec / --kv-codec-layers syntax and its errors.
#include "kv/kv_codec_plan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kvforge {
namespace {

std::vector<LayerCodecSpec> plan_or_die(std::string_view codec, std::string_view layers,
                                        int32_t n_layers) {
  auto plan = plan_kv_codecs(codec, layers, n_layers);
  EXPECT_TRUE(plan.ok()) << plan.status().to_string();
  return plan.ok() ? *plan : std::vector<LayerCodecSpec>{};
}

std::string error_of(std::string_view codec, std::string_view layers, int32_t n_layers = 4) {
  auto plan = plan_kv_codecs(codec, layers, n_layers);
  if (plan.ok()) return "ok";
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  return plan.status().message();
}

// "key|value" per layer, for compact expectations.
std::vector<std::string> flat(const std::vector<LayerCodecSpec>& plan) {
  std::vector<std::string> out;
  for (const LayerCodecSpec& layer : plan) out.push_back(layer.key + "|" + layer.value);
  return out;
}

using Strings = std::vector<std::string>;

TEST(KvCodecPlan, OneCodecForEverything) {
  EXPECT_EQ(flat(plan_or_die("int8", "", 3)), (Strings{"int8|int8", "int8|int8", "int8|int8"}));
}

TEST(KvCodecPlan, KeysAndValuesApart) {
  EXPECT_EQ(flat(plan_or_die("k=int8,v=int4h", "", 2)), (Strings{"int8|int4h", "int8|int4h"}));
  EXPECT_EQ(flat(plan_or_die("v=kivi2:g=32:r=128, k=f16", "", 1)),
            (Strings{"f16|kivi2:g=32:r=128"}));
}

TEST(KvCodecPlan, LayerOverridesApplyLeftToRight) {
  EXPECT_EQ(flat(plan_or_die("int4", "0-1:int8,3-:kivi2:g=16", 5)),
            (Strings{"int8|int8", "int8|int8", "int4|int4", "kivi2:g=16|kivi2:g=16",
                     "kivi2:g=16|kivi2:g=16"}));
  EXPECT_EQ(flat(plan_or_die("f16", "0:k=int8/v=int4,2-3:v=int4h,1-:k=bf16", 4)),
            (Strings{"int8|int4", "bf16|f16", "bf16|int4h", "bf16|int4h"}));
  EXPECT_EQ(flat(plan_or_die("f16", "0-:int8, 2:f32", 3)),
            (Strings{"int8|int8", "int8|int8", "f32|f32"}));
}

TEST(KvCodecPlan, ErrorsNameTheFlagAndThePart) {
  EXPECT_EQ(error_of("int3", ""),
            "--kv-codec: unknown KV codec 'int3'; valid codecs: f32, f16, bf16, int8, int4, "
            "int4h, kivi2, kivi4");
  EXPECT_EQ(error_of("", ""), "--kv-codec: empty codec name");
  EXPECT_EQ(error_of("int8,int4", ""),
            "--kv-codec: 'int8,int4' names two codecs; write k=<codec>,v=<codec>");
  EXPECT_EQ(error_of("k=int8", ""),
            "--kv-codec: 'k=int8' leaves the value codec unset; write k=<codec>,v=<codec>");
  EXPECT_EQ(error_of("k=int8,k=int4", ""), "--kv-codec: 'k=int8,k=int4' sets the key codec twice");
  EXPECT_EQ(error_of("k=int8,x=int4", ""),
            "--kv-codec: 'x=int4' in 'k=int8,x=int4' must start with k= or v=");
  EXPECT_EQ(error_of("kivi2:z=1", ""),
            "--kv-codec: KV codec 'kivi2:z=1': unknown parameter 'z' (known: g = key token group, "
            "r = residual window)");
  EXPECT_EQ(error_of("int8", "0-1"),
            "--kv-codec-layers: entry '0-1' has no codec; expected <layers>:<codec>");
  EXPECT_EQ(error_of("int8", "a:int4"), "--kv-codec-layers: layer range 'a' is not N, N-M or N-");
  EXPECT_EQ(error_of("int8", "3-1:int4"), "--kv-codec-layers: layer range '3-1' is reversed");
  EXPECT_EQ(error_of("int8", "2-4:int4"),
            "--kv-codec-layers: layer range '2-4' is past the last layer 3 (4 layers)");
  EXPECT_EQ(error_of("int8", "4-:int4"),
            "--kv-codec-layers: layer range '4-' is past the last layer 3 (4 layers)");
  EXPECT_EQ(error_of("int8", "0:int4,1:k=int8,v=int4"),
            "--kv-codec-layers: entry 'v=int4' has no codec; expected <layers>:<codec>");
  EXPECT_EQ(error_of("int8", "0:k=int8/v=nope"),
            "--kv-codec-layers: unknown KV codec 'nope'; valid codecs: f32, f16, bf16, int8, "
            "int4, int4h, kivi2, kivi4");
  EXPECT_EQ(error_of("int8", "0:int8/int4"),
            "--kv-codec-layers: 'int8/int4' names two codecs; write k=<codec>/v=<codec>");
  EXPECT_EQ(error_of("int8", "", 0), "--kv-codec: the model has no layers (0)");
}

}  // namespace
}  // namespace kvforge
