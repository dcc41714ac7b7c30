// Matrix products of model weights (any supported TensorType, ggml block
// layout) with f32 activations: the op that dominates both prefill and decode.
//
//   y[t, r] = sum_c W[r, c] * x[t, c]      t < n_tokens, r < n_rows, c < n_cols
//
// W is row-major with n_rows rows of row_bytes each (GGUF dims {n_cols, n_rows}).
// x is [n_tokens, n_cols] f32 row-major, y is [n_tokens, n_rows] f32 row-major.
// Work is split across the ThreadPool; scratch memory comes from a
// MatmulScratch sized once up front, so a call allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "util/tensor_type.h"

namespace kvforge {
class ThreadPool;
}

namespace kvforge::kernels {

struct MatrixView {
  TensorType type = TensorType::kF32;
  const void* data = nullptr;
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  size_t row_bytes = 0;  // tensor_row_bytes(type, n_cols)
  // Optional: the same Q4_0 matrix repacked by repack_q4_0_strips
  // (q4_0_strips.h), which matmul then reads instead of `data` where the
  // SIMD target has the strip kernel. Results are identical either way.
  const uint8_t* strips = nullptr;
};

// Per-thread scratch for activation conversion and weight-panel unpacking.
// Sized for the largest (n_tokens, n_cols) the caller will pass.
class MatmulScratch {
 public:
  MatmulScratch(int n_threads, int64_t max_tokens, int64_t max_cols);
  ~MatmulScratch();
  MatmulScratch(const MatmulScratch&) = delete;
  MatmulScratch& operator=(const MatmulScratch&) = delete;

  struct Impl;
  Impl* impl() { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

void matmul(const MatrixView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            MatmulScratch& scratch);

// One product of matmul_shared_input: y = W x, y laid out as matmul's.
struct MatmulOutput {
  const MatrixView* w = nullptr;
  float* y = nullptr;
};
constexpr size_t kMaxSharedInputOutputs = 4;

// Several matrices times the same x (a layer's q, k and v projections; its
// gate and up), every output equal bit for bit to matmul's. Where the
// matrices (at most kMaxSharedInputOutputs, all n_cols wide) take the same
// kernel path, x is rounded to int8 or packed once for all of them instead
// of once per matrix; Q4_0 matrices in strips also run all their panels in
// one parallel region (fewer waits, and the small k and v projections no
// longer leave a thread idle at the end of their own region). Otherwise
// this is matmul on each in turn.
void matmul_shared_input(std::span<const MatmulOutput> outputs, const float* x, int64_t n_tokens,
                         ThreadPool& pool, MatmulScratch& scratch);

// Scalar reference of the same product (dequantize each row, accumulate in
// double, in column order). Used by tests to bound the optimized kernels' error.
void matmul_reference(const MatrixView& w, const float* x, int64_t n_tokens, float* y);

}  // namespace kvforge::kernels
