// `kvforge convert llama2c MODEL.bin TOKENIZER.bin -o OUT.gguf`: converts other
// checkpoint formats to GGUF. The source format is the first argument so that
// more formats can be added beside llama2.c.
#include <cstdio>
#include <string>

#include "command.h"
#include "convert/llama2c_converter.h"

namespace kvforge::cli {
namespace {

struct ConvertArgs {
  std::string format;
  std::string model_path;
  std::string tokenizer_path;
  std::string out_path;
};

int run_convert(const ConvertArgs& args) {
  if (args.format != "llama2c") {
    return fail("convert: unknown source format '" + args.format + "' (supported: llama2c)");
  }
  const Status status =
      convert::convert_llama2c(args.model_path, args.tokenizer_path, args.out_path);
  if (!status.ok()) return fail("convert: " + status.to_string());
  std::printf("wrote %s\n", args.out_path.c_str());
  return 0;
}

KVFORGE_REGISTER_COMMAND(
    convert_command, "convert", "Convert a llama2.c checkpoint and tokenizer to GGUF",
    [](CLI::App& sub) -> std::function<int()> {
      auto args = std::make_shared<ConvertArgs>();
      sub.add_option("format", args->format, "Source format: llama2c")->required();
      sub.add_option("model", args->model_path, "llama2.c float32 checkpoint (.bin)")->required();
      sub.add_option("tokenizer", args->tokenizer_path, "llama2.c tokenizer (.bin)")->required();
      sub.add_option("-o,--output", args->out_path, "Output GGUF file")->required();
      return [args] { return run_convert(*args); };
    });

}  // namespace
}  // namespace kvforge::cli
