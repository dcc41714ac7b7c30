#include "engine_options.h"

namespace kvforge::cli {

void add_engine_options(CLI::App& app, EngineOptions& o) {
  app.add_option("-m,--model", o.model_path, "Model file (GGUF)")->required();
  app.add_option("-t,--threads", o.n_threads, "Threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  app.add_option("-c,--ctx-size", o.n_ctx,
                 "Context size in tokens per sequence (default: the model's, at most 4096)")
      ->check(CLI::Range(0, 1 << 24));
  app.add_option("-b,--batch-size", o.n_batch, "Tokens per forward step (all sequences together)")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_flag("!--no-repack", o.repack_weights,
               "Read Q4_0 weights in the file's block order instead of repacking them at load "
               "(same results and memory; slower batched products, docs/kernels.md)");
  app.add_option("--parallel", o.parallel, "Sequences served at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--kv-codec", o.kv.codec,
                 "KV codec: f32, f16, bf16, int8, int4, int4h, kivi2, kivi4 (with :g=G:r=R), "
                 "or k=CODEC,v=CODEC")
      ->capture_default_str();
  app.add_option("--kv-codec-layers", o.kv.codec_layers,
                 "Per-layer codecs overriding --kv-codec, e.g. \"0-1:int8,2-:kivi2\"");
  app.add_option("--kv-block", o.kv.block_tokens,
                 "Tokens per KV block (default 16; 32 with KIVI codecs)")
      ->check(CLI::Range(1, 64));
  app.add_option("--kv-mem", o.kv.memory,
                 "KV memory budget, e.g. 512MiB, 4GiB (default: every sequence's context plus "
                 "room for cached prefixes, see docs/kv-storage.md)");
  app.add_option(
      "--cache-salt", o.kv.cache_salt,
      "Default prefix-cache salt: KV is shared only between requests with the same salt");
  app.add_option("--press", o.kv.press,
                 "KV retention press: NAME[:ratio=R|tokens=N][:key=value...], e.g. "
                 "snapkv:ratio=0.25 (docs/kv-compression.md)");
  app.add_option("--press-layers", o.kv.press_layers,
                 "Per-layer presses overriding --press, e.g. \"0-1:none,2-:h2o:tokens=256\"");
  app.add_flag("--no-prefix-sharing{false}", o.kv.prefix_sharing,
               "Do not share KV between requests with the same prompt prefix");
  app.add_option("--kv-tier", o.kv.tiers,
                 "KV tier below the pool, repeatable, fastest first: host:SIZE, disk:DIR:SIZE, "
                 "redis://HOST:PORT[/PREFIX], redis-cluster://HOST:PORT[,HOST:PORT...] "
                 "(docs/tiers.md)");
  app.add_option("--kv-tier-load", o.kv.tier_load,
                 "When to load prefix blocks from the tiers: auto (when the cost model expects "
                 "it to beat recomputing), always, never (write only)")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  app.add_option("--relay-mem", o.relay.memory,
                 "Memory for workflow outputs kept with their KV for later agents (relay); "
                 "0: relay off")
      ->capture_default_str();
  app.add_option("--relay-min-tokens", o.relay.min_tokens,
                 "Shortest quoted run of an earlier output that relay reuses")
      ->check(CLI::Range(4, 1 << 20))
      ->capture_default_str();
  app.add_option("--relay-recompute", o.relay.recompute_ratio,
                 "Share of a reused run's tokens recomputed through every layer")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
}

}  // namespace kvforge::cli
