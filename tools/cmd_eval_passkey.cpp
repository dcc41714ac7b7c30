// kvforge eval passkey: pass-key retrieval at several context lengths and
// depths, with the cache under test and with the f32 reference cache
// (eval/passkey.h): accuracy, and agreement with the reference's answer.
//
//   kvforge eval passkey -m MODEL --lengths 256,512,1024 --depths 0,25,50,75,100
//       --trials N [--kv-codec X] [--press P] [--svg FILE] [-o table|csv|json]
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "eval/compression_matrix.h"
#include "eval/heatmap_svg.h"
#include "eval/passkey.h"
#include "eval/passkey_filler.h"
#include "eval_common.h"

namespace kvforge::cli {
namespace {

struct PasskeyArgs {
  ModelArgs model;
  std::string lengths = "256,512,1024";
  std::string depths = "0,25,50,75,100";
  int32_t trials = 5;
  int32_t key_digits = 5;
  uint64_t seed = 1;
  std::string filler_file;  // "": the compiled-in excerpt
  std::string output = "table";
  std::string svg_file;
};

// Tokens the cache needs beyond the longest prompt: the answer (its digits,
// perhaps a space token before them) with room to spare.
int32_t passkey_answer_room(int32_t key_digits) {
  return 2 * key_digits + 8;
}

Result<std::vector<int32_t>> parse_passkey_lengths(const std::string& list) {
  KVF_ASSIGN_OR_RETURN(const std::vector<std::string> items, split_list(list, "--lengths"));
  std::vector<int32_t> out;
  for (const std::string& item : items) {
    size_t used = 0;
    long v = 0;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 1 || v > (1 << 20)) {
      return invalid_argument(
          fmt::format("--lengths: '{}' is not a prompt length in tokens (1 to 1048576)", item));
    }
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

Result<std::vector<double>> parse_passkey_depths(const std::string& list) {
  KVF_ASSIGN_OR_RETURN(const std::vector<std::string> items, split_list(list, "--depths"));
  std::vector<double> out;
  for (const std::string& item : items) {
    size_t used = 0;
    double v = -1;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || !(v >= 0 && v <= 100)) {
      return invalid_argument(
          fmt::format("--depths: '{}' is not a depth in percent of the filler (0 to 100)", item));
    }
    out.push_back(v);
  }
  return out;
}

std::string passkey_percent(double fraction) {
  return fmt::format("{:.0f} %", 100 * fraction);
}

std::string passkey_depth_label(double d) {
  return fmt::format("{:g} %", d);
}

void print_passkey_tables(const std::string& kv, const PasskeyOptions& o, const PasskeyResult& r) {
  const size_t n_depths = o.depths.size();
  auto header = [&] {
    std::printf("| depth \\ length |");
    for (int32_t l : o.lengths) std::printf(" %d |", l);
    std::printf("\n| --- |");
    for (size_t i = 0; i < o.lengths.size(); ++i) std::printf(" ---: |");
    std::printf("\n");
  };
  std::printf("Pass key retrieved with %s (with f32 in parentheses), %d trials per cell:\n\n",
              kv.c_str(), o.trials);
  header();
  for (size_t d = 0; d < n_depths; ++d) {
    std::printf("| %s |", passkey_depth_label(o.depths[d]).c_str());
    for (size_t l = 0; l < o.lengths.size(); ++l) {
      const PasskeyCell& c = r.cells[l * n_depths + d];
      std::printf(" %s (%s) |", passkey_percent(c.candidate_accuracy()).c_str(),
                  passkey_percent(c.reference_accuracy()).c_str());
    }
    std::printf("\n");
  }
  std::printf("\nSame answer tokens as the f32 cache:\n\n");
  header();
  for (size_t d = 0; d < n_depths; ++d) {
    std::printf("| %s |", passkey_depth_label(o.depths[d]).c_str());
    for (size_t l = 0; l < o.lengths.size(); ++l) {
      std::printf(" %s |", passkey_percent(r.cells[l * n_depths + d].agreement()).c_str());
    }
    std::printf("\n");
  }
}

void print_passkey_csv(const std::string& model, const std::string& kv, const PasskeyResult& r) {
  std::printf(
      "model,kv,length,depth,trials,reference_accuracy,candidate_accuracy,agreement,"
      "kv_bytes_per_token\n");
  for (const PasskeyCell& c : r.cells) {
    std::printf("%s,\"%s\",%d,%g,%d,%.9g,%.9g,%.9g,%.9g\n", model.c_str(), kv.c_str(), c.length,
                c.depth, c.trials, c.reference_accuracy(), c.candidate_accuracy(), c.agreement(),
                c.bytes_per_token());
  }
}

void print_passkey_json(const std::string& model, const std::string& kv, const PasskeyOptions& o,
                        const PasskeyResult& r) {
  nlohmann::ordered_json j;
  j["model"] = model;
  j["kv_reference"] = kEvalReferenceCodec;
  j["kv"] = kv;
  j["trials"] = o.trials;
  j["key_digits"] = o.key_digits;
  j["seed"] = o.seed;
  j["cells"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < r.cells.size(); ++i) {
    const PasskeyCell& c = r.cells[i];
    nlohmann::ordered_json cell;
    cell["length"] = c.length;
    cell["depth"] = c.depth;
    cell["trials"] = c.trials;
    cell["reference_accuracy"] = c.reference_accuracy();
    cell["candidate_accuracy"] = c.candidate_accuracy();
    cell["agreement"] = c.agreement();
    cell["kv_bytes_per_token"] = c.bytes_per_token();
    cell["first_answer_reference"] = r.first_answers[i].first;
    cell["first_answer_candidate"] = r.first_answers[i].second;
    j["cells"].push_back(std::move(cell));
  }
  j["kvforge_version"] = KVFORGE_VERSION;
  j["kvforge_commit"] = KVFORGE_GIT_COMMIT;
  std::printf("%s\n", j.dump(2).c_str());
}

Status write_passkey_heatmap(const std::string& path, const std::string& model,
                             const std::string& kv, const PasskeyOptions& o,
                             const PasskeyResult& r) {
  std::vector<HeatmapPanel> panels(2);
  panels[0].title = "pass key retrieved";
  panels[1].title = "same answer as f32";
  for (HeatmapPanel& p : panels) {
    for (double d : o.depths) p.row_labels.push_back(passkey_depth_label(d));
    for (int32_t l : o.lengths) p.column_labels.push_back(std::to_string(l));
  }
  const size_t n_depths = o.depths.size();
  for (size_t d = 0; d < n_depths; ++d) {
    for (size_t l = 0; l < o.lengths.size(); ++l) {
      const PasskeyCell& c = r.cells[l * n_depths + d];
      panels[0].values.push_back(c.candidate_accuracy());
      panels[1].values.push_back(c.agreement());
    }
  }
  const std::string svg = heatmap_svg(
      panels, fmt::format("{}, KV {}: pass key, {} trials per cell", model, kv, o.trials),
      "key depth", "prompt length (tokens)");
  std::ofstream out(path, std::ios::binary);
  out << svg;
  if (!out) return io_error(fmt::format("cannot write '{}'", path));
  return Status();
}

int eval_passkey(const PasskeyArgs& a) {
  PasskeyOptions o;
  auto lengths = parse_passkey_lengths(a.lengths);
  if (!lengths.ok()) return fail(lengths.status().message());
  auto depths = parse_passkey_depths(a.depths);
  if (!depths.ok()) return fail(depths.status().message());
  o.lengths = *lengths;
  o.depths = *depths;
  o.trials = a.trials;
  o.key_digits = a.key_digits;
  o.seed = a.seed;
  std::string filler_text(default_passkey_filler());
  if (!a.filler_file.empty()) {
    auto text = read_text_file(a.filler_file);
    if (!text.ok()) return fail(text.status().message());
    filler_text = std::move(text).value();
  }
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status().to_string());
  const Tokenizer& tok = *loaded->tokenizer;
  const std::vector<int32_t> filler = tok.encode(filler_text, false, false);
  if (filler.empty()) return fail("the filler text has no tokens");

  int32_t longest = 0;
  for (int32_t l : o.lengths) longest = std::max(longest, l);
  const int32_t needed = longest + passkey_answer_room(o.key_digits);
  if (a.model.n_ctx > 0 && a.model.n_ctx < needed) {
    return fail(
        fmt::format("-c {} is too small: the longest prompt ({} tokens) and its answer need {}",
                    a.model.n_ctx, longest, needed));
  }
  const int32_t n_ctx = std::max(needed, a.model.n_ctx);
  const int32_t trained = loaded->model->config().n_ctx_train;
  if (longest > trained) {
    std::fprintf(stderr, "warning: prompts of up to %d tokens, beyond the model's trained %d\n",
                 longest, trained);
  }
  auto reference = make_reference_eval_cache(*loaded->model, n_ctx);
  if (!reference.ok()) return fail(reference.status().message());
  auto candidate = make_eval_cache(*loaded->model, a.model, n_ctx);
  if (!candidate.ok()) return fail(candidate.status().message());

  const std::string model = std::filesystem::path(a.model.model_path).filename().string();
  const std::string kv = kv_label(a.model);
  std::fprintf(stderr, "pass key: %zu lengths x %zu depths x %d trials; KV %s against %s\n",
               o.lengths.size(), o.depths.size(), o.trials, kv.c_str(), kEvalReferenceCodec);
  ProgressBar bar;
  auto result =
      run_passkey(*loaded->model, tok, **reference, **candidate, filler, o,
                  [&](int32_t done, int32_t total) { bar.update(done, total, "cells", ""); });
  bar.finish();
  if (!result.ok()) return fail(result.status().message());
  if (!a.svg_file.empty()) {
    const Status written = write_passkey_heatmap(a.svg_file, model, kv, o, *result);
    if (!written.ok()) return fail(written.message());
  }
  if (a.output == "json") {
    print_passkey_json(model, kv, o, *result);
  } else if (a.output == "csv") {
    print_passkey_csv(model, kv, *result);
  } else {
    print_passkey_tables(kv, o, *result);
  }
  return 0;
}

}  // namespace

void add_eval_passkey(CLI::App& eval, const EvalChoice& chosen) {
  auto a = std::make_shared<PasskeyArgs>();
  CLI::App* pk = eval.add_subcommand(
      "passkey",
      "Pass-key retrieval by depth and length, and agreement with the f32 cache's answers");
  add_model_options(*pk, a->model);
  pk->add_option("--lengths", a->lengths, "Prompt lengths in tokens, comma-separated")
      ->capture_default_str();
  pk->add_option("--depths", a->depths, "Depths of the key in percent of the filler")
      ->capture_default_str();
  pk->add_option("--trials", a->trials, "Prompts per (length, depth), each with its own key")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  pk->add_option("--key-digits", a->key_digits, "Digits of the pass key")
      ->check(CLI::Range(1, 18))
      ->capture_default_str();
  pk->add_option("-s,--seed", a->seed, "Seed of the keys and filler offsets")
      ->capture_default_str();
  pk->add_option("--filler", a->filler_file,
                 "Filler text file (default: a TinyStories excerpt, data/README.md)");
  pk->add_option("-o,--output", a->output, "Output format: table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  pk->add_option("--svg", a->svg_file, "Also write the heatmaps (accuracy, agreement) to FILE");
  pk->callback([a, chosen] { *chosen = [a] { return eval_passkey(*a); }; });
}

}  // namespace kvforge::cli
