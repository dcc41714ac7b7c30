// kvforge eval matrix: a grid of KV codec x press x budget on one model and
// text, each cell measured against the f32 cache with the decode protocol
// (eval/scored_logits.h), written as Markdown, CSV, JSON and an SVG plot of
// fidelity against KV bytes per token (eval/compression_matrix.h).
//
//   kvforge eval matrix -m MODEL -f TEXT --codecs f16,int8,int4
//       --presses none,snapkv,h2o,streaming --budgets 0.5,0.25,0.125 -o DIR
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "command.h"
#include "common.h"
#include "eval/compression_matrix.h"
#include "eval/fidelity_plot_svg.h"
#include "eval/kl_divergence.h"
#include "eval/matrix_report.h"
#include "eval_common.h"
#include "kv/press/kv_press.h"

namespace kvforge::cli {
namespace {

// The recorded reference logits may take at most this much memory.
constexpr size_t kMaxReferenceBytes = size_t{4} << 30;

struct MatrixArgs {
  ModelArgs model;  // --kv-block, --kv-mem, --press-layers, ... apply to every cell
  std::string text_file;
  int32_t max_windows = 8;
  std::string codecs = "f16,int8,int4";
  std::string presses;  // "": none and every registered press
  std::string budgets = "0.5,0.25,0.125";
  std::string out_dir;
  CLI::App* app = nullptr;
};

std::string default_presses() {
  std::string list = "none";
  for (const std::string& name : kv_press_names()) list += "," + name;
  return list;
}

Status write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) return io_error(fmt::format("cannot write '{}'", path.string()));
  return Status();
}

// The options of one cell: the command line's, with the cell's codec and press.
ModelArgs cell_args(const ModelArgs& base, const MatrixConfig& c) {
  ModelArgs a = base;
  a.kv_codec = c.codec;
  a.press = c.press_spec;
  return a;
}

std::string cell_name(const MatrixConfig& c) {
  return c.press_spec.empty() ? c.codec : c.codec + " + " + c.press_spec;
}

int eval_matrix(const MatrixArgs& a) {
  for (const char* flag : {"--kv-codec", "--press"}) {
    if (a.app->get_option(flag)->count() > 0) {
      return fail(
          fmt::format("eval matrix: {} is not used here; give the grid with --codecs, "
                      "--presses and --budgets",
                      flag));
    }
  }
  auto codecs = split_codec_list(a.codecs);
  if (!codecs.ok()) return fail(codecs.status().message());
  auto presses = split_list(a.presses.empty() ? default_presses() : a.presses, "--presses");
  if (!presses.ok()) return fail(presses.status().message());
  auto budgets = parse_budgets(a.budgets);
  if (!budgets.ok()) return fail(budgets.status().message());
  auto grid = expand_matrix(*codecs, *presses, *budgets);
  if (!grid.ok()) return fail(grid.status().message());
  const std::filesystem::path dir(a.out_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    return fail(fmt::format("cannot create the output directory '{}'", a.out_dir));
  }

  auto text = read_text_file(a.text_file);
  if (!text.ok()) return fail(text.status().message());
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status().to_string());
  const Tokenizer& tok = *loaded->tokenizer;
  const std::vector<int32_t> tokens = tok.encode(*text, false, false);
  Model& model = *loaded->model;
  const int32_t n_ctx = loaded->n_ctx;

  // Every cell's cache is built once before anything runs, so that a bad
  // spec fails at once and names its cell.
  for (const MatrixConfig& c : *grid) {
    auto cache = make_eval_cache(model, cell_args(a.model, c), n_ctx);
    if (!cache.ok()) return fail(fmt::format("{}: {}", cell_name(c), cache.status().message()));
  }

  KlOptions options;
  options.n_ctx = n_ctx;
  options.bos_id = tok.add_bos() && tok.bos_id() ? *tok.bos_id() : -1;
  options.max_windows = a.max_windows;
  options.protocol = KlProtocol::kDecode;
  const size_t reference_bytes =
      reference_rows_bytes(static_cast<int64_t>(tokens.size()), model.config().n_vocab, options);
  if (reference_bytes > kMaxReferenceBytes) {
    return fail(
        fmt::format("the reference's logits would take {} (at most {}): lower --chunks or -c",
                    format_bytes(static_cast<double>(reference_bytes)),
                    format_bytes(static_cast<double>(kMaxReferenceBytes))));
  }
  const std::string model_name = std::filesystem::path(a.model.model_path).filename().string();
  std::fprintf(stderr,
               "%zu cells on %s, windows of %d (first half a pressed prompt, second half decoded "
               "and scored); recording the f32 reference (%s of logits)\n",
               grid->size(), model_name.c_str(), n_ctx,
               format_bytes(static_cast<double>(reference_bytes)).c_str());
  auto reference_cache = make_reference_eval_cache(model, n_ctx);
  if (!reference_cache.ok()) return fail(reference_cache.status().message());
  auto reference = record_reference(model, **reference_cache, tokens, options);
  if (!reference.ok()) return fail(reference.status().message());
  reference_cache->reset();

  std::vector<MatrixRow> rows;
  for (size_t i = 0; i < grid->size(); ++i) {
    const MatrixConfig& c = (*grid)[i];
    auto cache = make_eval_cache(model, cell_args(a.model, c), n_ctx);
    if (!cache.ok()) return fail(fmt::format("{}: {}", cell_name(c), cache.status().message()));
    auto r = kl_divergence(model, *reference, **cache, tokens);
    if (!r.ok()) return fail(fmt::format("{}: {}", cell_name(c), r.status().message()));
    MatrixRow row;
    row.model = model_name;
    row.codec = c.codec;
    row.press = c.press;
    row.budget = c.budget;
    row.press_spec = c.press_spec;
    row.protocol = protocol_name(options.protocol);
    row.n_ctx = n_ctx;
    row.windows = r->n_windows;
    row.tokens = r->n_scored();
    row.mean_kl = r->mean_kl();
    row.mean_kl_stderr = r->mean_kl_stderr();
    row.median_kl = r->kl_percentile(50);
    row.p99_kl = r->kl_percentile(99);
    row.max_kl = r->kl_percentile(100);
    row.top1_agreement = r->top1_agreement();
    row.ppl_reference = r->reference.perplexity();
    row.ppl_candidate = r->candidate.perplexity();
    row.kv_bytes_per_token_reference = reference->context_bytes_per_token;
    row.kv_bytes_per_token_context = r->context_bytes_per_token();
    row.kv_bytes_per_token_scored = r->scored_bytes_per_token();
    std::fprintf(stderr,
                 "[%zu/%zu] %s: %.1f B/token (%.1f %% of f32), mean KL %.3e, top-1 %.2f %%\n",
                 i + 1, grid->size(), cell_name(c).c_str(), row.kv_bytes_per_token_context,
                 100 * row.kv_fraction(), row.mean_kl, 100 * row.top1_agreement);
    rows.push_back(std::move(row));
  }

  const std::string heading = fmt::format(
      "{}, {} windows of {} tokens from {} (the second half of each scored), against "
      "the f32 cache; kvforge {}",
      model_name, rows.empty() ? 0 : rows[0].windows, n_ctx,
      std::filesystem::path(a.text_file).filename().string(), KVFORGE_GIT_COMMIT);
  const std::string markdown = heading + "\n\n" + matrix_to_markdown(rows);
  for (const auto& [name, content] :
       {std::pair<std::string, std::string>{"matrix.md", markdown},
        {"matrix.csv", matrix_to_csv(rows)},
        {"matrix.json", matrix_to_json(rows, KVFORGE_VERSION, KVFORGE_GIT_COMMIT)},
        {"fidelity.svg", fidelity_plot_svg(rows, model_name + ": fidelity against KV memory")}}) {
    const Status written = write_file(dir / name, content);
    if (!written.ok()) return fail(written.message());
  }
  std::printf("%s", markdown.c_str());
  std::fprintf(stderr, "wrote %s/{matrix.md, matrix.csv, matrix.json, fidelity.svg}\n",
               a.out_dir.c_str());
  return 0;
}

}  // namespace

void add_eval_matrix(CLI::App& eval, const EvalChoice& chosen) {
  auto a = std::make_shared<MatrixArgs>();
  CLI::App* m = eval.add_subcommand(
      "matrix", "Codec x press x budget grid against f32: Markdown, CSV, JSON and an SVG plot");
  a->app = m;
  add_model_options(*m, a->model);
  m->add_option("-f,--file", a->text_file, "Text file")->required();
  m->add_option("--chunks", a->max_windows, "Evaluate at most this many windows (0: all)")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  m->add_option("--codecs", a->codecs,
                "KV codecs, comma-separated (a pair k=A,v=B stays one entry)")
      ->capture_default_str();
  m->add_option("--presses", a->presses,
                "Presses, comma-separated; 'none' is the uncompressed cache; an entry may carry "
                "keys (snapkv:window=16) or its own budget (h2o:tokens=64). Default: none and "
                "every press there is");
  m->add_option("--budgets", a->budgets, "Fractions of the tokens kept (ratio=), comma-separated")
      ->capture_default_str();
  m->add_option("-o,--output-dir", a->out_dir,
                "Directory for matrix.md, matrix.csv, matrix.json and fidelity.svg")
      ->required();
  m->callback([a, chosen] { *chosen = [a] { return eval_matrix(*a); }; });
}

}  // namespace kvforge::cli
