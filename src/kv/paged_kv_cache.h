// PagedKvCache: the KvCache of kvforge's storage, codec and sharing roles.
//
// KV lives in blocks of B tokens drawn from a BlockPool whose byte budget is
// fixed up front. One block holds, for every layer, a key tile and a value
// tile per KV head, each encoded by that layer's key or value codec
// (kv_codec.h), so layers may use different precisions. A sequence is a
// table of blocks; forked sequences share blocks copy-on-write, and full
// blocks of finished sequences stay in a prefix index (radix tree keyed by
// model, codec, salt and token chain) until the pool needs them back.
//
// Full-precision staging. A codec that quantizes across tokens (KIVI keys)
// can only encode a block once it is full, and KIVI keeps the newest R tokens
// in full precision. For such a side the cache keeps f32 rows of the recent
// positions next to the blocks, and the rule for which form a query reads is
// a function of positions only:
//
//   query at position i reads block j encoded  iff  (j + 1) * B + R <= i + 1
//
// (token-granular codecs without a window always read the encoded form).
// Because the form depends on positions, not on how a prompt was split into
// forward calls, prefill, decode and prefix reuse compute identical logits.
// With R > 0 a prefix hit of P tokens also needs the f32 rows of the blocks
// before P that are inside the window; they cannot be rebuilt from the
// encoded blocks, so a released sequence leaves its staged rows in a
// StagedWindowCache (staged_window_cache.h) and a hit is taken only up to a
// block boundary whose rows are there (in practice: the end of a released
// sequence, i.e. the next turn of a conversation).
//
// Selection (docs/kv-compression.md). With a selection policy, every block
// also keeps what the policy scores it by (Quest: the min and max of its
// keys per layer and KV head, in extra pool segments, so that shared and
// cached blocks carry them), and each decode step reads, per layer and KV
// head, only the blocks the policy ranks highest besides the sinks and the
// newest window.
//
// Thread-safety: none (one forward pass at a time).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kv/block_hash.h"
#include "kv/block_pool.h"
#include "kv/kv_cache.h"
#include "kv/kv_codec.h"
#include "kv/kv_codec_plan.h"
#include "kv/paged_attention.h"
#include "kv/prefix_index.h"
#include "kv/press/kv_press.h"
#include "kv/retained_page_store.h"
#include "kv/selection/kv_selection.h"
#include "kv/staged_window_cache.h"

namespace kvforge {

struct RetainedRows;

struct PagedKvCacheOptions {
  std::vector<LayerCodecSpec> layer_codecs;  // one per layer
  int32_t block_tokens = 16;
  size_t memory_bytes = 0;  // the block pool's budget; 0: see default_budget_fraction
  // With memory_bytes 0: the budget is n_seq full contexts (what the sequences
  // can use), grown toward this fraction of the machine's available memory to
  // leave room for cached prefixes, but to at most kMaxDefaultBudgetContexts
  // times the contexts' need. 0 keeps exactly the contexts' need.
  double default_budget_fraction = 0;
  static constexpr size_t kMaxDefaultBudgetContexts = 16;
  int32_t n_ctx = 0;  // most positions one sequence may hold
  int32_t n_seq = 1;  // sequence slots: SeqId 0 .. n_seq - 1
  uint64_t model_fingerprint = 0;
  std::string cache_salt;  // sequences with different salts never share blocks
  bool prefix_sharing = true;
  // Codecs with a full-precision window (R > 0): memory for the f32 rows kept
  // from released sequences so that prefix hits stay exact. 0: room for
  // max(n_seq, kDefaultStagedWindows) windows of the largest size.
  size_t staged_window_bytes = 0;
  static constexpr int32_t kDefaultStagedWindows = 4;
  // Retention: one press per layer (plan_kv_presses), or empty for none.
  std::vector<std::shared_ptr<const KvPress>> layer_presses;
  // Selection (plan_kv_selection), or null for none. Not with a press that
  // captures decode queries' attention (h2o): create() refuses it.
  std::shared_ptr<const KvSelection> selection;
};

class PagedKvCache final : public KvCache {
 public:
  [[nodiscard]] static Result<std::unique_ptr<PagedKvCache>> create(
      const KvShape& shape, const PagedKvCacheOptions& options);
  ~PagedKvCache() override;

  // KvCache
  [[nodiscard]] const KvShape& shape() const override { return shape_; }
  [[nodiscard]] Status begin_append(SeqId seq, int32_t pos0,
                                    std::span<const int32_t> tokens) override;
  void store(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens, const float* k,
             const float* v) override;
  void attend(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens, const float* q, float scale,
              float* out, ThreadPool& pool) override;
  [[nodiscard]] int32_t n_tokens(SeqId seq) const override;
  [[nodiscard]] Status truncate(SeqId seq, int32_t n_tokens) override;
  [[nodiscard]] int32_t reuse_prefix(SeqId seq, std::span<const int32_t> prompt) override;
  void release(SeqId seq) override;
  void begin_prompt(SeqId seq, int32_t prompt_end) override;
  [[nodiscard]] Status end_prompt(SeqId seq) override;
  [[nodiscard]] Status end_decode_step(SeqId seq) override;
  [[nodiscard]] size_t sequence_bytes(SeqId seq) const override;
  [[nodiscard]] int64_t free_capacity_tokens() const override;
  // Relay (paged_kv_cache_relay.cpp).
  [[nodiscard]] bool can_rewrite_rows() const override;
  void store_at(SeqId seq, LayerId layer, std::span<const int32_t> positions, const float* k,
                const float* v) override;
  void attend_at(SeqId seq, LayerId layer, std::span<const int32_t> positions, const float* q,
                 float scale, float* out, ThreadPool& pool) override;
  [[nodiscard]] bool export_rows(SeqId seq, LayerId layer, int32_t first, int32_t n, float* k,
                                 float* v) const override;
  void mark_approximate(SeqId seq, int32_t pos) override;
  void set_next_use(SeqId seq, int32_t steps) override;
  void advance_workflow_clock() override;
  // Tiering (paged_kv_cache_tier.cpp).
  void set_record_sink(RecordSink sink, bool on_cache, bool on_evict) override;
  [[nodiscard]] TierLookup tier_lookup(std::string_view salt,
                                       std::span<const int32_t> prompt) const override;
  [[nodiscard]] TierImport import_records(std::string_view salt, std::span<const int32_t> prompt,
                                          int32_t first_block, std::span<const TierRecord> blocks,
                                          std::span<const TierRecord> windows) override;
  [[nodiscard]] CacheStats cache_stats() const override;
  [[nodiscard]] size_t bytes_per_token() const override;
  [[nodiscard]] size_t bytes_used() const override;
  [[nodiscard]] std::string describe() const override;

  // This empty sequence's own presses (a --press spec for every layer; ""
  // returns it to the cache's plan), e.g. a request's. kInvalidArgument for a
  // bad spec or a sequence that holds tokens. Reset by release().
  [[nodiscard]] Status set_press(SeqId seq, std::string_view spec) override;
  // Presses the sequence now (prompt compression), whatever the schedule;
  // what end_prompt does. OK and nothing changes when no layer has a press or
  // no press would drop a row.
  [[nodiscard]] Status press(SeqId seq);
  // The first position whose KV the block part holds (0 until pressed), and
  // the rows one (layer, KV head) holds: retained + demoted + block part.
  [[nodiscard]] int32_t compressed_end(SeqId seq) const;
  [[nodiscard]] int32_t rows_held(SeqId seq, LayerId layer, int32_t kv_head) const;
  // Positions of the retained rows of one (layer, KV head), ascending.
  [[nodiscard]] std::span<const int32_t> retained_positions(SeqId seq, LayerId layer,
                                                            int32_t kv_head) const;
  // Every row one (layer, KV head) holds, as the attention reads it
  // (decoded, rotated back; staged rows in f32): retained, demoted, then the
  // block part's positions, with their positions. keys/values get
  // [rows][head_dim]. For tests and inspection; allocates.
  void read_rows(SeqId seq, LayerId layer, int32_t kv_head, std::vector<int32_t>& positions,
                 std::vector<float>& keys, std::vector<float>& values) const;
  // The press plan's name ("none", or per layer runs like the codec plan).
  [[nodiscard]] const std::string& press_plan() const { return press_plan_name_; }

  // Selection: the policy's spec ("none" without one); the absolute block
  // indices the last attend() of `layer` read for `kv_head` (empty when it
  // read every block: prefill, a budget that covers every candidate, or no
  // selection); and the key bounds stored with block `block` (absolute
  // index) of a sequence, as f32 (false without key bounds or for a pressed
  // block). For tests and inspection.
  [[nodiscard]] std::string selection_plan() const;
  [[nodiscard]] std::span<const int32_t> selected_blocks(LayerId layer, int32_t kv_head) const;
  [[nodiscard]] bool key_bounds(SeqId seq, LayerId layer, int32_t kv_head, int32_t block,
                                std::vector<float>& lo, std::vector<float>& hi) const;

  // Tenant isolation: an empty sequence with a salt only shares blocks with
  // sequences of the same salt (the cache-wide salt of the options otherwise).
  [[nodiscard]] Status set_salt(SeqId seq, std::string_view salt) override;

  // dst becomes a copy of src sharing all its blocks (copy-on-write). dst must be empty.
  [[nodiscard]] Status fork(SeqId src, SeqId dst);

  // The token ids a sequence holds, position by position.
  [[nodiscard]] std::span<const int32_t> tokens(SeqId seq) const;

  // Save/restore of one sequence's KV in a self-checking file (the format is
  // described at the top of paged_kv_cache_snapshot.cpp and in
  // docs/kv-cache.md, "Save and restore"). restore needs an empty sequence;
  // it refuses files of another model, codec plan or shape, and corrupt files.
  [[nodiscard]] Status save(SeqId seq, const std::string& path) const;
  [[nodiscard]] Status restore(SeqId seq, const std::string& path);

  [[nodiscard]] const BlockPool& pool() const { return *pool_; }
  [[nodiscard]] PrefixCacheStats prefix_stats() const;
  // Windows kept for exact prefix hits under a residual window; null without one.
  [[nodiscard]] const StagedWindowCache* staged_windows() const { return windows_.get(); }
  [[nodiscard]] bool prefix_sharing_enabled() const { return index_ != nullptr; }
  [[nodiscard]] int32_t block_tokens() const { return block_tokens_; }
  // The codec plan as one string ("0-15:k=int8/v=int8"), part of every cache key.
  [[nodiscard]] const std::string& codec_plan() const { return plan_name_; }
  [[nodiscard]] const KvCodec& key_codec(LayerId layer) const;
  [[nodiscard]] const KvCodec& value_codec(LayerId layer) const;

  // Aborts (KVF_CHECK) on any inconsistency between sequences, pool and index.
  void check_invariants() const;

 private:
  struct LayerCodecs;
  struct Sequence;
  PagedKvCache() = default;

  [[nodiscard]] Status check_sequence(SeqId seq) const;  // kInvalidArgument for unknown ids
  [[nodiscard]] Sequence& sequence(SeqId seq);
  [[nodiscard]] const Sequence& sequence(SeqId seq) const;
  [[nodiscard]] Status make_room(int32_t n_blocks);
  [[nodiscard]] Status ensure_writable_tail(Sequence& s);
  void trim_staging(Sequence& s, int32_t next_query_pos);
  void size_staged_rows(Sequence& s) const;
  // The first staged position a query at `pos` (the first after a hit of pos
  // tokens) may read in f32.
  [[nodiscard]] int32_t hit_staging_start(int32_t pos) const { return staging_start_for(pos, pos); }
  void keep_staged_window(const Sequence& s, std::span<const BlockHash> chain_hashes);
  // Offers the sequence's first n_blocks full blocks to the prefix index,
  // keeps its staged window, and sends what newly entered the index to the
  // record sink.
  void offer_full_blocks(const Sequence& s, int32_t n_blocks);
  // Tiering (paged_kv_cache_tier.cpp).
  [[nodiscard]] TierRecord encode_block(BlockId block, const BlockHash& chain_hash,
                                        const BlockHash& parent, const CacheNamespace& ns,
                                        int32_t index, std::span<const int32_t> tokens) const;
  [[nodiscard]] TierRecord encode_window(const Sequence& s, int32_t end,
                                         const BlockHash& chain_end) const;
  // Verifies the record of block `block` (its tokens, parent and expected
  // chain hash given) and appends a pool block holding it to chain.
  [[nodiscard]] Status load_block(const CacheNamespace& ns, std::span<const int32_t> tokens,
                                  int32_t block, const BlockHash& parent, const BlockHash& key,
                                  const TierRecord& record, std::vector<BlockId>& chain);
  [[nodiscard]] Status load_window(const CacheNamespace& ns, std::span<const int32_t> prompt,
                                   std::span<const BlockHash> chain_hashes,
                                   const TierRecord& record);
  [[nodiscard]] CacheNamespace namespace_for(std::string_view salt) const;
  [[nodiscard]] uint64_t block_layout_fingerprint() const;
  void load_staged_window(Sequence& s, const StagedWindow& window);
  [[nodiscard]] PagedSide paged_side(const Sequence& s, LayerId layer, bool value_side) const;
  [[nodiscard]] int32_t staging_start_for(int32_t n_held, int32_t next_query_pos) const;
  // The largest residual window R among the staged sides (0 if none).
  [[nodiscard]] int32_t staging_start_residual() const;
  void encode_full_blocks(Sequence& s, LayerId layer, int32_t first_pos, int32_t end_pos);
  // The pool segment holding one layer's keys or values of one KV head.
  [[nodiscard]] int32_t segment(LayerId layer, bool value_side, int32_t kv_head) const;
  [[nodiscard]] uint8_t* tile(BlockId block, LayerId layer, bool value_side, int32_t kv_head);
  // Retention (paged_kv_cache_press.cpp).
  struct StagedRows;
  struct DemotionCodecs;
  [[nodiscard]] const KvPress* press_of(const Sequence& s, size_t layer) const;
  [[nodiscard]] const DemotionCodecs* demotion_of(const Sequence& s, size_t layer) const;
  [[nodiscard]] bool has_presses(const Sequence& s) const;
  [[nodiscard]] Status add_demotion_codecs(const KvPress& press);
  // Per layer runs of one sequence's presses and of its demoted rows'
  // codecs, "none" without any (snapshots).
  [[nodiscard]] std::string press_plan_of(const Sequence& s) const;
  [[nodiscard]] std::string demotion_plan(const Sequence& s) const;
  // kInvalidArgument for a press that cannot work with query-aware selection
  // (one that scores every decode query over every row); OK for null.
  [[nodiscard]] static Status check_press_with_selection(const KvPress* press,
                                                         const KvSelection& selection);
  [[nodiscard]] Status run_press(Sequence& s);
  void press_layer(const Sequence& s, LayerId layer, int32_t boundary,
                   std::vector<StagedRows>& retained, std::vector<StagedRows>& demoted) const;
  [[nodiscard]] int32_t blocks_for_pages(const std::map<size_t, int64_t>& pages_by_size) const;
  [[nodiscard]] Status write_pages(const StagedRows& from, RetainedRows& to);
  void release_retained_pages(Sequence& s);
  void release_retained(Sequence& s);
  void size_attention(Sequence& s) const;
  void forget_older_queries(Sequence& s) const;
  void add_captured(Sequence& s, LayerId layer, int32_t pos0, int32_t n_tokens, const float* q,
                    int32_t n_rows);
  [[nodiscard]] Status make_room_for_pages();
  // Selection (paged_kv_cache_select.cpp).
  [[nodiscard]] int32_t bounds_segment(LayerId layer, int32_t kv_head) const;
  void update_key_bounds(const Sequence& s, LayerId layer, int32_t block);
  // Chooses the blocks each KV head reads for the single query at pos0 and
  // points the kernel's head_blocks at them; false when every block is read.
  [[nodiscard]] bool select_blocks(Sequence& s, LayerId layer, int32_t pos0, const float* q,
                                   ThreadPool& pool, PagedAttentionArgs& a);
  void forget_selection(Sequence& s) const;
  KvShape shape_;
  int32_t block_tokens_ = 16;
  int32_t n_ctx_ = 0;
  std::vector<LayerCodecs> layers_;
  std::string plan_name_;
  bool needs_staging_ = false;  // some side of some layer stages rows
  uint64_t model_fingerprint_ = 0;
  std::string plan_key_;  // codec plan and block size, part of every cache namespace
  std::string default_salt_;
  uint64_t layout_fingerprint_ = 0;  // block records' layout (kv/block_record.h)
  RecordSink record_sink_;           // null, or called for cached blocks (on_cache)
  RecordSink window_sink_;           // null, or called for kept staged windows (any sink)
  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<PrefixIndex> index_;          // null when prefix sharing is off
  std::unique_ptr<StagedWindowCache> windows_;  // with an index and some R > 0
  std::vector<Sequence> sequences_;
  std::vector<const uint8_t*> segment_arenas_;  // tile of block 0 of every segment
  std::vector<int32_t> block_ids_;              // attend() scratch
  // Retention: pages of retained rows (null without presses), the kernel's
  // per-head page tables and bias pointers, and the capture buffers.
  std::unique_ptr<RetainedPageStore> pages_;
  std::vector<std::shared_ptr<const KvPress>> default_presses_;  // per layer
  std::map<std::string, std::unique_ptr<DemotionCodecs>> demotion_codecs_;
  std::string press_plan_name_ = "none";
  std::vector<const uint8_t* const*> page_tables_;  // attend() scratch: [span][side][head]
  std::vector<int32_t> page_rows_;                  // [span][head]
  std::vector<const float*> page_bias_;             // [span][head]
  std::vector<std::vector<float>> capture_sums_;    // per thread: [n_kv_heads][n_ctx]
  std::vector<std::vector<float>> capture_rows_;    // per thread: [kPagedMaxGroup][n_ctx]
  std::vector<float*> capture_sum_ptrs_;
  std::vector<float*> capture_row_ptrs_;
  // Selection: the policy (null without), its key bounds' first pool segment
  // and bytes per block, and attend() scratch sized at creation: decoded key
  // rows of one tile and a box, per KV head scores and order over the
  // candidates, and per (layer, KV head) the blocks read last.
  std::shared_ptr<const KvSelection> selection_;
  int32_t first_bounds_segment_ = 0;
  size_t bounds_bytes_ = 0;
  int32_t max_blocks_ = 0;
  int32_t max_read_ = 0;                     // blocks one head reads at most in a selecting step
  std::vector<float> bounds_rows_;           // [block_tokens][head_dim], then lo, hi
  std::vector<float> select_scores_;         // [n_kv_heads][max_blocks_]
  std::vector<int32_t> select_order_;        // [n_kv_heads][max_blocks_]
  std::vector<int32_t> select_lists_;        // [n_layers][n_kv_heads][max_read_]
  std::vector<int32_t> select_counts_;       // [n_layers][n_kv_heads]; 0: read every block
  std::vector<const int32_t*> select_ptrs_;  // [n_layers][n_kv_heads]
};

}  // namespace kvforge
