// `kvforge synth`: writes a random-weight GGUF model of a real architecture
// and shape with a real vocabulary (src/convert/synth_model.h).
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "convert/synth_model.h"

namespace kvforge::cli {
namespace {

struct SynthArgs {
  convert::SynthOptions options;
  std::string out_path;
};

int run_synth(const SynthArgs& args) {
  const Status status = convert::synth_model(args.options, args.out_path);
  if (!status.ok()) return fail("synth: " + status.to_string());
  std::printf("wrote %s\n", args.out_path.c_str());
  return 0;
}

std::string preset_list() {
  std::string names;
  for (const std::string& name : convert::synth_preset_names()) {
    names += (names.empty() ? "" : ", ") + name;
  }
  return names;
}

KVFORGE_REGISTER_COMMAND(
    synth_command, "synth", "Write a random-weight model of a real architecture and shape",
    [](CLI::App& sub) -> std::function<int()> {
      auto args = std::make_shared<SynthArgs>();
      convert::SynthOptions& o = args->options;
      sub.add_option("--arch", o.arch,
                     "llama, qwen2 or qwen3 (default: the preset's; llama for tiny presets)");
      sub.add_option("--preset", o.preset, "Model shape: " + preset_list())->required();
      sub.add_option("--type", o.type, "Matrix type: f32 f16 bf16 q8_0 q4_0 q4_1 q4_k q5_k q6_k")
          ->default_val("f32");
      sub.add_option("--seed", o.seed, "Random seed")->default_val(0);
      sub.add_option("--vocab", o.vocab_path,
                     "GGUF file whose tokenizer.* keys are copied (default: " +
                         std::string(convert::kDefaultVocabDir) +
                         "/ggml-vocab-llama-spm.gguf for llama, ggml-vocab-gpt-2.gguf for qwen)");
      sub.add_option("-o,--output", args->out_path, "Output GGUF file")->required();
      return [args] { return run_synth(*args); };
    });

}  // namespace
}  // namespace kvforge::cli
