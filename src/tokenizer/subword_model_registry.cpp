#include <array>
#include <string_view>

#include <fmt/format.h>

#include "tokenizer/subword_model.h"

namespace kvforge::tokenizer {
namespace {

struct SubwordModelEntry {
  std::string_view name;  // tokenizer.ggml.model
  SubwordModelFactory create;
};

constexpr std::array<SubwordModelEntry, 2> kSubwordModels = {{
    {"llama", create_sentencepiece_bpe_model},
    {"gpt2", create_byte_level_bpe_model},
}};

}  // namespace

Result<std::unique_ptr<SubwordModel>> create_subword_model(const Vocabulary& vocabulary) {
  std::vector<std::string_view> known;
  for (const SubwordModelEntry& entry : kSubwordModels) {
    if (entry.name == vocabulary.model) return entry.create(vocabulary);
    known.push_back(entry.name);
  }
  return unsupported(
      fmt::format("unsupported tokenizer model '{}' (tokenizer.ggml.model); known: {}",
                  vocabulary.model, fmt::join(known, ", ")));
}

}  // namespace kvforge::tokenizer
