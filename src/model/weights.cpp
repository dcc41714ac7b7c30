#include "model/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gguf/gguf.h"
#include "kernels/q4_0_strips.h"
#include "util/thread_pool.h"

namespace kvforge {
namespace {

std::string dims_string(const std::vector<uint64_t>& dims) {
  return fmt::format("{}", dims);
}

class Binder {
 public:
  Binder(const gguf::GgufFile& f) : f_(f) {}

  // A matrix of `rows` rows of `cols` elements (GGUF dims {cols, rows}).
  Result<kernels::MatrixView> matrix(const std::string& name, int64_t cols, int64_t rows) {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (t == nullptr) return not_found(fmt::format("model is missing tensor '{}'", name));
    const std::vector<uint64_t> want = {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)};
    if (t->dims != want) {
      return corrupt(fmt::format("tensor '{}' has shape {}, expected {}", name,
                                 dims_string(t->dims), dims_string(want)));
    }
    auto traits = tensor_type_traits(static_cast<uint32_t>(t->type));
    if (!traits || !traits->supported) {
      return unsupported(fmt::format(
          "tensor '{}' has type {}, which kvforge cannot compute with (supported: f32, f16, "
          "bf16, q8_0, q4_0, q4_1, q4_K, q5_K, q6_K)",
          name, traits ? traits->name : "unknown"));
    }
    kernels::MatrixView m;
    m.type = t->type;
    m.data = t->data;
    m.n_rows = rows;
    m.n_cols = cols;
    m.row_bytes = tensor_row_bytes(t->type, static_cast<uint64_t>(cols));
    return m;
  }

  // An f32 vector of n elements.
  Result<const float*> vector(const std::string& name, int64_t n) {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (t == nullptr) return not_found(fmt::format("model is missing tensor '{}'", name));
    if (t->dims != std::vector<uint64_t>{static_cast<uint64_t>(n)}) {
      return corrupt(
          fmt::format("tensor '{}' has shape {}, expected [{}]", name, dims_string(t->dims), n));
    }
    if (t->type != TensorType::kF32) {
      return unsupported(
          fmt::format("tensor '{}' must be f32, it is {}", name, tensor_type_name(t->type)));
    }
    // GGUF aligns tensor data to general.alignment (>= 4 in practice); check
    // it rather than assume, since we read floats in place.
    if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0) {
      return corrupt(fmt::format("tensor '{}' data is not 4-byte aligned", name));
    }
    return reinterpret_cast<const float*>(t->data);
  }

 private:
  const gguf::GgufFile& f_;
};

}  // namespace

Result<ModelWeights> bind_weights(const gguf::GgufFile& f, const ModelConfig& c) {
  Binder b(f);
  ModelWeights w;
  KVF_ASSIGN_OR_RETURN(w.token_embd, b.matrix("token_embd.weight", c.n_embd, c.n_vocab));
  KVF_ASSIGN_OR_RETURN(w.output_norm, b.vector("output_norm.weight", c.n_embd));
  if (f.find_tensor("output.weight") != nullptr) {
    KVF_ASSIGN_OR_RETURN(w.output, b.matrix("output.weight", c.n_embd, c.n_vocab));
  } else {
    w.output = w.token_embd;
    w.output_tied = true;
  }
  if (f.find_tensor("rope_freqs.weight") != nullptr) {
    KVF_ASSIGN_OR_RETURN(w.rope_freqs, b.vector("rope_freqs.weight", c.rope_dim / 2));
  }
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int32_t i = 0; i < c.n_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = fmt::format("blk.{}.", i);
    KVF_ASSIGN_OR_RETURN(l.attn_norm, b.vector(p + "attn_norm.weight", c.n_embd));
    KVF_ASSIGN_OR_RETURN(l.wq, b.matrix(p + "attn_q.weight", c.n_embd, c.q_dim()));
    KVF_ASSIGN_OR_RETURN(l.wk, b.matrix(p + "attn_k.weight", c.n_embd, c.kv_dim()));
    KVF_ASSIGN_OR_RETURN(l.wv, b.matrix(p + "attn_v.weight", c.n_embd, c.kv_dim()));
    KVF_ASSIGN_OR_RETURN(l.wo, b.matrix(p + "attn_output.weight", c.q_dim(), c.n_embd));
    if (c.arch->qkv_bias) {
      KVF_ASSIGN_OR_RETURN(l.q_bias, b.vector(p + "attn_q.bias", c.q_dim()));
      KVF_ASSIGN_OR_RETURN(l.k_bias, b.vector(p + "attn_k.bias", c.kv_dim()));
      KVF_ASSIGN_OR_RETURN(l.v_bias, b.vector(p + "attn_v.bias", c.kv_dim()));
    }
    if (c.arch->qk_norm) {
      KVF_ASSIGN_OR_RETURN(l.q_norm, b.vector(p + "attn_q_norm.weight", c.head_dim));
      KVF_ASSIGN_OR_RETURN(l.k_norm, b.vector(p + "attn_k_norm.weight", c.head_dim));
    }
    KVF_ASSIGN_OR_RETURN(l.ffn_norm, b.vector(p + "ffn_norm.weight", c.n_embd));
    KVF_ASSIGN_OR_RETURN(l.w_gate, b.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff));
    KVF_ASSIGN_OR_RETURN(l.w_up, b.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff));
    KVF_ASSIGN_OR_RETURN(l.w_down, b.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd));
  }
  return w;
}

HugePageBuffer repack_q4_0_matrices(ModelWeights& weights, const gguf::GgufFile& file,
                                    ThreadPool& pool) {
  if (!kernels::q4_0_strips_supported()) return {};
  std::vector<kernels::MatrixView*> matrices = {&weights.output};
  for (LayerWeights& l : weights.layers) {
    for (kernels::MatrixView* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      matrices.push_back(m);
    }
  }
  std::erase_if(matrices,
                [](const kernels::MatrixView* m) { return m->type != TensorType::kQ4_0; });
  // One buffer for all (a huge page is resident whole: one per matrix would
  // round each up to 2 MiB), each matrix's strips 64-byte aligned in it.
  auto strips_bytes = [](const kernels::MatrixView* m) {
    return (kernels::q4_0_strips_bytes(m->n_rows, m->n_cols) + 63) / 64 * 64;
  };
  size_t total = 0;
  for (const kernels::MatrixView* m : matrices) total += strips_bytes(m);
  HugePageBuffer buffer(total);
  if (buffer.data() == nullptr) return buffer;  // the kernels read the file's blocks
  uint8_t* strips = buffer.data();
  for (kernels::MatrixView* m : matrices) {
    // Tasks of 64 strips (1024 rows) keep every thread busy on large matrices.
    constexpr int64_t kStripsPerTask = 64;
    const int64_t n_strips = (m->n_rows + kernels::kStripRows - 1) / kernels::kStripRows;
    pool.parallel_for((n_strips + kStripsPerTask - 1) / kStripsPerTask, [&](int64_t task, int) {
      const int64_t begin = task * kStripsPerTask;
      kernels::repack_q4_0_strips(*m, begin, std::min(begin + kStripsPerTask, n_strips), strips);
    });
    m->strips = strips;
    strips += strips_bytes(m);
    file.release_pages(m->data, static_cast<size_t>(m->n_rows) * m->row_bytes);
  }
  // A tied output is the embedding matrix: its rows are looked up in the
  // strips too (dequantize_q4_0_strip_row), so the file's copy is not kept.
  if (weights.output_tied) weights.token_embd.strips = weights.output.strips;
  return buffer;
}

}  // namespace kvforge
