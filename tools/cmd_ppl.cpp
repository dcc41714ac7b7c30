// kvforge ppl: perplexity over a text file, in windows (see eval/perplexity.h).
#include <unistd.h>

#include <cstdio>

#include "command.h"
#include "common.h"
#include "eval/perplexity.h"

namespace kvforge::cli {
namespace {

struct PplArgs {
  ModelArgs model;
  std::string text_file;
  int32_t max_windows = 0;
};

int ppl(PplArgs a) {
  auto text = read_text_file(a.text_file);
  if (!text.ok()) return fail(text.status().message());
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status().to_string());
  const Tokenizer& tok = *loaded->tokenizer;
  const std::vector<int32_t> tokens =
      tok.encode(*text, /*add_special=*/false, /*parse_special=*/false);
  auto kv = make_kv_cache(*loaded->model, a.model, loaded->n_ctx);
  if (!kv.ok()) return fail(kv.status().message());

  PerplexityOptions options;
  options.n_ctx = loaded->n_ctx;
  options.bos_id = tok.add_bos() && tok.bos_id() ? *tok.bos_id() : -1;
  options.max_windows = a.max_windows;
  std::fprintf(stderr, "%zu tokens, windows of %d, scoring the second half of each\n",
               tokens.size(), options.n_ctx);
  const bool tty = isatty(fileno(stderr));
  auto progress = [&](int32_t done, int32_t total, const PerplexityResult& r) {
    const int width = 30;
    const int filled = width * done / total;
    std::fprintf(stderr, "%s[%.*s%*s] %d/%d windows  ppl %.4f%s", tty ? "\r" : "", filled,
                 "##############################", width - filled, "", done, total, r.perplexity(),
                 tty ? "" : "\n");
    std::fflush(stderr);
  };
  auto result = perplexity(*loaded->model, **kv, tokens, options, progress);
  if (tty) std::fputs("\n", stderr);
  if (!result.ok()) return fail(result.status().message());
  std::printf(
      "perplexity: %.4f +/- %.4f  (mean NLL %.5f nats over %lld tokens, %d windows of %d, KV %s)\n",
      result->perplexity(), result->perplexity_stderr(), result->mean_nll(),
      static_cast<long long>(result->n_scored), result->n_windows, options.n_ctx,
      a.model.kv_codec.c_str());
  return 0;
}

KVFORGE_REGISTER_COMMAND(ppl_command, "ppl", "Perplexity of a model over a text file",
                         [](CLI::App& app) -> std::function<int()> {
                           auto a = std::make_shared<PplArgs>();
                           add_model_options(app, a->model);
                           app.add_option("-f,--file", a->text_file, "Text file")->required();
                           app.add_option("--chunks", a->max_windows,
                                          "Evaluate at most this many windows (0: all)")
                               ->check(CLI::Range(0, 1 << 30));
                           return [a] { return ppl(*a); };
                         });

}  // namespace
}  // namespace kvforge::cli
