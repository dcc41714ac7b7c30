#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "kernels/matmul_internal.h"
#include "kernels/weight_format.h"
#include "kvforge/status.h"
#include "util/thread_pool.h"

namespace kvforge::kernels {

struct MatmulScratch::Impl {
  int n_threads = 0;
  int64_t max_tokens = 0;
  int64_t max_cols = 0;
  // One ThreadScratch region (kThreadScratchFloats) per thread, 64-byte aligned.
  hwy::AlignedFreeUniquePtr<float[]> buffer;

  ThreadScratch for_thread(int thread) {
    float* base = buffer.get() + static_cast<size_t>(thread) * kThreadScratchFloats;
    return {base, base + kMaxPanelRows * kColumnChunk, base + 2 * kMaxPanelRows * kColumnChunk};
  }
};

MatmulScratch::MatmulScratch(int n_threads, int64_t max_tokens, int64_t max_cols)
    : impl_(std::make_unique<Impl>()) {
  KVF_CHECK(n_threads >= 1 && max_tokens >= 1 && max_cols >= 1);
  impl_->n_threads = n_threads;
  impl_->max_tokens = max_tokens;
  impl_->max_cols = max_cols;
  impl_->buffer =
      hwy::AllocateAligned<float>(static_cast<size_t>(n_threads) * kThreadScratchFloats);
  KVF_CHECK(impl_->buffer != nullptr);
}

MatmulScratch::~MatmulScratch() = default;

namespace {

const WeightFormat& checked_format(const MatrixView& w) {
  const WeightFormat* format = find_weight_format(w.type);
  KVF_CHECK(format != nullptr);
  KVF_CHECK(w.n_cols % format->block_elems == 0);
  KVF_CHECK(w.row_bytes ==
            static_cast<size_t>(w.n_cols / format->block_elems) * format->block_bytes);
  return *format;
}

}  // namespace

// Rows per decode task: small enough that 2-3 threads balance, large enough
// that taking a task (one atomic increment) is negligible next to streaming
// rows * row_bytes of weights.
constexpr int64_t kDecodeRowsPerTask = 16;

void matmul(const MatrixView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            MatmulScratch& scratch) {
  const WeightFormat& format = checked_format(w);
  MatmulScratch::Impl& s = *scratch.impl();
  KVF_CHECK(pool.n_threads() <= s.n_threads);
  KVF_CHECK(n_tokens <= s.max_tokens && w.n_cols <= s.max_cols);
  if (n_tokens <= 0 || w.n_rows <= 0) return;
  const MatmulArgs args{&w, &format, x, n_tokens, y};
  if (n_tokens <= kMaxDecodeTokens) {
    const int64_t n_tasks = (w.n_rows + kDecodeRowsPerTask - 1) / kDecodeRowsPerTask;
    pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
      const int64_t begin = task * kDecodeRowsPerTask;
      decode_rows(args, begin, std::min(begin + kDecodeRowsPerTask, w.n_rows),
                  s.for_thread(thread));
    });
    return;
  }
  const int64_t panel_rows = prefill_panel_rows();
  const int64_t n_panels = (w.n_rows + panel_rows - 1) / panel_rows;
  pool.parallel_for(n_panels, [&](int64_t panel, int thread) {
    prefill_panel(args, panel * panel_rows, s.for_thread(thread));
  });
}

void matmul_reference(const MatrixView& w, const float* x, int64_t n_tokens, float* y) {
  const WeightFormat& format = checked_format(w);
  const auto* base = static_cast<const uint8_t*>(w.data);
  std::vector<float> row(static_cast<size_t>(w.n_cols));
  for (int64_t r = 0; r < w.n_rows; ++r) {
    format.dequantize_blocks(base + static_cast<size_t>(r) * w.row_bytes, row.data(),
                             w.n_cols / format.block_elems);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * w.n_cols;
      double sum = 0.0;
      for (int64_t c = 0; c < w.n_cols; ++c) sum += static_cast<double>(row[c]) * xt[c];
      y[t * w.n_rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace kvforge::kernels
