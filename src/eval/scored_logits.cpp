#include "eval/scored_logits.h"

#include <algorithm>

#include "eval/perplexity.h"
#include "model/model.h"

namespace kvforge {

const char* protocol_name(KlProtocol protocol) {
  return protocol == KlProtocol::kDecode ? "decode" : "prefill";
}

ScoredLogits::ScoredLogits(Model& model, KvCache& kv, KlProtocol protocol, int32_t n_ctx)
    : model_(model), kv_(kv), protocol_(protocol), n_ctx_(n_ctx), n_vocab_(model.config().n_vocab) {
  KVF_CHECK(n_ctx >= 4);
  const int32_t rows = protocol == KlProtocol::kPrefill ? kEvalChunkTokens : 1;
  logits_.resize(static_cast<size_t>(rows) * static_cast<size_t>(n_vocab_));
}

double ScoredLogits::bytes_per_position() const {
  const int32_t held = kv_.n_tokens(SeqId{0});
  return held > 0 ? static_cast<double>(kv_.sequence_bytes(SeqId{0})) / held : 0;
}

double ScoredLogits::scored_bytes_per_token() const {
  if (protocol_ == KlProtocol::kPrefill) return context_bytes_per_token_;
  return scored_steps_ > 0 ? scored_bytes_sum_ / scored_steps_ : 0;
}

Status ScoredLogits::start(std::span<const int32_t> window) {
  KVF_CHECK(static_cast<int32_t>(window.size()) == n_ctx_);
  window_ = window;
  next_pos_ = first_scored();
  computed_end_ = chunk_start_ = 0;
  scored_bytes_sum_ = 0;
  scored_steps_ = 0;
  context_bytes_per_token_ = 0;
  KVF_RETURN_IF_ERROR(kv_.truncate(SeqId{0}, 0));
  if (protocol_ == KlProtocol::kPrefill) return Status();
  // The prompt: positions [0, first_scored), compressed by the cache's press.
  const int32_t prompt_end = first_scored();
  kv_.begin_prompt(SeqId{0}, prompt_end);
  KVF_RETURN_IF_ERROR(model_.forward(window.first(static_cast<size_t>(prompt_end)), 0, kv_,
                                     SeqId{0}, LogitsFor::kNone, logits_.data()));
  KVF_RETURN_IF_ERROR(kv_.end_prompt(SeqId{0}));
  context_bytes_per_token_ = bytes_per_position();
  return Status();
}

Result<const float*> ScoredLogits::next() {
  const int32_t i = next_pos_;
  KVF_CHECK(i + 1 < n_ctx_);
  ++next_pos_;
  const auto row_floats = static_cast<size_t>(n_vocab_);
  if (protocol_ == KlProtocol::kDecode) {
    // Teacher-forced: the true token at position i, whatever the cache predicted.
    KVF_RETURN_IF_ERROR(model_.forward(window_.subspan(static_cast<size_t>(i), 1), i, kv_, SeqId{0},
                                       LogitsFor::kLastToken, logits_.data()));
    KVF_RETURN_IF_ERROR(kv_.end_decode_step(SeqId{0}));
    scored_bytes_sum_ += bytes_per_position();
    ++scored_steps_;
    return static_cast<const float*>(logits_.data());
  }
  // The same chunks as perplexity(): [0, 64), [64, 128), ... over the whole
  // window, with logits only for chunks that hold scored positions.
  while (computed_end_ <= i) {
    const int32_t start = computed_end_;
    const int32_t n = std::min(kEvalChunkTokens, n_ctx_ - start);
    const bool needs_logits = start + n > first_scored();
    KVF_RETURN_IF_ERROR(model_.forward(
        window_.subspan(static_cast<size_t>(start), static_cast<size_t>(n)), start, kv_, SeqId{0},
        needs_logits ? LogitsFor::kAllTokens : LogitsFor::kNone, logits_.data()));
    chunk_start_ = start;
    computed_end_ = start + n;
    context_bytes_per_token_ = bytes_per_position();
  }
  return static_cast<const float*>(logits_.data() +
                                   static_cast<size_t>(i - chunk_start_) * row_floats);
}

}  // namespace kvforge
