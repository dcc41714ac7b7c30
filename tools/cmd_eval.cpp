// kvforge eval: measurements of the engine against a reference.
//
//   kvforge eval kl -m MODEL -f TEXT --kv-codec X [--press P]
//
// runs the text through the model twice over the same windows, with an f32
// KV cache (the reference) and with the cache under test, and reports the KL
// divergence of the next-token distributions, top-1 agreement and both
// perplexities (see eval/kl_divergence.h and docs/kv-fidelity.md). With a
// press, each window's first half is a pressed prompt and its second half is
// decoded token by token (eval/scored_logits.h).
//
// The other subcommands live in cmd_eval_passkey.cpp and cmd_eval_matrix.cpp.
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "eval/kl_divergence.h"
#include "eval_common.h"

namespace kvforge::cli {
namespace {

struct KlArgs {
  ModelArgs model;  // its KV options (--kv-codec, --press, ...) make the candidate
  std::string text_file;
  int32_t max_windows = 0;
  std::string output = "table";
  std::string protocol = "auto";
};

struct Summary {
  std::string model;
  std::string codec;        // codec_label
  std::string compression;  // compression_label, "" for none
  std::string protocol;
  int32_t n_ctx = 0;
  double median_kl = 0, p90_kl = 0, p99_kl = 0, max_kl = 0;

  [[nodiscard]] std::string kv() const {
    return compression.empty() ? codec : codec + " + " + compression;
  }
};

void print_table(const Summary& s, const KlResult& r) {
  std::printf(
      "| model | kv | ctx | windows | tokens | mean KL | median KL | p99 KL | max KL | top-1 | "
      "ppl %s | ppl %s | KV B/token |\n",
      kEvalReferenceCodec, s.kv().c_str());
  std::printf(
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
      "|\n");
  std::printf(
      "| %s | %s | %d | %d | %lld | %.3e ± %.1e | %.3e | %.3e | %.3e | %.2f %% | %.4f ± %.4f "
      "| %.4f ± %.4f | %.1f |\n",
      s.model.c_str(), s.kv().c_str(), s.n_ctx, r.n_windows, static_cast<long long>(r.n_scored()),
      r.mean_kl(), r.mean_kl_stderr(), s.median_kl, s.p99_kl, s.max_kl, 100 * r.top1_agreement(),
      r.reference.perplexity(), r.reference.perplexity_stderr(), r.candidate.perplexity(),
      r.candidate.perplexity_stderr(), r.context_bytes_per_token());
}

// A CSV field, quoted when it holds a comma or a quote (codec specs do:
// "k=int8,v=int4h").
std::string csv_quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void print_csv(const Summary& s, const KlResult& r) {
  std::printf(
      "model,kv_reference,kv_codec,n_ctx,windows,tokens,mean_kl,mean_kl_stderr,median_kl,p90_kl,"
      "p99_kl,max_kl,top1_agreement,ppl_reference,ppl_reference_stderr,ppl_codec,"
      "ppl_codec_stderr,kv_compression,protocol,kv_bytes_per_token_context,"
      "kv_bytes_per_token_scored\n");
  std::printf(
      "%s,%s,%s,%d,%d,%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%s,%s,%.9g,"
      "%.9g\n",
      s.model.c_str(), kEvalReferenceCodec, csv_quoted(s.codec).c_str(), s.n_ctx, r.n_windows,
      static_cast<long long>(r.n_scored()), r.mean_kl(), r.mean_kl_stderr(), s.median_kl, s.p90_kl,
      s.p99_kl, s.max_kl, r.top1_agreement(), r.reference.perplexity(),
      r.reference.perplexity_stderr(), r.candidate.perplexity(), r.candidate.perplexity_stderr(),
      csv_quoted(s.compression).c_str(), s.protocol.c_str(), r.context_bytes_per_token(),
      r.scored_bytes_per_token());
}

void print_json(const Summary& s, const KlResult& r) {
  nlohmann::ordered_json j;
  j["model"] = s.model;
  j["kv_reference"] = kEvalReferenceCodec;
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
  j["kv_compression"] = s.compression;
  j["protocol"] = s.protocol;
  j["kv_bytes_per_token_context"] = r.context_bytes_per_token();
  j["kv_bytes_per_token_scored"] = r.scored_bytes_per_token();
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
  auto reference = make_reference_eval_cache(*loaded->model, loaded->n_ctx);
  if (!reference.ok()) return fail(reference.status().message());
  auto candidate = make_eval_cache(*loaded->model, a.model, loaded->n_ctx);
  if (!candidate.ok()) return fail(candidate.status().message());

  Summary s;
  s.model = std::filesystem::path(a.model.model_path).filename().string();
  s.codec = codec_label(a.model);
  s.compression = compression_label(a.model);
  KlOptions options;
  options.n_ctx = loaded->n_ctx;
  options.bos_id = tok.add_bos() && tok.bos_id() ? *tok.bos_id() : -1;
  options.max_windows = a.max_windows;
  // A press acts only after a prompt, and selection only in decode steps:
  // compression is measured with the decode protocol unless told otherwise.
  const bool decode = a.protocol == "decode" || (a.protocol == "auto" && !s.compression.empty());
  options.protocol = decode ? KlProtocol::kDecode : KlProtocol::kPrefill;
  s.protocol = protocol_name(options.protocol);
  s.n_ctx = options.n_ctx;
  std::fprintf(
      stderr,
      "%zu tokens, windows of %d, scoring the second half of each (%s); KV %s against "
      "%s\n",
      tokens.size(), options.n_ctx,
      decode ? "first half a prompt, second half decoded token by token" : "prefilled in chunks",
      s.kv().c_str(), kEvalReferenceCodec);
  ProgressBar bar;
  auto progress = [&](int32_t done, int32_t total, const KlResult& r) {
    bar.update(
        done, total, "windows",
        fmt::format("mean KL {:.3e}  top-1 {:.2f} %", r.mean_kl(), 100 * r.top1_agreement()));
  };
  auto result = kl_divergence(*loaded->model, **reference, **candidate, tokens, options, progress);
  bar.finish();
  if (!result.ok()) return fail(result.status().message());

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

}  // namespace

void add_eval_kl(CLI::App& eval, const EvalChoice& chosen) {
  auto a = std::make_shared<KlArgs>();
  CLI::App* kl = eval.add_subcommand(
      "kl", "KL divergence, top-1 agreement and perplexity of a KV cache against f32");
  add_model_options(*kl, a->model);
  kl->add_option("-f,--file", a->text_file, "Text file")->required();
  kl->add_option("--chunks", a->max_windows, "Evaluate at most this many windows (0: all)")
      ->check(CLI::Range(0, 1 << 30));
  kl->add_option("-o,--output", a->output, "Output format: table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  kl->add_option("--protocol", a->protocol,
                 "How windows are fed: prefill (in chunks, as ppl), decode (first half a prompt, "
                 "second half token by token), auto (decode when a press is given)")
      ->check(CLI::IsMember({"auto", "prefill", "decode"}))
      ->capture_default_str();
  kl->callback([a, chosen] { *chosen = [a] { return eval_kl(*a); }; });
}

namespace {

KVFORGE_REGISTER_COMMAND(
    eval_command, "eval",
    "Fidelity measurements: eval kl (KV cache against f32), eval passkey (retrieval), eval matrix "
    "(codec x press x budget)",
    [](CLI::App& app) -> std::function<int()> {
      app.require_subcommand(1);
      auto chosen = std::make_shared<std::function<int()>>();
      add_eval_kl(app, chosen);
      add_eval_passkey(app, chosen);
      add_eval_matrix(app, chosen);
      return [chosen] { return *chosen ? (*chosen)() : 1; };
    });

}  // namespace
}  // namespace kvforge::cli
