// The pre-tokenizers of byte-level BPE vocabularies, by the name GGUF files
// carry in tokenizer.ggml.pre.
//
// Each entry lists the regular expressions that split text into words before
// merging (see RegexSplitter), as published in the model's tokenizer.json;
// docs/tokenizer.md says where each list comes from. Immutable; thread-safe.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"

namespace kvforge::tokenizer {

struct PreTokenizerSpec {
  std::string_view name;
  std::span<const std::string_view> patterns;
  // Llama 3 style: a word that is itself a token is emitted whole, without
  // running the merges (tokenizer.json "ignore_merges": true).
  bool ignore_merges = false;
};

// Looks up tokenizer.ggml.pre; an empty name means "default" (llama.cpp's
// fallback list: punctuation, GPT-2 words, digit runs, groups of 3 digits). Unknown names fail with
// kUnsupported listing the known ones.
[[nodiscard]] Result<PreTokenizerSpec> find_pre_tokenizer(std::string_view name);

// Every name find_pre_tokenizer accepts.
[[nodiscard]] std::vector<std::string_view> pre_tokenizer_names();

}  // namespace kvforge::tokenizer
