// Usage: write_llama_cpp_llama2c SOURCE.gguf OUT.gguf
// Writes SOURCE (a llama2.c model converted by kvforge) in the layout of
// llama.cpp's convert-llama2c-to-ggml (tests/model/llama_cpp_llama2c_gguf.h),
// for the command-line tests.
#include <cstdio>

#include "../model/llama_cpp_llama2c_gguf.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SOURCE.gguf OUT.gguf\n", argv[0]);
    return 2;
  }
  auto source = kvforge::gguf::GgufFile::open(argv[1]);
  if (!source.ok()) {
    std::fprintf(stderr, "%s\n", source.status().to_string().c_str());
    return 1;
  }
  kvforge::gguf::GgufWriter writer;
  kvforge::Status s = kvforge::testing::llama_cpp_llama2c_gguf(**source, writer);
  if (s.ok()) s = writer.write(argv[2]);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }
  return 0;
}
