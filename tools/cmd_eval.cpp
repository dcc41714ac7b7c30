// kvforge eval: measurements of the engine against a reference.
//
//   kvforge eval kl -m MODEL -f TEXT --kv-codec X
//
// runs the text through the model twice over the same windows, with an f32
// KV cache (the reference) and with codec X, and reports the KL divergence of
// the next-token distributions, top-1 agreement and both perplexities (see
// eval/kl_divergence.h and docs/kv-fidelity.md).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "eval/kl_divergence.h"

namespace kvforge::cli {
namespace {

constexpr const char* kReferenceCodec = "f32";

struct KlArgs {
  ModelArgs model;  // its KV options (--kv-codec, --kv-codec-layers, ...) make the candidate
  std::string text_file;
  int32_t max_windows = 0;
  std::string output = "table";
};

// The reference: f32 storage, every other KV option at its default.
Result<std::unique_ptr<KvCache>> make_reference_cache(const LoadedModel& m) {
  return make_kv_cache(*m.model, m.n_ctx, kReferenceCodec);
}

// The cache under test, as the KV options on the command line say.
Result<std::unique_ptr<KvCache>> make_candidate_cache(const LoadedModel& m, const KlArgs& a) {
  return make_kv_cache(*m.model, a.model, m.n_ctx);
}

// "int8", or "int8 layers 0-1:f16" with per-layer overrides.
std::string codec_label(const ModelArgs& m) {
  return m.kv_codec_layers.empty() ? m.kv_codec : m.kv_codec + " layers " + m.kv_codec_layers;
}

struct Summary {
  std::string model;
  std::string codec;
  int32_t n_ctx = 0;
  double median_kl = 0, p90_kl = 0, p99_kl = 0, max_kl = 0;
};

void print_table(const Summary& s, const KlResult& r) {
  std::printf(
      "| model | kv | ctx | windows | tokens | mean KL | median KL | p99 KL | max KL | top-1 | "
      "ppl %s | ppl %s |\n",
      kReferenceCodec, s.codec.c_str());
  std::printf(
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  std::printf(
      "| %s | %s | %d | %d | %lld | %.3e ± %.1e | %.3e | %.3e | %.3e | %.2f %% | %.4f ± %.4f "
      "| %.4f ± %.4f |\n",
      s.model.c_str(), s.codec.c_str(), s.n_ctx, r.n_windows, static_cast<long long>(r.n_scored()),
      r.mean_kl(), r.mean_kl_stderr(), s.median_kl, s.p99_kl, s.max_kl, 100 * r.top1_agreement(),
      r.reference.perplexity(), r.reference.perplexity_stderr(), r.candidate.perplexity(),
      r.candidate.perplexity_stderr());
}

void print_csv(const Summary& s, const KlResult& r) {
  std::printf(
      "model,kv_reference,kv_codec,n_ctx,windows,tokens,mean_kl,mean_kl_stderr,median_kl,p90_kl,"
      "p99_kl,max_kl,top1_agreement,ppl_reference,ppl_reference_stderr,ppl_codec,"
      "ppl_codec_stderr\n");
  // Codec specs contain commas ("k=int8,v=int4h"): quote that field.
  std::printf("%s,%s,\"%s\",%d,%d,%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n",
              s.model.c_str(), kReferenceCodec, s.codec.c_str(), s.n_ctx, r.n_windows,
              static_cast<long long>(r.n_scored()), r.mean_kl(), r.mean_kl_stderr(), s.median_kl,
              s.p90_kl, s.p99_kl, s.max_kl, r.top1_agreement(), r.reference.perplexity(),
              r.reference.perplexity_stderr(), r.candidate.perplexity(),
              r.candidate.perplexity_stderr());
}

void print_json(const Summary& s, const KlResult& r) {
  nlohmann::ordered_json j;
  j["model"] = s.model;
  j["kv_reference"] = kReferenceCodec;
  j["kv_codec"] = s.codec;
  j["n_ctx"] = s.n_ctx;
  j["windows"] = r.n_windows;
  j["tokens"] = r.n_scored();
  j["mean_kl"] = r.mean_kl();
  j["mean_kl_stderr"] = r.mean_kl_stderr();
  j["median_kl"] = s.median_kl;
  j["p90_kl"] = s.p90_kl;
  j["p99_kl"] = s.p99_kl;
  j["max_kl"] = s.max_kl;
  j["top1_agreement"] = r.top1_agreement();
  j["ppl_reference"] = r.reference.perplexity();
  j["ppl_reference_stderr"] = r.reference.perplexity_stderr();
  j["ppl_codec"] = r.candidate.perplexity();
  j["ppl_codec_stderr"] = r.candidate.perplexity_stderr();
  j["kvforge_version"] = KVFORGE_VERSION;
  j["kvforge_commit"] = KVFORGE_GIT_COMMIT;
  std::printf("%s\n", j.dump(2).c_str());
}

int eval_kl(const KlArgs& a) {
  auto text = read_text_file(a.text_file);
  if (!text.ok()) return fail(text.status().message());
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status().to_string());
  const Tokenizer& tok = *loaded->tokenizer;
  const std::vector<int32_t> tokens =
      tok.encode(*text, /*add_special=*/false, /*parse_special=*/false);
  auto reference = make_reference_cache(*loaded);
  if (!reference.ok()) return fail(reference.status().message());
  auto candidate = make_candidate_cache(*loaded, a);
  if (!candidate.ok()) return fail(candidate.status().message());

  KlOptions options;
  options.n_ctx = loaded->n_ctx;
  options.bos_id = tok.add_bos() && tok.bos_id() ? *tok.bos_id() : -1;
  options.max_windows = a.max_windows;
  std::fprintf(stderr,
               "%zu tokens, windows of %d, scoring the second half of each; KV %s against %s\n",
               tokens.size(), options.n_ctx, codec_label(a.model).c_str(), kReferenceCodec);
  const bool tty = isatty(fileno(stderr));
  auto progress = [&](int32_t done, int32_t total, const KlResult& r) {
    const int width = 30;
    const int filled = width * done / total;
    std::fprintf(stderr, "%s[%.*s%*s] %d/%d windows  mean KL %.3e  top-1 %.2f %%%s",
                 tty ? "\r" : "", filled, "##############################", width - filled, "",
                 done, total, r.mean_kl(), 100 * r.top1_agreement(), tty ? "" : "\n");
    std::fflush(stderr);
  };
  auto result = kl_divergence(*loaded->model, **reference, **candidate, tokens, options, progress);
  if (tty) std::fputs("\n", stderr);
  if (!result.ok()) return fail(result.status().message());

  Summary s;
  s.model = std::filesystem::path(a.model.model_path).filename().string();
  s.codec = codec_label(a.model);
  s.n_ctx = options.n_ctx;
  std::vector<double> kl = result->token_kl;
  s.median_kl = percentile(kl, 50);
  s.p90_kl = percentile(kl, 90);
  s.p99_kl = percentile(kl, 99);
  s.max_kl = percentile(kl, 100);
  if (a.output == "json") {
    print_json(s, *result);
  } else if (a.output == "csv") {
    print_csv(s, *result);
  } else {
    print_table(s, *result);
  }
  return 0;
}

KVFORGE_REGISTER_COMMAND(
    eval_command, "eval", "Fidelity measurements (eval kl: KV codec against the f32 cache)",
    [](CLI::App& app) -> std::function<int()> {
      app.require_subcommand(1);
      auto a = std::make_shared<KlArgs>();
      CLI::App* kl = app.add_subcommand(
          "kl", "KL divergence, top-1 agreement and perplexity of a KV codec against f32");
      add_model_options(*kl, a->model);
      kl->add_option("-f,--file", a->text_file, "Text file")->required();
      kl->add_option("--chunks", a->max_windows, "Evaluate at most this many windows (0: all)")
          ->check(CLI::Range(0, 1 << 30));
      kl->add_option("-o,--output", a->output, "Output format: table, csv or json")
          ->check(CLI::IsMember({"table", "csv", "json"}));
      return [a] { return eval_kl(*a); };
    });

}  // namespace
}  // namespace kvforge::cli
