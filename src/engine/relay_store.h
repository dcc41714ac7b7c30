// RelayStore: the generated outputs of multi-agent workflows with the keys and
// values their decode steps computed, so that a later prompt of the same
// workflow that quotes an output reuses that KV instead of prefilling it
// again (relay, docs/relay.md).
//
// An output is stored as its token ids, the position its first token was
// computed at, and per layer its keys (RoPE-rotated for those positions) and
// values as IEEE half floats. A prompt is searched for runs of at least
// min_tokens tokens equal to a run of some output of the same workflow,
// anywhere in the prompt (the quoting agent may re-tokenize the text a little
// differently, so runs of an output are matched, not only the whole of it).
//
// Memory is bounded by max_bytes. Eviction is workflow-aware (KVFlow): an
// output whose producer said when it will be needed again (next_use_steps,
// counted in finished workflow requests) is kept over outputs without such a
// hint; among hinted ones the one needed furthest in the future goes first,
// ties and unhinted ones least recently used first.
//
// Thread-safety: none; the scheduler thread owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kvforge {

struct RelayStoreOptions {
  size_t max_bytes = size_t{256} << 20;
  int32_t min_tokens = 16;  // shortest run worth reusing (and the match window)
};

struct RelayStoreStats {
  int64_t outputs = 0;  // stored now
  int64_t bytes = 0;    // stored now
  int64_t stored = 0;   // outputs ever added
  int64_t evicted = 0;  // outputs evicted for room
  int64_t lookups = 0;  // prompts searched
  int64_t matches = 0;  // runs found
  int64_t matched_tokens = 0;
};

class RelayStore {
 public:
  RelayStore(int32_t n_layers, int32_t kv_dim, const RelayStoreOptions& options);

  // An output of `workflow`: tokens computed at positions [pos0, pos0 + n),
  // keys and values [layer][n][kv_dim] as half floats. Outputs shorter than
  // min_tokens or larger than max_bytes are not kept (false).
  // next_use_steps < 0: unknown.
  bool add(std::string_view workflow, std::string_view agent, int32_t pos0,
           std::vector<int32_t> tokens, std::vector<uint16_t> keys, std::vector<uint16_t> values,
           int32_t next_use_steps);

  // A run of prompt tokens [prompt_begin, prompt_begin + length) equal to
  // output tokens [output_begin, output_begin + length).
  struct Match {
    int32_t prompt_begin = 0;
    int32_t length = 0;
    uint64_t output = 0;  // the output's id
    int32_t output_begin = 0;
  };
  // Non-overlapping runs of prompt[begin, end) of at least min_tokens, left
  // to right, each the longest available where it starts. Marks the outputs
  // used.
  [[nodiscard]] std::vector<Match> find(std::string_view workflow, std::span<const int32_t> prompt,
                                        int32_t begin, int32_t end);

  // The match's keys and values of one layer as floats, keys still rotated
  // for the positions they were computed at: k, v [length][kv_dim]. Returns
  // the position the match's first token was computed at, or -1 if the
  // output was evicted since find().
  int32_t load(const Match& m, int32_t layer, float* k, float* v) const;

  // One finished request of the workflow machinery: the clock next-use hints
  // count in.
  void tick() { ++clock_; }

  [[nodiscard]] RelayStoreStats stats() const { return stats_; }
  [[nodiscard]] const RelayStoreOptions& options() const { return options_; }

 private:
  struct Output {
    uint64_t id = 0;
    std::string workflow;
    std::string agent;
    int32_t pos0 = 0;
    std::vector<int32_t> tokens;
    std::vector<uint16_t> keys, values;  // [layer][n][kv_dim]
    int64_t due = -1;                    // clock value of the next use; -1 unknown
    int64_t last_used = 0;
    [[nodiscard]] size_t bytes() const;
  };
  // Where a window of min_tokens tokens starts in an output.
  struct WindowAt {
    uint64_t output = 0;
    int32_t offset = 0;
  };

  [[nodiscard]] uint64_t window_key(std::string_view workflow, const int32_t* tokens) const;
  void index(const Output& o, bool insert);
  void evict_one();
  const Output* output(uint64_t id) const;

  int32_t n_layers_ = 0;
  int32_t kv_dim_ = 0;
  RelayStoreOptions options_;
  std::unordered_map<uint64_t, Output> outputs_;
  std::unordered_multimap<uint64_t, WindowAt> windows_;
  uint64_t next_id_ = 1;
  int64_t clock_ = 0;
  int64_t use_counter_ = 0;
  RelayStoreStats stats_;
};

}  // namespace kvforge
