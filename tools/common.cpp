#include "common.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "kv/kv_cache_factory.h"
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
  app.add_flag("!--no-repack", args.repack_weights,
               "Read Q4_0 weights in the file's block order instead of repacking them at load "
               "(same results and memory; slower batched products, docs/kernels.md)");
  app.add_option("--kv-codec", args.kv_codec,
                 "KV codec: f32, f16, bf16, int8, int4, int4h, kivi2, kivi4 (with :g=G:r=R), "
                 "or k=CODEC,v=CODEC")
      ->capture_default_str();
  app.add_option("--kv-codec-layers", args.kv_codec_layers,
                 "Per-layer codecs overriding --kv-codec, e.g. \"0-1:int8,2-:kivi2\"");
  app.add_option("--kv-block", args.kv_block,
                 "Tokens per KV block (default 16; 32 with KIVI codecs)")
      ->check(CLI::Range(1, 64));
  app.add_option("--kv-mem", args.kv_mem,
                 "KV memory budget, e.g. 512MiB, 4GiB (default: enough for the context; run "
                 "grows it for cached prefixes, see docs/kv-storage.md)");
  app.add_option("--cache-salt", args.cache_salt,
                 "Prefix-cache salt: KV is shared only between runs with the same salt");
  app.add_option("--press", args.press,
                 "KV retention press: NAME[:ratio=R|tokens=N][:key=value...], e.g. "
                 "snapkv:ratio=0.25 (docs/kv-compression.md)");
  app.add_option("--press-layers", args.press_layers,
                 "Per-layer presses overriding --press, e.g. \"0-1:none,2-:h2o:tokens=256\"");
  app.add_option("--select", args.select,
                 "Query-aware KV selection: each decode step reads only the blocks that can "
                 "score highest, NAME:tokens=N[:window=W][:sinks=S][:reuse=R:sim=X], e.g. "
                 "quest:tokens=2048 (docs/kv-compression.md)");
}

Result<LoadedModel> load_model(const ModelArgs& args) {
  LoadedModel out;
  ModelOptions options;
  options.n_threads = args.n_threads;
  options.max_batch = args.n_batch;
  options.repack_weights = args.repack_weights;
  KVF_ASSIGN_OR_RETURN(out.model, Model::load(args.model_path, options));
  auto tok = Tokenizer::from_gguf(out.model->file());
  if (!tok.ok()) return tok.status().with_context(args.model_path);
  out.tokenizer = std::move(tok).value();
  for (const std::string& note : out.tokenizer->vocabulary().notes) {
    std::fprintf(stderr, "note: %s\n", note.c_str());
  }
  out.n_ctx = args.n_ctx > 0 ? args.n_ctx : std::min(out.model->config().n_ctx_train, 4096);
  return out;
}

Result<std::unique_ptr<KvCache>> make_kv_cache(const Model& model, const ModelArgs& args,
                                               int32_t n_ctx, int32_t n_seq,
                                               double default_budget_fraction) {
  KvCacheOptions options;
  options.default_budget_fraction = default_budget_fraction;
  options.codec = args.kv_codec;
  options.codec_layers = args.kv_codec_layers;
  options.block_tokens = args.kv_block;
  if (!args.kv_mem.empty()) {
    KVF_ASSIGN_OR_RETURN(options.memory_bytes, parse_byte_size(args.kv_mem));
  }
  options.n_ctx = n_ctx;
  options.n_seq = n_seq;
  options.model_fingerprint = model.fingerprint();
  options.cache_salt = args.cache_salt;
  options.prefix_sharing = args.prefix_sharing;
  options.press = args.press;
  options.press_layers = args.press_layers;
  options.select = args.select;
  return kvforge::make_kv_cache(model.kv_shape(), options);
}

Result<std::unique_ptr<KvCache>> make_kv_cache(const Model& model, int32_t n_ctx,
                                               const std::string& kv_codec) {
  ModelArgs args;
  args.kv_codec = kv_codec;
  return make_kv_cache(model, args, n_ctx);
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
