// Model: a loaded GGUF model and its forward pass.
//
// A Model owns the memory-mapped file, the weight views into it, a thread
// pool and every activation buffer, all sized at load time: forward() does
// not allocate. KV storage is not part of the model; the caller passes a
// KvCache (kv/kv_cache.h), so any storage/codec plugs in unchanged.
//
// Thread-safety: forward() must not run concurrently on one Model.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "kvforge/status.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace kvforge {

namespace gguf {
class GgufFile;
}
class ThreadPool;
namespace kernels {
class MatmulScratch;
}

struct ModelOptions {
  int32_t n_threads = 0;    // 0: all cores available to the process
  int32_t max_batch = 256;  // tokens per internal forward chunk (prefill batch)
  // Q4_0 matrices repacked at load into strips that the matmul kernels read
  // in place (repack_q4_0_matrices): same memory, same results, faster
  // batched products. Off: the kernels read the file's blocks.
  bool repack_weights = true;
};

enum class LogitsFor {
  kNone,       // only fill the KV cache
  kLastToken,  // logits: [n_vocab]
  kAllTokens,  // logits: [n_tokens, n_vocab]
};

// One sequence's part of a batched forward call: its tokens at positions
// [pos0, pos0 + tokens.size()), and which logits it wants written where.
struct ForwardItem {
  SeqId seq;
  int32_t pos0 = 0;
  std::span<const int32_t> tokens;
  LogitsFor which = LogitsFor::kLastToken;
  float* logits = nullptr;
};

class Model {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Model>> load(const std::string& path,
                                                           const ModelOptions& options);
  // Takes ownership of an opened file (e.g. built in memory by tests).
  [[nodiscard]] static Result<std::unique_ptr<Model>> from_file(
      std::unique_ptr<gguf::GgufFile> file, const ModelOptions& options);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] const gguf::GgufFile& file() const { return *file_; }
  [[nodiscard]] const ModelWeights& weights() const { return weights_; }
  [[nodiscard]] KvShape kv_shape() const;
  [[nodiscard]] ThreadPool& pool() { return *pool_; }
  [[nodiscard]] int32_t n_threads() const;
  // Most tokens one forward_batch call takes (ModelOptions::max_batch).
  [[nodiscard]] int32_t max_batch() const { return options_.max_batch; }
  // Bytes of weights that one decode step reads (every matrix once, plus the
  // one embedding row).
  [[nodiscard]] uint64_t weight_bytes_per_token() const;
  [[nodiscard]] uint64_t n_params() const;
  // Identifies the weights: a hash of every tensor's name, type, shape and its
  // first and last 4 KiB. KV computed by one model is never used with another.
  [[nodiscard]] uint64_t fingerprint() const;
  // Weights one token multiplies with (every matrix once, incl. the output).
  [[nodiscard]] uint64_t matmul_params_per_token() const;

  // Runs `tokens` at positions [pos0, pos0 + tokens.size()) of `seq`,
  // appending their keys and values to `kv`, and writes logits as `which`
  // says. Fails without side effects if a token id is out of range or the
  // cache cannot hold the tokens (the one exception: a cache that cannot roll
  // back a partly appended call, see KvCache::truncate, keeps what it holds
  // and the message says so).
  [[nodiscard]] Status forward(std::span<const int32_t> tokens, int32_t pos0, KvCache& kv,
                               SeqId seq, LogitsFor which, float* logits);

  // One forward pass over several sequences at once (continuous batching):
  // the weight matmuls take every item's rows together, attention runs per
  // item over its own sequence's KV. At most max_batch tokens in all, each
  // item non-empty and its sequence appearing once. A row's result does not
  // depend on the other rows of the batch (docs/serving.md says how this is
  // kept and tested). Fails without side effects (every item's appended
  // tokens are rolled back) if a token id is out of range or the cache
  // cannot hold some item; the message names the item.
  [[nodiscard]] Status forward_batch(std::span<const ForwardItem> items, KvCache& kv);

  // Reuse of keys and values computed in another context (relay,
  // docs/relay.md). Keys of this model that RoPE rotated for positions p
  // become the keys for positions p + delta (rotations by the same
  // frequencies compose): keys [n][n_kv_heads][head_dim], in place.
  void rerotate_keys(float* keys, int32_t n, int32_t delta) const;

  // Appends `tokens` to the sequence with the given keys and values (per
  // layer, already rotated for their new positions) instead of computing
  // them, then recomputes what the new context changes most: layer 0 of
  // every token (its KV depends on the token alone), the layer-1 KV of every
  // token (it depends only on layer 0's exact output), and the tokens whose
  // layer-1 KV deviates most from the reused one, a recompute_ratio share of
  // them, through all later layers (CacheBlend-style selection). Needs a
  // cache that can rewrite rows (KvCache::can_rewrite_rows); marks the
  // sequence approximate from the span on. Returns the recomputed count.
  struct ReusedSpan {
    SeqId seq;
    std::span<const int32_t> tokens;
    std::vector<const float*> keys;    // per layer: [n][n_kv_heads][head_dim]
    std::vector<const float*> values;  // per layer
    double recompute_ratio = 0.15;
  };
  [[nodiscard]] Result<int32_t> prefill_reused(const ReusedSpan& span, KvCache& kv);

 private:
  Model() = default;
  // The rows of the batch being computed: item i's tokens are rows
  // [row0[i], row0[i] + n) of the activations.
  struct BatchRows {
    std::span<const ForwardItem> items;
    std::span<const int32_t> row0;
    int32_t n_rows = 0;
  };
  [[nodiscard]] Status check_items(std::span<const ForwardItem> items) const;
  void forward_rows(const BatchRows& batch, KvCache& kv);
  // The embedding of `token` (a valid id) into out[n_embd].
  void embed(int32_t token, float* out) const;
  void attention_block(const LayerWeights& l, LayerId layer, const BatchRows& batch, KvCache& kv);
  template <class Fn>
  void for_rows(int32_t n, int64_t row_elements, const Fn& fn);
  void norm_rows(const float* weight, int32_t n);
  void add_residual(int32_t n);
  void swiglu_rows(int32_t n);
  void feed_forward_block(const LayerWeights& l, int32_t n);
  // q, k, v of the n rows of x_ (RoPE by cos_sin_ rows), the first part of
  // attention_block.
  void project_qkv(const LayerWeights& l, int32_t n);
  // Rows of x_ at scattered positions of one sequence through one layer.
  void layer_at(const LayerWeights& l, LayerId layer, SeqId seq, std::span<const int32_t> positions,
                KvCache& kv);
  std::vector<int32_t> positions_;  // prefill_reused: the recomputed rows' positions
  void output_logits(int32_t first_row, int32_t n, float* logits);
  // The last row's logits of every kLastToken item, grouped (model.cpp).
  void last_token_logits(std::span<const ForwardItem> items);
  [[nodiscard]] int32_t logit_group_rows() const { return std::min(options_.max_batch, 32); }
  std::unique_ptr<float[]> group_logits_;  // [logit_group_rows(), n_vocab]
  void matmul(const kernels::MatrixView& w, const float* x, int32_t n, float* y);
  // Several matrices times the same x (kernels::matmul_shared_input).
  void matmul_shared_input(std::initializer_list<kernels::MatmulOutput> outputs, const float* x,
                           int32_t n);

  std::unique_ptr<gguf::GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
  HugePageBuffer weight_strips_;  // views in weights_ point into it
  ModelOptions options_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<kernels::MatmulScratch> scratch_;
  std::vector<float> inv_freq_;  // [rope_dim/2] rotary frequencies incl. scaling

  // Activations for up to max_batch tokens, row-major [tokens, width].
  std::vector<float> x_, h_, q_, k_, v_, attn_, gate_, up_, cos_sin_;
  std::vector<int32_t> row0_;  // forward_batch: first row of each item (max_batch entries)
  std::vector<ForwardItem> chunk_item_;  // forward(): the one item of each chunk
};

}  // namespace kvforge
