#include "model/model.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <xxhash.h>

#include "gguf/gguf.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/q4_0_strips.h"
#include "kernels/quant.h"
#include "util/thread_pool.h"

namespace kvforge {

Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(const std::string& path, const ModelOptions& options) {
  auto file = gguf::GgufFile::open(path);
  if (!file.ok()) return file.status();
  auto model = from_file(std::move(file).value(), options);
  if (!model.ok()) return model.status().with_context(path);
  return model;
}

Result<std::unique_ptr<Model>> Model::from_file(std::unique_ptr<gguf::GgufFile> file,
                                                const ModelOptions& options) {
  if (options.max_batch <= 0 || options.n_threads < 0) {
    return invalid_argument("model options: max_batch must be > 0 and n_threads >= 0");
  }
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::move(file);
  KVF_ASSIGN_OR_RETURN(m->config_, read_model_config(*m->file_));
  KVF_ASSIGN_OR_RETURN(m->weights_, bind_weights(*m->file_, m->config_));
  m->options_ = options;
  const ModelConfig& c = m->config_;

  const int32_t n_threads =
      options.n_threads > 0 ? options.n_threads : ThreadPool::hardware_threads();
  m->pool_ = std::make_unique<ThreadPool>(n_threads);
  if (options.repack_weights) {
    m->weight_strips_ = repack_q4_0_matrices(m->weights_, *m->file_, *m->pool_);
  }
  const int64_t b = options.max_batch;
  const int64_t max_cols = std::max({c.n_embd, c.n_ff, c.q_dim()});
  m->scratch_ = std::make_unique<kernels::MatmulScratch>(n_threads, b, max_cols);

  // Rotary frequencies: base^(-2i/rope_dim), divided by the optional
  // per-frequency factors of Llama 3.1-style scaling.
  const int32_t half = c.rope_dim / 2;
  m->inv_freq_.resize(static_cast<size_t>(half));
  for (int32_t i = 0; i < half; ++i) {
    double f = std::pow(static_cast<double>(c.rope_freq_base), -2.0 * i / c.rope_dim);
    if (m->weights_.rope_freqs) f /= m->weights_.rope_freqs[i];
    m->inv_freq_[static_cast<size_t>(i)] = static_cast<float>(f);
  }

  auto sized = [b](std::vector<float>& v, int64_t width) {
    v.assign(static_cast<size_t>(b * width), 0.0f);
  };
  sized(m->x_, c.n_embd);
  sized(m->h_, c.n_embd);
  sized(m->q_, c.q_dim());
  sized(m->k_, c.kv_dim());
  sized(m->v_, c.kv_dim());
  sized(m->attn_, c.q_dim());
  sized(m->gate_, c.n_ff);
  sized(m->up_, c.n_ff);
  sized(m->cos_sin_, c.rope_dim);
  m->row0_.resize(static_cast<size_t>(b));
  // Not value-initialized: pages are touched only when several sequences
  // decode together.
  m->group_logits_ = std::make_unique_for_overwrite<float[]>(
      static_cast<size_t>(m->logit_group_rows()) * static_cast<size_t>(c.n_vocab));
  m->chunk_item_.resize(1);
  return m;
}

KvShape Model::kv_shape() const {
  return KvShape{config_.n_layers, config_.n_heads, config_.n_kv_heads, config_.head_dim};
}

int32_t Model::n_threads() const {
  return pool_->n_threads();
}

uint64_t Model::weight_bytes_per_token() const {
  auto bytes = [](const kernels::MatrixView& m) {
    return static_cast<uint64_t>(m.row_bytes) * static_cast<uint64_t>(m.n_rows);
  };
  uint64_t total = bytes(weights_.output) + weights_.token_embd.row_bytes;
  for (const LayerWeights& l : weights_.layers) {
    total += bytes(l.wq) + bytes(l.wk) + bytes(l.wv) + bytes(l.wo) + bytes(l.w_gate) +
             bytes(l.w_up) + bytes(l.w_down);
  }
  return total;
}

uint64_t Model::matmul_params_per_token() const {
  auto params = [](const kernels::MatrixView& m) {
    return static_cast<uint64_t>(m.n_rows) * static_cast<uint64_t>(m.n_cols);
  };
  uint64_t total = params(weights_.output);
  for (const LayerWeights& l : weights_.layers) {
    total += params(l.wq) + params(l.wk) + params(l.wv) + params(l.wo) + params(l.w_gate) +
             params(l.w_up) + params(l.w_down);
  }
  return total;
}

uint64_t Model::fingerprint() const {
  XXH3_state_t* state = XXH3_createState();
  KVF_CHECK(state != nullptr);
  XXH3_64bits_reset(state);
  for (const gguf::TensorInfo& t : file_->tensors()) {
    XXH3_64bits_update(state, t.name.data(), t.name.size());
    const auto type = static_cast<uint32_t>(t.type);
    XXH3_64bits_update(state, &type, sizeof(type));
    XXH3_64bits_update(state, t.dims.data(), t.dims.size() * sizeof(uint64_t));
    const uint64_t sample = std::min<uint64_t>(t.n_bytes, 4096);
    XXH3_64bits_update(state, t.data, sample);
    XXH3_64bits_update(state, t.data + (t.n_bytes - sample), sample);
  }
  const uint64_t hash = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return hash;
}

uint64_t Model::n_params() const {
  uint64_t n = 0;
  for (const gguf::TensorInfo& t : file_->tensors()) n += t.n_elements();
  return n;
}

void Model::matmul(const kernels::MatrixView& w, const float* x, int32_t n, float* y) {
  kernels::matmul(w, x, n, y, *pool_, *scratch_);
}

void Model::matmul_shared_input(std::initializer_list<kernels::MatmulOutput> outputs,
                                const float* x, int32_t n) {
  kernels::matmul_shared_input(outputs, x, n, *pool_, *scratch_);
}

Status Model::forward(std::span<const int32_t> tokens, int32_t pos0, KvCache& kv, SeqId seq,
                      LogitsFor which, float* logits) {
  const auto n_total = static_cast<int64_t>(tokens.size());
  if (n_total == 0) return invalid_argument("forward: no tokens");
  if (n_total > INT32_MAX - pos0) return out_of_range("forward: position overflow");

  // The cache is told one chunk at a time, so a cache that stages recent KV in
  // full precision never holds more than one chunk beyond its window.
  const int32_t b = options_.max_batch;
  for (int64_t start = 0; start < n_total; start += b) {
    const auto n = static_cast<int32_t>(std::min<int64_t>(b, n_total - start));
    ForwardItem& item = chunk_item_[0];
    item.seq = seq;
    item.pos0 = pos0 + static_cast<int32_t>(start);
    item.tokens = tokens.subspan(static_cast<size_t>(start), static_cast<size_t>(n));
    item.which = LogitsFor::kNone;
    item.logits = nullptr;
    if (which == LogitsFor::kAllTokens) {
      item.which = LogitsFor::kAllTokens;
      item.logits = logits + start * config_.n_vocab;
    } else if (which == LogitsFor::kLastToken && start + n == n_total) {
      item.which = LogitsFor::kLastToken;
      item.logits = logits;
    }
    const Status done = forward_batch(chunk_item_, kv);
    if (!done.ok()) {
      // Leave the sequence as it was: earlier chunks of this call are undone
      // where the cache can roll back; otherwise it keeps them (valid KV for
      // the tokens it reports holding) and the caller sees n_tokens(seq).
      if (start > 0 && !kv.truncate(seq, pos0).ok()) {
        return Status(done.code(),
                      fmt::format("{} (the sequence keeps the first {} tokens of this call)",
                                  done.message(), start));
      }
      return done;
    }
  }
  return Status();
}

Status Model::check_items(std::span<const ForwardItem> items) const {
  if (items.empty()) return invalid_argument("forward: no tokens");
  int64_t rows = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const ForwardItem& item = items[i];
    if (item.tokens.empty())
      return invalid_argument(fmt::format("forward: item {} has no tokens", i));
    if (item.which != LogitsFor::kNone && item.logits == nullptr) {
      return invalid_argument(
          fmt::format("forward: item {} asks for logits but gives no buffer", i));
    }
    for (int32_t id : item.tokens) {
      if (id < 0 || id >= config_.n_vocab) {
        return invalid_argument(
            fmt::format("token id {} is outside the vocabulary [0, {})", id, config_.n_vocab));
      }
    }
    if (static_cast<int64_t>(item.tokens.size()) > INT32_MAX - item.pos0) {
      return out_of_range("forward: position overflow");
    }
    for (size_t j = 0; j < i; ++j) {
      if (items[j].seq == item.seq) {
        return invalid_argument(
            fmt::format("forward: sequence {} appears twice in one batch", item.seq.value));
      }
    }
    rows += static_cast<int64_t>(item.tokens.size());
  }
  if (rows > options_.max_batch) {
    return invalid_argument(fmt::format(
        "forward: a batch of {} tokens exceeds the model's batch of {}", rows, options_.max_batch));
  }
  return Status();
}

Status Model::forward_batch(std::span<const ForwardItem> items, KvCache& kv) {
  KVF_RETURN_IF_ERROR(check_items(items));
  BatchRows batch;
  batch.items = items;
  for (size_t i = 0; i < items.size(); ++i) {
    const ForwardItem& item = items[i];
    const Status room = kv.begin_append(item.seq, item.pos0, item.tokens);
    if (!room.ok()) {
      for (size_t j = 0; j < i; ++j) (void)kv.truncate(items[j].seq, items[j].pos0);
      if (items.size() == 1) return room;
      return Status(room.code(), fmt::format("{} (batch item {}, sequence {})", room.message(), i,
                                             item.seq.value));
    }
    row0_[i] = batch.n_rows;
    batch.n_rows += static_cast<int32_t>(item.tokens.size());
  }
  batch.row0 = std::span<const int32_t>(row0_).first(items.size());
  forward_rows(batch, kv);
  for (size_t i = 0; i < items.size(); ++i) {
    const ForwardItem& item = items[i];
    if (item.which == LogitsFor::kAllTokens) {
      output_logits(row0_[i], static_cast<int32_t>(item.tokens.size()), item.logits);
    }
  }
  last_token_logits(items);
  return Status();
}

// The items' last rows go through the output matrix together, up to
// logit_group_rows() rows per product: the matrix (the largest in the
// model) is then read once per group instead of once per item, and the
// products run on the many-token kernels. Rows are computed alike for any
// group (matmul_internal.h), so an item's logits do not depend on its
// neighbours. A group is written in place when its items' logits are
// consecutive rows of one array (the scheduler lays them out so): copying
// 16 rows of a 128K vocabulary afterwards took about 1% of a 16-request
// server's samples, on the calling thread while the others waited.
void Model::last_token_logits(std::span<const ForwardItem> items) {
  const ModelConfig& c = config_;
  const auto vocab = static_cast<size_t>(c.n_vocab);
  const int32_t group_rows = logit_group_rows();
  size_t i = 0;
  while (i < items.size()) {
    int32_t n = 0;
    const size_t group_begin = i;
    float* first = nullptr;   // the logits of a group's first row
    bool consecutive = true;  // row k of the group at first + k * vocab
    for (; i < items.size() && n < group_rows; ++i) {
      const ForwardItem& item = items[i];
      if (item.which != LogitsFor::kLastToken) continue;
      const int32_t row = row0_[i] + static_cast<int32_t>(item.tokens.size()) - 1;
      kernels::rms_norm(x_.data() + static_cast<size_t>(row) * c.n_embd, weights_.output_norm,
                        h_.data() + static_cast<size_t>(n) * c.n_embd, c.n_embd, c.rms_eps);
      if (n == 0) first = item.logits;
      consecutive = consecutive && item.logits == first + static_cast<size_t>(n) * vocab;
      ++n;
    }
    if (n == 0) break;
    if (consecutive) {
      matmul(weights_.output, h_.data(), n, first);
      continue;
    }
    matmul(weights_.output, h_.data(), n, group_logits_.get());
    int32_t k = 0;
    for (size_t j = group_begin; j < i; ++j) {
      if (items[j].which != LogitsFor::kLastToken) continue;
      std::copy_n(group_logits_.get() + static_cast<size_t>(k++) * vocab, vocab, items[j].logits);
    }
  }
}

void Model::embed(int32_t token, float* out) const {
  const kernels::MatrixView& embd = weights_.token_embd;
  if (embd.strips != nullptr) {
    kernels::dequantize_q4_0_strip_row(embd, token, out);
    return;
  }
  const auto* row =
      static_cast<const uint8_t*>(embd.data) + static_cast<size_t>(token) * embd.row_bytes;
  kernels::dequantize_row(embd.type, row, out, config_.n_embd);
}

void Model::forward_rows(const BatchRows& batch, KvCache& kv) {
  const ModelConfig& c = config_;
  for (size_t i = 0; i < batch.items.size(); ++i) {
    const ForwardItem& item = batch.items[i];
    for (size_t t = 0; t < item.tokens.size(); ++t) {
      const auto row = static_cast<size_t>(batch.row0[i]) + t;
      embed(item.tokens[t], x_.data() + row * c.n_embd);
      kernels::rope_cos_sin(item.pos0 + static_cast<int32_t>(t), inv_freq_.data(), c.rope_dim / 2,
                            cos_sin_.data() + row * c.rope_dim);
    }
  }
  for (int32_t i = 0; i < c.n_layers; ++i) {
    const LayerWeights& l = weights_.layers[static_cast<size_t>(i)];
    attention_block(l, LayerId{i}, batch, kv);
    feed_forward_block(l, batch.n_rows);
  }
}

// fn(begin, end) over rows [0, n) of row_elements each: the per-row work
// between the matrix products (norms, RoPE, residual adds, SwiGLU). A
// batch of several rows is shared out over the pool by whole rows, at
// least 2 rows and 8192 elements a task; with 16 decoding sequences these
// loops ran on the calling thread while the others waited (about 4% of the
// server's samples). Each row is computed the same wherever it falls, so
// the split changes no bit.
template <class Fn>
void Model::for_rows(int32_t n, int64_t row_elements, const Fn& fn) {
  constexpr int64_t kMinRowsPerTask = 2;
  constexpr int64_t kMinElementsPerTask = 8192;
  const int64_t n_tasks = std::min<int64_t>(
      {pool_->n_threads(), n / kMinRowsPerTask, n * row_elements / kMinElementsPerTask});
  if (n_tasks <= 1) {
    fn(0, n);
    return;
  }
  pool_->parallel_for(n_tasks, [&](int64_t task, int) {
    fn(static_cast<int32_t>(n * task / n_tasks), static_cast<int32_t>(n * (task + 1) / n_tasks));
  });
}

// h_ = rms_norm(x_) * weight over n rows.
void Model::norm_rows(const float* weight, int32_t n) {
  const ModelConfig& c = config_;
  for_rows(n, c.n_embd, [&](int32_t begin, int32_t end) {
    for (int32_t t = begin; t < end; ++t) {
      const size_t off = static_cast<size_t>(t) * c.n_embd;
      kernels::rms_norm(x_.data() + off, weight, h_.data() + off, c.n_embd, c.rms_eps);
    }
  });
}

// x_ += h_ over n rows.
void Model::add_residual(int32_t n) {
  const auto width = static_cast<size_t>(config_.n_embd);
  for_rows(n, config_.n_embd, [&](int32_t begin, int32_t end) {
    kernels::add_in_place(x_.data() + begin * width, h_.data() + begin * width,
                          static_cast<int64_t>(end - begin) * config_.n_embd);
  });
}

void Model::project_qkv(const LayerWeights& l, int32_t n) {
  const ModelConfig& c = config_;
  norm_rows(l.attn_norm, n);
  matmul_shared_input({{&l.wq, q_.data()}, {&l.wk, k_.data()}, {&l.wv, v_.data()}}, h_.data(), n);
  if (l.q_bias) {
    kernels::add_bias_rows(q_.data(), l.q_bias, n, c.q_dim());
    kernels::add_bias_rows(k_.data(), l.k_bias, n, c.kv_dim());
    kernels::add_bias_rows(v_.data(), l.v_bias, n, c.kv_dim());
  }
  for_rows(n, c.q_dim() + c.kv_dim(), [&](int32_t begin, int32_t end) {
    for (int32_t t = begin; t < end; ++t) {
      float* q = q_.data() + static_cast<size_t>(t) * c.q_dim();
      float* k = k_.data() + static_cast<size_t>(t) * c.kv_dim();
      if (l.q_norm) {
        for (int32_t h = 0; h < c.n_heads; ++h) {
          float* head = q + static_cast<size_t>(h) * c.head_dim;
          kernels::rms_norm(head, l.q_norm, head, c.head_dim, c.rms_eps);
        }
        for (int32_t h = 0; h < c.n_kv_heads; ++h) {
          float* head = k + static_cast<size_t>(h) * c.head_dim;
          kernels::rms_norm(head, l.k_norm, head, c.head_dim, c.rms_eps);
        }
      }
      const float* cs = cos_sin_.data() + static_cast<size_t>(t) * c.rope_dim;
      kernels::rope_apply(q, c.n_heads, c.head_dim, c.rope_dim, c.arch->rope_layout, cs);
      kernels::rope_apply(k, c.n_kv_heads, c.head_dim, c.rope_dim, c.arch->rope_layout, cs);
    }
  });
}

void Model::attention_block(const LayerWeights& l, LayerId layer, const BatchRows& batch,
                            KvCache& kv) {
  const ModelConfig& c = config_;
  const int32_t n = batch.n_rows;
  project_qkv(l, n);
  // Attention per sequence, over its own KV.
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  for (size_t i = 0; i < batch.items.size(); ++i) {
    const ForwardItem& item = batch.items[i];
    const auto rows = static_cast<int32_t>(item.tokens.size());
    const auto r0 = static_cast<size_t>(batch.row0[i]);
    kv.store(item.seq, layer, item.pos0, rows, k_.data() + r0 * c.kv_dim(),
             v_.data() + r0 * c.kv_dim());
    kv.attend(item.seq, layer, item.pos0, rows, q_.data() + r0 * c.q_dim(), scale,
              attn_.data() + r0 * c.q_dim(), *pool_);
  }
  matmul(l.wo, attn_.data(), n, h_.data());
  add_residual(n);
}

void Model::layer_at(const LayerWeights& l, LayerId layer, SeqId seq,
                     std::span<const int32_t> positions, KvCache& kv) {
  const ModelConfig& c = config_;
  const auto n = static_cast<int32_t>(positions.size());
  project_qkv(l, n);
  kv.store_at(seq, layer, positions, k_.data(), v_.data());
  kv.attend_at(seq, layer, positions, q_.data(), 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
               attn_.data(), *pool_);
  matmul(l.wo, attn_.data(), n, h_.data());
  add_residual(n);
  feed_forward_block(l, n);
}

void Model::rerotate_keys(float* keys, int32_t n, int32_t delta) const {
  const ModelConfig& c = config_;
  std::vector<float> cs(static_cast<size_t>(c.rope_dim));
  kernels::rope_cos_sin(delta, inv_freq_.data(), c.rope_dim / 2, cs.data());
  for (int32_t t = 0; t < n; ++t) {
    kernels::rope_apply(keys + static_cast<size_t>(t) * c.kv_dim(), c.n_kv_heads, c.head_dim,
                        c.rope_dim, c.arch->rope_layout, cs.data());
  }
}

Result<int32_t> Model::prefill_reused(const ReusedSpan& span, KvCache& kv) {
  const ModelConfig& c = config_;
  const auto n_total = static_cast<int32_t>(span.tokens.size());
  if (n_total == 0) return 0;
  if (!kv.can_rewrite_rows()) {
    return unsupported("reusing KV needs a cache whose codecs rewrite rows one by one");
  }
  if (static_cast<int32_t>(span.keys.size()) != c.n_layers ||
      static_cast<int32_t>(span.values.size()) != c.n_layers || c.n_layers < 2) {
    return invalid_argument("prefill_reused: keys and values for every layer are needed");
  }
  if (!(span.recompute_ratio >= 0 && span.recompute_ratio <= 1)) {
    return invalid_argument("prefill_reused: recompute_ratio must be in [0, 1]");
  }
  for (int32_t id : span.tokens) {
    if (id < 0 || id >= c.n_vocab) {
      return invalid_argument(
          fmt::format("token id {} is outside the vocabulary [0, {})", id, c.n_vocab));
    }
  }
  const int32_t pos0 = kv.n_tokens(span.seq);
  const size_t kv_row = static_cast<size_t>(c.kv_dim());
  // 1. The reused rows, as they are, at every layer.
  KVF_RETURN_IF_ERROR(kv.begin_append(span.seq, pos0, span.tokens));
  for (int32_t l = 0; l < c.n_layers; ++l) {
    kv.store(span.seq, LayerId{l}, pos0, n_total, span.keys[static_cast<size_t>(l)],
             span.values[static_cast<size_t>(l)]);
  }
  kv.mark_approximate(span.seq, pos0);

  int32_t recomputed = 0;
  const int32_t b = options_.max_batch;
  for (int32_t start = 0; start < n_total; start += b) {
    const int32_t n = std::min(b, n_total - start);
    const int32_t first = pos0 + start;
    // 2. Layer 0 of every token: exact (its KV depends on the token alone,
    // the reused KV of earlier tokens at layer 0 is exact too).
    ForwardItem item;
    item.seq = span.seq;
    item.pos0 = first;
    item.tokens = span.tokens.subspan(static_cast<size_t>(start), static_cast<size_t>(n));
    item.which = LogitsFor::kNone;
    const int32_t row0[1] = {0};
    BatchRows rows;
    rows.items = std::span<const ForwardItem>(&item, 1);
    rows.row0 = row0;
    rows.n_rows = n;
    for (int32_t t = 0; t < n; ++t) {
      embed(item.tokens[static_cast<size_t>(t)], x_.data() + static_cast<size_t>(t) * c.n_embd);
      kernels::rope_cos_sin(first + t, inv_freq_.data(), c.rope_dim / 2,
                            cos_sin_.data() + static_cast<size_t>(t) * c.rope_dim);
    }
    const LayerWeights& l0 = weights_.layers[0];
    attention_block(l0, LayerId{0}, rows, kv);
    feed_forward_block(l0, n);

    // 3. Layer 1's KV of every token, exact (it depends on layer 0's output
    // only); how far the reused one is from it ranks the tokens.
    const LayerWeights& l1 = weights_.layers[1];
    project_qkv(l1, n);
    kv.store(span.seq, LayerId{1}, first, n, k_.data(), v_.data());
    std::vector<std::pair<double, int32_t>> deviation(static_cast<size_t>(n));
    const float* reused_k = span.keys[1] + static_cast<size_t>(start) * kv_row;
    const float* reused_v = span.values[1] + static_cast<size_t>(start) * kv_row;
    for (int32_t t = 0; t < n; ++t) {
      double diff = 0;
      double norm = 0;
      for (size_t e = 0; e < kv_row; ++e) {
        const size_t at = static_cast<size_t>(t) * kv_row + e;
        const double dk = double(k_[at]) - reused_k[at];
        const double dv = double(v_[at]) - reused_v[at];
        diff += dk * dk + dv * dv;
        norm += double(k_[at]) * k_[at] + double(v_[at]) * v_[at];
      }
      deviation[static_cast<size_t>(t)] = {norm > 0 ? diff / norm : diff, t};
    }
    // 4. The most deviating tokens through the later layers (ties: earlier).
    const auto k = static_cast<int32_t>(std::ceil(span.recompute_ratio * n));
    std::stable_sort(deviation.begin(), deviation.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<int32_t> chosen;
    for (int32_t i = 0; i < k; ++i) chosen.push_back(deviation[static_cast<size_t>(i)].second);
    std::sort(chosen.begin(), chosen.end());
    if (chosen.empty()) continue;
    positions_.clear();
    for (size_t i = 0; i < chosen.size(); ++i) {
      const int32_t t = chosen[i];
      // Rows move forward only (chosen is ascending), so in place is safe.
      std::copy_n(x_.data() + static_cast<size_t>(t) * c.n_embd, c.n_embd,
                  x_.data() + i * static_cast<size_t>(c.n_embd));
      std::copy_n(cos_sin_.data() + static_cast<size_t>(t) * c.rope_dim, c.rope_dim,
                  cos_sin_.data() + i * static_cast<size_t>(c.rope_dim));
      positions_.push_back(first + t);
    }
    for (int32_t l = 1; l < c.n_layers; ++l) {
      layer_at(weights_.layers[static_cast<size_t>(l)], LayerId{l}, span.seq, positions_, kv);
    }
    recomputed += static_cast<int32_t>(chosen.size());
  }
  return recomputed;
}

// gate_ = silu(gate_) * up_ over n rows (for_rows).
void Model::swiglu_rows(int32_t n) {
  const auto n_ff = static_cast<int64_t>(config_.n_ff);
  for_rows(n, n_ff, [&](int32_t begin, int32_t end) {
    const int64_t first = begin * n_ff;
    kernels::swiglu(gate_.data() + first, up_.data() + first, gate_.data() + first,
                    (end - begin) * n_ff);
  });
}

void Model::feed_forward_block(const LayerWeights& l, int32_t n) {
  norm_rows(l.ffn_norm, n);
  matmul_shared_input({{&l.w_gate, gate_.data()}, {&l.w_up, up_.data()}}, h_.data(), n);
  swiglu_rows(n);
  matmul(l.w_down, gate_.data(), n, h_.data());
  add_residual(n);
}

void Model::output_logits(int32_t first_row, int32_t n, float* logits) {
  const ModelConfig& c = config_;
  for (int32_t t = 0; t < n; ++t) {
    const size_t src = static_cast<size_t>(first_row + t) * c.n_embd;
    const size_t dst = static_cast<size_t>(t) * c.n_embd;
    kernels::rms_norm(x_.data() + src, weights_.output_norm, h_.data() + dst, c.n_embd, c.rms_eps);
  }
  matmul(weights_.output, h_.data(), n, logits);
}

}  // namespace kvforge
