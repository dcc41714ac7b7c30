#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "kernels/weight_format.h"
#include "kvforge/status.h"
#include "util/thread_pool.h"

namespace kvforge::kernels {

struct MatmulScratch::Impl {
  int n_threads = 0;
  int64_t max_tokens = 0;
  int64_t max_cols = 0;
  std::vector<std::vector<float>> row_buffers;  // one dequantized row per thread
};

MatmulScratch::MatmulScratch(int n_threads, int64_t max_tokens, int64_t max_cols)
    : impl_(std::make_unique<Impl>()) {
  KVF_CHECK(n_threads >= 1 && max_tokens >= 1 && max_cols >= 1);
  impl_->n_threads = n_threads;
  impl_->max_tokens = max_tokens;
  impl_->max_cols = max_cols;
  impl_->row_buffers.assign(static_cast<size_t>(n_threads),
                            std::vector<float>(static_cast<size_t>(max_cols)));
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

void matmul(const MatrixView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            MatmulScratch& scratch) {
  const WeightFormat& format = checked_format(w);
  MatmulScratch::Impl& s = *scratch.impl();
  KVF_CHECK(pool.n_threads() <= s.n_threads);
  KVF_CHECK(n_tokens <= s.max_tokens && w.n_cols <= s.max_cols);
  const auto* base = static_cast<const uint8_t*>(w.data);
  pool.parallel_for(w.n_rows, [&](int64_t r, int thread) {
    float* row = s.row_buffers[static_cast<size_t>(thread)].data();
    format.dequantize_blocks(base + static_cast<size_t>(r) * w.row_bytes, row,
                             w.n_cols / format.block_elems);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * w.n_cols;
      float sum = 0.0f;
      for (int64_t c = 0; c < w.n_cols; ++c) sum += row[c] * xt[c];
      y[t * w.n_rows + r] = sum;
    }
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
