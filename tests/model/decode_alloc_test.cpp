// A steady-state decode step must not touch the heap. This binary replaces
// the global allocation functions with counting ones and runs decode steps
// on the real stories260K model after a warm-up.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "kv/contiguous_kv_cache.h"
#include "kv/kv_cache_factory.h"
#include "kv/paged_kv_cache.h"
#include "model/model.h"
#include "test_models.h"

namespace {
std::atomic<long> g_allocations{0};
}

// GCC flags free() in a replaced operator delete as mismatched with new; the
// pairing is exactly what a replacement allocator is meant to do.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop

namespace kvforge {
namespace {

// 55 decode steps: they cross block boundaries and, for KIVI with r=16,
// move the full-precision window.
void expect_decode_allocates_nothing(Model& model, KvCache& kv, int threads,
                                     const std::string& what) {
  std::vector<float> logits(512);
  std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  ASSERT_TRUE(model.forward(prompt, 0, kv, SeqId{0}, LogitsFor::kLastToken, logits.data()).ok());
  const long before = g_allocations.load();
  for (int32_t pos = 5; pos < 60; ++pos) {
    const int32_t one[1] = {300 + pos};
    Status s = model.forward(one, pos, kv, SeqId{0}, LogitsFor::kLastToken, logits.data());
    ASSERT_TRUE(s.ok());
  }
  EXPECT_EQ(g_allocations.load() - before, 0) << what << ", " << threads << " threads";
}

TEST(DecodeAllocations, PagedCacheDecodeAllocatesNothing) {
  auto m = Model::load(testing::stories260k_gguf(), ModelOptions{2, 32});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  for (const std::string codec : {"f16", "int8", "int4h", "kivi2:g=16:r=16"}) {
    KvCacheOptions options;
    options.codec = codec;
    options.block_tokens = 16;
    options.n_ctx = 128;
    auto kv = make_kv_cache((*m)->kv_shape(), options);
    ASSERT_TRUE(kv.ok()) << kv.status().to_string();
    expect_decode_allocates_nothing(**m, **kv, 2, codec);
  }
}

// Selection: every step from position 40 on chooses blocks (8-token blocks,
// 2 chosen besides the first block and the newest 8 positions), with and
// without reuse of the choice, over every codec family.
TEST(DecodeAllocations, SelectingDecodeAllocatesNothing) {
  auto m = Model::load(testing::stories260k_gguf(), ModelOptions{2, 32});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  for (const std::string codec : {"f16", "int4", "kivi2:g=8:r=16"}) {
    for (const std::string select :
         {"quest:tokens=16:window=8:sinks=4", "quest:tokens=16:window=8:reuse=3:sim=0.2"}) {
      KvCacheOptions options;
      options.codec = codec;
      options.block_tokens = 8;
      options.n_ctx = 128;
      options.select = select;
      auto kv = make_kv_cache((*m)->kv_shape(), options);
      ASSERT_TRUE(kv.ok()) << kv.status().to_string();
      expect_decode_allocates_nothing(**m, **kv, 2, codec + " " + select);
      const auto* paged = dynamic_cast<const PagedKvCache*>(kv->get());
      ASSERT_NE(paged, nullptr);
      EXPECT_EQ(paged->selected_blocks(LayerId{0}, 0).size(), 1u + 2u + 2u) << select;
    }
  }
}

TEST(DecodeAllocations, SteadyStateDecodeAllocatesNothing) {
  for (int threads : {1, 2}) {
    auto m = Model::load(testing::stories260k_gguf(), ModelOptions{threads, 32});
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    ContiguousKvCache kv((*m)->kv_shape(), 1, 128, ContiguousKvType::kF16);
    std::vector<float> logits(512);
    std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
    ASSERT_TRUE((*m)->forward(prompt, 0, kv, SeqId{0}, LogitsFor::kLastToken, logits.data()).ok());
    const long before = g_allocations.load();
    for (int32_t pos = 5; pos < 60; ++pos) {
      const int32_t one[1] = {300 + pos};
      Status s = (*m)->forward(one, pos, kv, SeqId{0}, LogitsFor::kLastToken, logits.data());
      ASSERT_TRUE(s.ok());
    }
    EXPECT_EQ(g_allocations.load() - before, 0) << threads << " threads";
  }
}

}  // namespace
}  // namespace kvforge
