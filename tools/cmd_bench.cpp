// kvforge bench: prompt-processing and decode throughput, like llama-bench.
// Each test runs once untimed (warm-up), then -r timed repetitions; the
// report gives mean ± standard deviation of tokens per second, with the
// configuration and the commit.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "gguf/gguf.h"
#include "kernels/simd_target_select.h"

namespace kvforge::cli {
namespace {

struct BenchArgs {
  ModelArgs model;
  std::vector<int32_t> n_prompt = {512};
  std::vector<int32_t> n_gen = {128};
  std::vector<int32_t> depths = {0};
  int32_t reps = 5;
  std::string output = "md";
  std::string depth_fill = "compute";
};

struct TestResult {
  std::string name;  // "pp512", "tg128", "tg128 @ d4096"
  int32_t n_tokens = 0;
  int32_t depth = 0;
  std::vector<double> tokens_per_second;
  [[nodiscard]] double mean() const {
    double s = 0;
    for (double x : tokens_per_second) s += x;
    return tokens_per_second.empty() ? 0 : s / double(tokens_per_second.size());
  }
  [[nodiscard]] double stddev() const {
    if (tokens_per_second.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double x : tokens_per_second) s += (x - m) * (x - m);
    return std::sqrt(s / double(tokens_per_second.size() - 1));
  }
};

// Deterministic pseudo-random token ids (the content does not change the cost).
std::vector<int32_t> bench_tokens(int32_t n, int32_t n_vocab, uint32_t salt) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  uint32_t x = 2463534242u ^ salt;
  for (auto& id : ids) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    id = static_cast<int32_t>(x % static_cast<uint32_t>(n_vocab));
  }
  return ids;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Fills `depth` positions of the cache with N(0, 1) keys and values through
// the cache's own store path (so every codec encodes them as usual) without
// running the model: what a decode step costs depends on how much KV it reads,
// not on the values, and a real prefill of 16k tokens takes minutes here.
Status fill_random(Model& model, KvCache& kv, int32_t depth) {
  const KvShape shape = model.kv_shape();
  const int32_t chunk = 256;
  const size_t floats = static_cast<size_t>(chunk) * static_cast<size_t>(shape.n_kv_heads) *
                        static_cast<size_t>(shape.head_dim);
  std::vector<float> k(floats), v(floats);
  uint32_t x = 88172645u;
  auto gaussian = [&x] {
    // Sum of four uniforms: close enough to normal for a timing fill.
    float s = 0;
    for (int i = 0; i < 4; ++i) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      s += float(x) / 4294967296.0f - 0.5f;
    }
    return s * 1.732f;
  };
  const auto ids = bench_tokens(depth, model.config().n_vocab, 1);
  for (int32_t pos = 0; pos < depth; pos += chunk) {
    const int32_t n = std::min(chunk, depth - pos);
    KVF_RETURN_IF_ERROR(kv.begin_append(
        SeqId{0}, pos,
        std::span<const int32_t>(ids).subspan(static_cast<size_t>(pos), static_cast<size_t>(n))));
    for (int32_t l = 0; l < shape.n_layers; ++l) {
      for (auto& f : k) f = gaussian();
      for (auto& f : v) f = gaussian();
      kv.store(SeqId{0}, LayerId{l}, pos, n, k.data(), v.data());
    }
  }
  return Status();
}

// Prefills `depth` tokens untimed, then times either one n-token prompt
// (pp) or n single-token decode steps (tg). Returns tokens per second.
Result<double> run_once(Model& model, KvCache& kv, bool prompt_test, int32_t n, int32_t depth,
                        bool random_fill, std::vector<float>& logits) {
  const int32_t n_vocab = model.config().n_vocab;
  KVF_RETURN_IF_ERROR(kv.truncate(SeqId{0}, 0));
  if (depth > 0 && random_fill) {
    KVF_RETURN_IF_ERROR(fill_random(model, kv, depth));
  } else if (depth > 0) {
    auto ctx = bench_tokens(depth, n_vocab, 1);
    KVF_RETURN_IF_ERROR(model.forward(ctx, 0, kv, SeqId{0}, LogitsFor::kNone, nullptr));
  }
  auto ids = bench_tokens(n, n_vocab, 2);
  const double t0 = now_seconds();
  if (prompt_test) {
    KVF_RETURN_IF_ERROR(
        model.forward(ids, depth, kv, SeqId{0}, LogitsFor::kLastToken, logits.data()));
  } else {
    for (int32_t i = 0; i < n; ++i) {
      const int32_t one[1] = {ids[static_cast<size_t>(i)]};
      KVF_RETURN_IF_ERROR(
          model.forward(one, depth + i, kv, SeqId{0}, LogitsFor::kLastToken, logits.data()));
    }
  }
  return double(n) / (now_seconds() - t0);
}

int bench(const BenchArgs& a) {
  if (a.output != "md" && a.output != "json") return fail("-o must be md or json");
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status().to_string());
  Model& model = *loaded->model;

  int32_t capacity = 1;
  for (int32_t d : a.depths) {
    for (int32_t p : a.n_prompt) capacity = std::max(capacity, d + p);
    for (int32_t g : a.n_gen) capacity = std::max(capacity, d + g);
  }
  auto kv = make_kv_cache(model, a.model, capacity);
  if (!kv.ok()) return fail(kv.status().message());
  std::vector<float> logits(static_cast<size_t>(model.config().n_vocab));

  std::vector<TestResult> results;
  for (int32_t depth : a.depths) {
    for (int pass = 0; pass < 2; ++pass) {
      const bool prompt_test = pass == 0;
      for (int32_t n : prompt_test ? a.n_prompt : a.n_gen) {
        if (n <= 0) continue;
        TestResult r;
        r.name = fmt::format("{}{}", prompt_test ? "pp" : "tg", n);
        if (depth > 0) r.name += fmt::format(" @ d{}", depth);
        r.n_tokens = n;
        r.depth = depth;
        for (int rep = -1; rep < a.reps; ++rep) {
          auto tps = run_once(model, **kv, prompt_test, n, depth, a.depth_fill == "random", logits);
          if (!tps.ok()) return fail(tps.status().message());
          if (rep >= 0) r.tokens_per_second.push_back(*tps);
        }
        std::fprintf(stderr, "%s: %.2f tok/s\n", r.name.c_str(), r.mean());
        results.push_back(std::move(r));
      }
    }
  }

  const ModelConfig& c = model.config();
  const double size = double(model.file().file_bytes());
  if (a.output == "json") {
    nlohmann::json j;
    j["commit"] = KVFORGE_GIT_COMMIT;
    j["model"] = a.model.model_path;
    j["model_name"] = c.name;
    j["model_bytes"] = size;
    j["n_params"] = model.n_params();
    j["weight_bytes_per_token"] = model.weight_bytes_per_token();
    j["matmul_params_per_token"] = model.matmul_params_per_token();
    // The output projection's share: a prompt test runs it for its last
    // token only.
    j["output_matmul_params"] = static_cast<int64_t>(c.n_vocab) * c.n_embd;
    j["threads"] = model.n_threads();
    j["simd_target"] = kernels::matmul_simd_target_name();
    j["batch"] = a.model.n_batch;
    j["kv_codec"] = a.model.kv_codec;
    j["kv_press"] = a.model.press;
    j["kv_select"] = a.model.select;
    j["kv_bytes_per_token"] = (*kv)->bytes_per_token();
    // Attention arithmetic a decode step spends per token of context: for
    // every layer and query head, one dot product with its key and one
    // multiply-add of its value row (head_dim each, 2 FLOP per element).
    j["attention_flops_per_context_token"] =
        4 * static_cast<int64_t>(c.n_layers) * c.n_heads * c.head_dim;
    j["reps"] = a.reps;
    j["depth_fill"] = a.depth_fill;
    for (const TestResult& r : results) {
      j["tests"].push_back({{"test", r.name},
                            {"n_tokens", r.n_tokens},
                            {"depth", r.depth},
                            {"tokens_per_second_mean", r.mean()},
                            {"tokens_per_second_stddev", r.stddev()},
                            {"samples", r.tokens_per_second}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("| model | size | params | threads | batch | kv | test | t/s |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | --- | --- | ---: |\n");
  std::string kv_spec = a.model.kv_codec;
  if (!a.model.press.empty()) kv_spec += " press " + a.model.press;
  if (!a.model.select.empty()) kv_spec += " select " + a.model.select;
  for (const TestResult& r : results) {
    std::printf("| %s | %s | %.2f M | %d | %d | %s | %s | %.2f ± %.2f |\n", c.name.c_str(),
                format_bytes(size).c_str(), double(model.n_params()) / 1e6, model.n_threads(),
                a.model.n_batch, kv_spec.c_str(), r.name.c_str(), r.mean(), r.stddev());
  }
  std::printf("\nkvforge %s (commit %s), %d repetitions, SIMD target %s\n", KVFORGE_VERSION,
              KVFORGE_GIT_COMMIT, a.reps, kernels::matmul_simd_target_name().c_str());
  return 0;
}

KVFORGE_REGISTER_COMMAND(
    bench_command, "bench", "Measure prompt-processing and decode speed",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<BenchArgs>();
      add_model_options(app, a->model);
      app.add_option("-p,--n-prompt", a->n_prompt, "Prompt lengths to test (comma-separated)")
          ->delimiter(',')
          ->check(CLI::Range(0, 1 << 20));
      app.add_option("-n,--n-gen", a->n_gen, "Decode lengths to test (comma-separated)")
          ->delimiter(',')
          ->check(CLI::Range(0, 1 << 20));
      app.add_option("-d,--depth", a->depths, "Context depths before each test (comma-separated)")
          ->delimiter(',')
          ->check(CLI::Range(0, 1 << 24));
      app.add_option("-r,--repetitions", a->reps, "Timed repetitions per test")
          ->check(CLI::Range(1, 1000));
      app.add_option("--depth-fill", a->depth_fill,
                     "How the -d context is made: compute (a real prefill) or random (random "
                     "keys/values stored through the codec, no model run)")
          ->check(CLI::IsMember({"compute", "random"}));
      app.add_option("-o,--output", a->output, "Output format: md or json")
          ->check(CLI::IsMember({"md", "json"}));
      return [a] { return bench(*a); };
    });

}  // namespace
}  // namespace kvforge::cli
