// kvforge tokenize: print the token ids (and pieces) of a text, like
// llama-tokenize. Works on vocabulary-only GGUF files too.
#include <cstdio>

#include "command.h"
#include "common.h"
#include "gguf/gguf.h"

namespace kvforge::cli {
namespace {

struct TokenizeArgs {
  std::string model_path;
  std::string prompt;
  std::string prompt_file;
  bool ids_only = false;
  bool no_bos = false;
  bool no_parse_special = false;
};

int tokenize(const TokenizeArgs& a) {
  std::string text = a.prompt;
  if (!a.prompt_file.empty()) {
    auto t = read_text_file(a.prompt_file);
    if (!t.ok()) return fail(t.status().message());
    text = std::move(t).value();
  }
  auto file = gguf::GgufFile::open(a.model_path);
  if (!file.ok()) return fail(file.status().to_string());
  auto tok = Tokenizer::from_gguf(**file);
  if (!tok.ok()) return fail(tok.status().with_context(a.model_path).to_string());
  const std::vector<int32_t> ids = (*tok)->encode(text, !a.no_bos, !a.no_parse_special);
  if (a.ids_only) {
    std::printf("[");
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
    std::printf("]\n");
    return 0;
  }
  for (int32_t id : ids) {
    std::string piece = (*tok)->token_to_piece(id);
    std::string shown;
    for (unsigned char c : piece) {
      if (c == '\n') {
        shown += "\\n";
      } else if (c < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        shown += buf;
      } else {
        shown += static_cast<char>(c);
      }
    }
    std::printf("%6d -> '%s'\n", id, shown.c_str());
  }
  return 0;
}

KVFORGE_REGISTER_COMMAND(
    tokenize_command, "tokenize", "Print the tokens of a text",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<TokenizeArgs>();
      app.add_option("-m,--model", a->model_path, "Model or vocabulary GGUF")->required();
      auto* p = app.add_option("-p,--prompt", a->prompt, "Text to tokenize");
      auto* f = app.add_option("-f,--file", a->prompt_file, "Read the text from a file");
      p->excludes(f);
      app.add_flag("--ids", a->ids_only, "Print only the ids, as a list");
      app.add_flag("--no-bos", a->no_bos, "Do not add BOS/special prefix tokens");
      app.add_flag("--no-parse-special", a->no_parse_special,
                   "Treat special-token text as plain text");
      return [a] { return tokenize(*a); };
    });

}  // namespace
}  // namespace kvforge::cli
