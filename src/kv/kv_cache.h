// KvCache: the seam between the model's forward pass and KV storage.
//
// The model computes keys and values for new tokens and hands them to the
// cache (store), then asks the cache to compute attention for the new
// queries (attend). The model never sees how KV is laid out, encoded or
// shared; a paged, quantized or evicting cache implements the same interface.
//
// Positions: a sequence's tokens occupy positions 0, 1, 2, ... A forward
// call covers positions [pos0, pos0 + n_tokens); query i attends causally to
// every cached position <= pos0 + i of the same sequence.
//
// Shapes (f32, row-major):
//   k, v:   [n_tokens, n_kv_heads, head_dim]   (keys already rotated by RoPE)
//   q, out: [n_tokens, n_heads, head_dim]
//
// Thread-safety: none; one forward pass at a time. attend() may use the pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kv/ids.h"
#include "kvforge/generation.h"
#include "kvforge/status.h"
#include "tier/kv_tier.h"

namespace kvforge {

class ThreadPool;

// Tiering: what a prompt could load from the tiers below the pool.
struct TierLookup {
  int32_t cached_blocks = 0;  // full blocks of the prompt the prefix cache holds now
  // The chain hashes of the full blocks after them, in order: each names the
  // block's record (TierRecordKind::kBlock) and, with windows, the record of
  // the staged window a hit ending after that block reads (kStagedWindow).
  std::vector<BlockHash> blocks;
  bool windows = false;            // the cache has a residual window (KIVI r > 0)
  int64_t block_record_bytes = 0;  // the size of one block record
  int32_t block_tokens = 0;
};

struct TierImport {
  int32_t blocks = 0;       // blocks loaded into the prefix cache
  int32_t windows = 0;      // staged windows loaded
  int32_t refused = 0;      // records that failed verification (treated as misses)
  std::string first_error;  // why the first refused record was refused
};

struct KvShape {
  int32_t n_layers = 0;
  int32_t n_heads = 0;     // query heads
  int32_t n_kv_heads = 0;  // key/value heads (GQA: n_heads % n_kv_heads == 0)
  int32_t head_dim = 0;
};

class KvCache {
 public:
  virtual ~KvCache() = default;

  [[nodiscard]] virtual const KvShape& shape() const = 0;

  // Makes room for positions [pos0, pos0 + tokens.size()) of `seq`, which hold
  // these token ids (caches that share blocks key them by token). pos0 must
  // equal the number of tokens the sequence holds (append-only; use truncate
  // to go back). Fails with kOutOfRange if the context is full and with
  // kResourceExhausted if the cache's memory is; nothing changes then.
  [[nodiscard]] virtual Status begin_append(SeqId seq, int32_t pos0,
                                            std::span<const int32_t> tokens) = 0;

  // Stores k/v of the tokens announced by the last begin_append, for one layer.
  virtual void store(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens, const float* k,
                     const float* v) = 0;

  // out[i] = softmax(q[i] K^T * scale) V over positions <= pos0 + i.
  virtual void attend(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens, const float* q,
                      float scale, float* out, ThreadPool& pool) = 0;

  // Number of positions the sequence holds.
  [[nodiscard]] virtual int32_t n_tokens(SeqId seq) const = 0;
  // Drops positions >= n_tokens (rollback). Truncating to 0 always succeeds; a
  // cache that no longer holds what rolling back needs (a codec's full-
  // precision window) fails with kUnsupported and changes nothing.
  [[nodiscard]] virtual Status truncate(SeqId seq, int32_t n_tokens) = 0;

  // Before a prompt is prefilled into an empty sequence: takes over the KV of
  // the longest prefix of `prompt` that the cache already holds (a prefix
  // cache) and returns its length in tokens; the caller then prefills only
  // prompt[returned, end). At least one token is always left to compute.
  [[nodiscard]] virtual int32_t reuse_prefix(SeqId /*seq*/, std::span<const int32_t> /*prompt*/) {
    return 0;
  }
  // Tenant isolation: an empty sequence with a salt shares cached KV only
  // with sequences of the same salt. Caches without sharing accept only "".
  [[nodiscard]] virtual Status set_salt(SeqId /*seq*/, std::string_view salt) {
    return salt.empty() ? Status() : unsupported("this KV cache does not share KV (no salt)");
  }
  // The sequence is finished: its KV may be kept for reuse (prefix cache),
  // and the sequence is empty afterwards.
  virtual void release(SeqId seq) { (void)truncate(seq, 0); }

  // Retention (docs/kv-compression.md). A cache with presses captures the
  // attention they need and compresses the sequence at these points; the
  // others ignore them. begin_prompt: the next forward calls prefill the
  // sequence up to position prompt_end (exclusive). end_prompt: the prefill
  // is done (prompt compression). end_decode_step: one decode step is done
  // (decode-time presses). A failed press leaves the sequence as it was.
  virtual void begin_prompt(SeqId /*seq*/, int32_t /*prompt_end*/) {}
  // An empty sequence's own retention press (a --press spec), e.g. a
  // request's; "" keeps the cache's. Caches without presses accept only "".
  [[nodiscard]] virtual Status set_press(SeqId /*seq*/, std::string_view spec) {
    return spec.empty() ? Status() : unsupported("this KV cache does not press sequences");
  }
  [[nodiscard]] virtual Status end_prompt(SeqId /*seq*/) { return Status(); }
  [[nodiscard]] virtual Status end_decode_step(SeqId /*seq*/) { return Status(); }
  // Bytes the sequence's KV occupies now: its blocks (shared ones in full),
  // pages and full-precision rows.
  [[nodiscard]] virtual size_t sequence_bytes(SeqId /*seq*/) const { return 0; }

  // Reuse with selective recomputation (relay, docs/relay.md). A cache that
  // can rewrite rows in place (can_rewrite_rows) gives positions it already
  // holds new keys and values (store_at, k/v: [positions][n_kv_heads][head_dim])
  // and lets queries at scattered positions attend causally (attend_at,
  // ascending positions, q/out: [positions][n_heads][head_dim]); the others
  // must not be asked.
  [[nodiscard]] virtual bool can_rewrite_rows() const { return false; }
  virtual void store_at(SeqId /*seq*/, LayerId /*layer*/, std::span<const int32_t> /*positions*/,
                        const float* /*k*/, const float* /*v*/) {
    KVF_CHECK(false);
  }
  virtual void attend_at(SeqId /*seq*/, LayerId /*layer*/, std::span<const int32_t> /*positions*/,
                         const float* /*q*/, float /*scale*/, float* /*out*/,
                         ThreadPool& /*pool*/) {
    KVF_CHECK(false);
  }
  // Keys and values of positions [first, first + n) of one layer as the
  // cache reads them (decoded; keys still rotated for their positions),
  // [n][n_kv_heads][head_dim] each. False when the cache does not hold them
  // as rows (pressed away, or not supported).
  [[nodiscard]] virtual bool export_rows(SeqId /*seq*/, LayerId /*layer*/, int32_t /*first*/,
                                         int32_t /*n*/, float* /*k*/, float* /*v*/) const {
    return false;
  }
  // Positions >= pos hold approximate KV (reused, not all recomputed): no
  // block at or past it is ever offered to a prefix cache. Reset when the
  // sequence is truncated below pos or released.
  virtual void mark_approximate(SeqId /*seq*/, int32_t /*pos*/) {}

  // Workflow-aware eviction (KVFlow, docs/relay.md): the sequence's agent
  // runs again after `steps` workflow steps (-1: unknown), so the blocks it
  // leaves to the prefix cache are kept over unhinted ones until then; one
  // call of advance_workflow_clock() per finished workflow request. Reset by
  // release().
  virtual void set_next_use(SeqId /*seq*/, int32_t /*steps*/) {}
  virtual void advance_workflow_clock() {}

  // Tiering (docs/tiers.md). With a sink, a cache with a prefix cache
  // encodes blocks as self-verifying records (kv/block_record.h) and hands
  // them to the sink on the caller's thread: with on_cache, every block
  // that newly enters the prefix cache (from release() and prompt presses);
  // with on_evict, every block the prefix cache evicts, just before its
  // memory is reused; with either, under a residual window, the
  // full-precision rows a hit ending at a kept block boundary reads. Null:
  // none.
  enum class RecordEvent { kCached, kEvicted };
  using RecordSink = std::function<void(RecordEvent, const TierKey&, TierRecord)>;
  virtual void set_record_sink(RecordSink /*sink*/, bool /*on_cache*/, bool /*on_evict*/) {}
  // The records that could extend the prefix cache's hit for this prompt
  // under this salt (the salt a sequence would get from set_salt).
  [[nodiscard]] virtual TierLookup tier_lookup(std::string_view /*salt*/,
                                               std::span<const int32_t> /*prompt*/) const {
    return {};
  }
  // Loads fetched records into the prefix cache, where reuse_prefix() then
  // finds them: blocks[i] (null: not fetched) is the record of block
  // first_block + i of the prompt, windows[i] the window record for a hit
  // ending after it. Every record is verified against the prompt, salt and
  // this cache's layout; only the run of good blocks that continues the
  // cached chain is loaded, and a refused record counts as a miss.
  [[nodiscard]] virtual TierImport import_records(std::string_view /*salt*/,
                                                  std::span<const int32_t> /*prompt*/,
                                                  int32_t /*first_block*/,
                                                  std::span<const TierRecord> /*blocks*/,
                                                  std::span<const TierRecord> /*windows*/) {
    return {};
  }

  // Positions the cache could still take, over all sequences, without
  // preempting anyone: free memory plus what the prefix cache could evict,
  // in tokens. Schedulers admit requests by it. INT64_MAX when unbounded.
  [[nodiscard]] virtual int64_t free_capacity_tokens() const { return INT64_MAX; }

  // Blocks, bytes and prefix-cache counters now (zeros where not applicable).
  [[nodiscard]] virtual CacheStats cache_stats() const { return {}; }

  // Bytes one token occupies across all layers, and bytes in use now.
  [[nodiscard]] virtual size_t bytes_per_token() const = 0;
  [[nodiscard]] virtual size_t bytes_used() const = 0;
  [[nodiscard]] virtual std::string describe() const = 0;
};

}  // namespace kvforge
