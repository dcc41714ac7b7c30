// A steady-state decode step must not touch the heap. This binary counts
// every heap allocation of the process and runs decode steps after a
// warm-up: on the real stories260K model (f32 weights) and on synthetic
// Q4_0 and Q8_0 models, whose decode takes the quantized kernels, on every
// SIMD target compiled and supported here.
//
// Where allocations are counted: at the C allocation functions, which every
// other allocator of the process ends in (operator new and its aligned and
// nothrow forms in libstdc++, std::vector and std::string, Highway's
// hwy::AllocateAligned, fmt). The binary defines malloc, calloc, realloc,
// aligned_alloc, posix_memalign, memalign, valloc and pvalloc, which count and
// forward to glibc's own implementations (__libc_malloc and friends, exported
// for exactly this purpose), so free() stays glibc's. Under AddressSanitizer,
// whose allocator replaces glibc's, the sanitizer's malloc hook counts
// instead. CountingAllocator.SeesEveryAllocationFunction checks that each of
// these paths is counted.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <unistd.h>

#include <hwy/aligned_allocator.h>
#include <hwy/targets.h>

#include "common/simd_targets_for_test.h"
#include "convert/synth_model.h"
#include "kv/contiguous_kv_cache.h"
#include "kv/kv_cache_factory.h"
#include "kv/paged_kv_cache.h"
#include "model/model.h"
#include "test_models.h"

namespace {
std::atomic<long> g_allocations{0};
void count_allocation() {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define KVFORGE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KVFORGE_TEST_ASAN 1
#endif
#endif

#ifdef KVFORGE_TEST_ASAN
// sanitizer/allocator_interface.h (not shipped with every compiler).
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*,
                                                                             size_t),
                                                         void (*free_hook)(const volatile void*));
namespace {
void on_sanitizer_malloc(const volatile void*, size_t) {
  count_allocation();
}
void on_sanitizer_free(const volatile void*) {}
// The sanitizer installs nothing unless both hooks are given.
const int g_hooks_installed =
    __sanitizer_install_malloc_and_free_hooks(on_sanitizer_malloc, on_sanitizer_free);
}  // namespace
#else
extern "C" {
void* __libc_malloc(size_t n);
void* __libc_calloc(size_t n, size_t size);
void* __libc_realloc(void* p, size_t n);
void* __libc_memalign(size_t alignment, size_t n);
void* __libc_valloc(size_t n);
void* __libc_pvalloc(size_t n);

void* malloc(size_t n) {
  count_allocation();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  count_allocation();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  count_allocation();
  return __libc_realloc(p, n);
}
void* memalign(size_t alignment, size_t n) {
  count_allocation();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  count_allocation();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, size_t alignment, size_t n) {
  count_allocation();
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(size_t n) {
  count_allocation();
  return __libc_valloc(n);
}
void* pvalloc(size_t n) {
  count_allocation();
  return __libc_pvalloc(n);
}
}  // extern "C"
#endif

namespace kvforge {
namespace {

// Allocations made while `f` runs.
template <class F>
long allocations_in(const F& f) {
  const long before = g_allocations.load();
  f();
  return g_allocations.load() - before;
}

// Keeps a pointer alive so the compiler cannot drop an allocation.
void* volatile g_sink = nullptr;

TEST(CountingAllocator, SeesEveryAllocationFunction) {
#ifdef KVFORGE_TEST_ASAN
  ASSERT_NE(g_hooks_installed, 0) << "the sanitizer refused the malloc hook";
#endif
  EXPECT_GE(allocations_in([] {
              g_sink = std::malloc(100);
              std::free(g_sink);
            }),
            1)
      << "malloc";
  EXPECT_GE(allocations_in([] {
              g_sink = std::calloc(10, 10);
              std::free(g_sink);
            }),
            1)
      << "calloc";
  void* grown = std::malloc(16);
  EXPECT_GE(allocations_in([&] { grown = std::realloc(grown, 1 << 20); }), 1) << "realloc";
  std::free(grown);
  EXPECT_GE(allocations_in([] {
              g_sink = std::aligned_alloc(64, 256);
              std::free(g_sink);
            }),
            1)
      << "aligned_alloc";
  EXPECT_GE(allocations_in([] {
              void* p = nullptr;
              EXPECT_EQ(posix_memalign(&p, 128, 256), 0);
              g_sink = p;
              std::free(p);
            }),
            1)
      << "posix_memalign";
  EXPECT_GE(allocations_in([] {
              g_sink = ::operator new(24);
              ::operator delete(g_sink);
            }),
            1)
      << "operator new";
  EXPECT_GE(allocations_in([] {
              g_sink = ::operator new[](24);
              ::operator delete[](g_sink);
            }),
            1)
      << "operator new[]";
  EXPECT_GE(allocations_in([] {
              g_sink = ::operator new (256, std::align_val_t{128});
              ::operator delete (g_sink, std::align_val_t{128});
            }),
            1)
      << "aligned operator new";
  EXPECT_GE(allocations_in([] {
              g_sink = ::operator new[](256, std::align_val_t{4096}, std::nothrow);
              ::operator delete[](g_sink, std::align_val_t{4096});
            }),
            1)
      << "aligned nothrow operator new[] (the block pool's)";
  EXPECT_GE(allocations_in([] {
              std::vector<float> v;
              v.push_back(1.0f);
              g_sink = v.data();
            }),
            1)
      << "std::vector";
  EXPECT_GE(allocations_in([] {
              auto p = hwy::AllocateAligned<float>(1000);
              g_sink = p.get();
            }),
            1)
      << "hwy::AllocateAligned";
  // ... and nothing else: a push_back within the reserved capacity.
  std::vector<float> reserved;
  reserved.reserve(16);
  EXPECT_EQ(allocations_in([&] {
              reserved.push_back(1.0f);
              g_sink = reserved.data();
            }),
            0);
}

// 55 decode steps: they cross block boundaries and, for KIVI with r=16,
// move the full-precision window.
void expect_decode_allocates_nothing(Model& model, KvCache& kv, const std::string& what) {
  std::vector<float> logits(static_cast<size_t>(model.config().n_vocab));
  std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  ASSERT_TRUE(model.forward(prompt, 0, kv, SeqId{0}, LogitsFor::kLastToken, logits.data()).ok());
  const long allocations = allocations_in([&] {
    for (int32_t pos = 5; pos < 60; ++pos) {
      const int32_t one[1] = {300 + pos};
      Status s = model.forward(one, pos, kv, SeqId{0}, LogitsFor::kLastToken, logits.data());
      ASSERT_TRUE(s.ok());
    }
  });
  EXPECT_EQ(allocations, 0) << what << ", " << model.n_threads() << " threads";
}

std::unique_ptr<KvCache> paged_cache(const Model& model, const std::string& codec) {
  KvCacheOptions options;
  options.codec = codec;
  options.block_tokens = 16;
  options.n_ctx = 128;
  auto kv = make_kv_cache(model.kv_shape(), options);
  EXPECT_TRUE(kv.ok()) << kv.status().to_string();
  return kv.ok() ? std::move(kv).value() : nullptr;
}

TEST(DecodeAllocations, PagedCacheDecodeAllocatesNothing) {
  auto m = Model::load(testing::stories260k_gguf(), ModelOptions{2, 32});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  for (const std::string codec : {"f16", "int8", "int4h", "kivi2:g=16:r=16"}) {
    auto kv = paged_cache(**m, codec);
    ASSERT_NE(kv, nullptr);
    expect_decode_allocates_nothing(**m, *kv, codec);
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
      expect_decode_allocates_nothing(**m, **kv, codec + " " + select + ", 2 threads");
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
    expect_decode_allocates_nothing(**m, kv, "contiguous f16 cache");
  }
}

// Synthetic tiny llama models (convert/synth_model.h) with quantized
// matrices: their decode steps run the quantized matmul kernels (int8
// activations on AVX2 and AVX-512), which stories260K's f32 weights do not.
class QuantizedDecodeAllocations : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    convert::SynthOptions o;
    o.arch = "llama";
    o.preset = "tiny";
    o.type = GetParam();
    o.seed = 1;
    o.vocab_path = std::string(KVFORGE_SHARED_DIR) + "/vocab/ggml-vocab-llama-spm.gguf";
    path_ = (std::filesystem::temp_directory_path() /
             ("kvforge-decode-alloc-" + GetParam() + "-" + std::to_string(::getpid()) + ".gguf"))
                .string();
    const Status written = convert::synth_model(o, path_);
    ASSERT_TRUE(written.ok()) << written.to_string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::string path_;
};

// Two threads on every target; one thread (no workers woken) on the best.
TEST_P(QuantizedDecodeAllocations, DecodeAllocatesNothingOnEveryTarget) {
  const std::vector<int64_t> targets = test_util::simd_targets_for_test();
  for (int threads : {1, 2}) {
    auto m = Model::load(path_, ModelOptions{threads, 32});
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    for (const int64_t target : threads == 1 ? std::vector{targets.front()} : targets) {
      test_util::ScopedSimdTarget scoped(target);
      const std::string where = GetParam() + " weights on " + hwy::TargetName(target);
      {
        ContiguousKvCache kv((*m)->kv_shape(), 1, 128, ContiguousKvType::kF16);
        expect_decode_allocates_nothing(**m, kv, where + ", contiguous f16 cache");
      }
      auto kv = paged_cache(**m, "kivi2:g=16:r=16");
      ASSERT_NE(kv, nullptr);
      expect_decode_allocates_nothing(**m, *kv, where + ", paged kivi2 cache");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QuantizedDecodeAllocations, ::testing::Values("q4_0", "q8_0"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kvforge
