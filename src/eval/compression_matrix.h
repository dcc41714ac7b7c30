// The compression matrix of `kvforge eval matrix`: every combination of a KV
// codec, a press and a budget, measured against the f32 cache with the
// decode protocol of eval/scored_logits.h, one row per combination.
//
// This header holds the grid (parsing the lists, expanding them) and the
// row; eval/matrix_report.h writes and reads rows, eval/fidelity_plot_svg.h
// draws them. Running the grid needs a model and caches (tools/).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"

namespace kvforge {

// One cell of the grid.
struct MatrixConfig {
  std::string codec;  // a --kv-codec spec
  std::string press;  // the --presses entry: "none", "snapkv", "snapkv:window=16", ...
  // The fraction kept (ratio=), 1 for "none"; NaN when the entry carries its
  // own budget (an entry with ratio= or tokens= is measured as given).
  double budget = 1;
  std::string press_spec;  // what --press gets: "" for none, else "snapkv:ratio=0.25", ...
};

// Comma-separated codec specs; a key/value pair "k=A,v=B" stays one entry
// (a "k=" entry followed by a "v=" entry, or the other way round, are joined).
// Entries are trimmed; an empty entry is kInvalidArgument.
[[nodiscard]] Result<std::vector<std::string>> split_codec_list(std::string_view list);
// Comma-separated entries, trimmed; `what` names the option in errors.
[[nodiscard]] Result<std::vector<std::string>> split_list(std::string_view list,
                                                          std::string_view what);
// Comma-separated fractions in (0, 1].
[[nodiscard]] Result<std::vector<double>> parse_budgets(std::string_view list);

// Codecs × (none, or each press at each budget), codec-major, in the order
// given. A press entry with its own ratio= or tokens= is one cell per codec.
// kInvalidArgument for empty lists, duplicates, or budgets given but no press
// that takes them. Press names are not checked here (the cache factory does).
[[nodiscard]] Result<std::vector<MatrixConfig>> expand_matrix(
    const std::vector<std::string>& codecs, const std::vector<std::string>& presses,
    const std::vector<double>& budgets);

// One measured cell.
struct MatrixRow {
  std::string model;  // file name
  std::string codec;
  std::string press;       // the --presses entry, "none" for none
  double budget = 1;       // as in MatrixConfig (NaN: the entry's own)
  std::string press_spec;  // "" for none
  std::string protocol = "decode";
  int32_t n_ctx = 0;
  int32_t windows = 0;
  int64_t tokens = 0;  // scored positions
  double mean_kl = 0;
  double mean_kl_stderr = 0;
  double median_kl = 0;
  double p99_kl = 0;
  double max_kl = 0;
  double top1_agreement = 0;  // fraction
  double ppl_reference = 0;
  double ppl_candidate = 0;
  // KV bytes per position held (KvCache::sequence_bytes / n_tokens), means
  // over the windows: the f32 reference's and the candidate's after the
  // context (the prompt, pressed), and the candidate's over the scored steps.
  double kv_bytes_per_token_reference = 0;
  double kv_bytes_per_token_context = 0;
  double kv_bytes_per_token_scored = 0;

  // The candidate's context bytes as a fraction of the reference's.
  [[nodiscard]] double kv_fraction() const;
  friend bool operator==(const MatrixRow&, const MatrixRow&);
};

}  // namespace kvforge
