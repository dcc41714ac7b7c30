// The codec configurations every kv_codec test sweeps: each spec and side for
// head_dim 8, 64, 128 and block_tokens 16, 32.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kv/kv_codec.h"

namespace kvforge::testing {

struct CodecCase {
  std::string spec;
  KvSide side = KvSide::kKey;
  KvCodecParams params;

  [[nodiscard]] std::string label() const {
    return spec + (side == KvSide::kKey ? " keys" : " values") +
           " block=" + std::to_string(params.block_tokens) +
           " head_dim=" + std::to_string(params.head_dim);
  }
};

inline std::vector<CodecCase> all_codec_cases() {
  std::vector<CodecCase> cases;
  for (const char* spec : {"f32", "f16", "bf16", "int8", "int4", "int4h", "kivi2", "kivi4",
                           "kivi2:g=8:r=0", "kivi4:g=8:r=64"}) {
    for (KvSide side : {KvSide::kKey, KvSide::kValue}) {
      for (int32_t block : {16, 32}) {
        for (int32_t head_dim : {8, 64, 128}) cases.push_back({spec, side, {block, head_dim}});
      }
    }
  }
  return cases;
}

inline std::unique_ptr<KvCodec> make_codec(const CodecCase& c) {
  auto codec = make_kv_codec(c.spec, c.side, c.params);
  EXPECT_TRUE(codec.ok()) << c.label() << ": " << codec.status().to_string();
  return codec.ok() ? std::move(codec).value() : nullptr;
}

}  // namespace kvforge::testing
