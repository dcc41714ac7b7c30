#include "common.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "util/thread_pool.h"

namespace kvforge::cli {

void add_model_options(CLI::App& app, ModelArgs& args) {
  app.add_option("-m,--model", args.model_path, "Model file (GGUF)")->required();
  app.add_option("-t,--threads", args.n_threads, "Threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  app.add_option("-c,--ctx-size", args.n_ctx,
                 "Context size in tokens (default: the model's, at most 4096)")
      ->check(CLI::Range(0, 1 << 24));
  app.add_option("-b,--batch-size", args.n_batch, "Tokens per prefill batch")
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--kv-type", args.kv_type, "KV cache element type")
      ->check(CLI::IsMember({"f32", "f16"}));
}

Result<LoadedModel> load_model(const ModelArgs& args) {
  LoadedModel out;
  ModelOptions options;
  options.n_threads = args.n_threads;
  options.max_batch = args.n_batch;
  KVF_ASSIGN_OR_RETURN(out.model, Model::load(args.model_path, options));
  auto tok = Tokenizer::from_gguf(out.model->file());
  if (!tok.ok()) return tok.status().with_context(args.model_path);
  out.tokenizer = std::move(tok).value();
  out.n_ctx = args.n_ctx > 0 ? args.n_ctx : std::min(out.model->config().n_ctx_train, 4096);
  return out;
}

Result<std::unique_ptr<KvCache>> make_kv_cache(const Model& model, int32_t n_ctx,
                                               const std::string& kv_type) {
  ContiguousKvType type;
  if (kv_type == "f32") {
    type = ContiguousKvType::kF32;
  } else if (kv_type == "f16") {
    type = ContiguousKvType::kF16;
  } else {
    return invalid_argument(fmt::format("unknown KV type '{}' (use f32 or f16)", kv_type));
  }
  std::unique_ptr<KvCache> kv =
      std::make_unique<ContiguousKvCache>(model.kv_shape(), 1, n_ctx, type);
  return kv;
}

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(fmt::format("cannot open '{}'", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return io_error(fmt::format("error reading '{}'", path));
  return ss.str();
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return fmt::format("{:.2f} {}", bytes, units[u]);
}

}  // namespace kvforge::cli
