// load_vocabulary: the tokenizer.ggml.* GGUF keys -> Vocabulary. Kept apart
// from vocabulary.cpp so that code building vocabularies by hand does not
// link the GGUF reader.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include <fmt/format.h>

#include "gguf/gguf.h"
#include "tokenizer/vocabulary.h"

namespace kvforge::tokenizer {
namespace {

// The optional special-token ids llama.cpp's GGUF keys define. Those we use
// land in a Vocabulary field; the others are checked only so that a bad value
// gets the same note.
struct SpecialIdKey {
  std::string_view key;
  std::optional<TokenId> Vocabulary::*field;  // nullptr: read for the note only
};
constexpr SpecialIdKey kSpecialIdKeys[] = {
    {"tokenizer.ggml.bos_token_id", &Vocabulary::bos_id},
    {"tokenizer.ggml.eos_token_id", &Vocabulary::eos_id},
    {"tokenizer.ggml.unknown_token_id", &Vocabulary::unknown_id},
    {"tokenizer.ggml.padding_token_id", &Vocabulary::padding_id},
    {"tokenizer.ggml.eot_token_id", &Vocabulary::eot_id},
    {"tokenizer.ggml.eom_token_id", &Vocabulary::eom_id},
    {"tokenizer.ggml.seperator_token_id", nullptr},  // sic: llama.cpp's spelling
    {"tokenizer.ggml.cls_token_id", nullptr},
    {"tokenizer.ggml.mask_token_id", nullptr},
    {"tokenizer.ggml.fim_pre_token_id", nullptr},
    {"tokenizer.ggml.fim_suf_token_id", nullptr},
    {"tokenizer.ggml.fim_mid_token_id", nullptr},
    {"tokenizer.ggml.fim_pad_token_id", nullptr},
    {"tokenizer.ggml.fim_rep_token_id", nullptr},
    {"tokenizer.ggml.fim_sep_token_id", nullptr},
    {"tokenizer.ggml.prefix_token_id", nullptr},
    {"tokenizer.ggml.suffix_token_id", nullptr},
    {"tokenizer.ggml.middle_token_id", nullptr},
};

// Special ids are optional, and writers mark "none" in several ways:
// llama.cpp stores -1 as uint32 (4294967295), others store int32 -1. A value
// that is negative or not a token of the vocabulary means the token is
// absent, with a note; only a value that is not an integer at all is an
// error.
Status read_special_id(const gguf::GgufFile& file, const SpecialIdKey& special,
                       Vocabulary& vocabulary) {
  const gguf::Value* value = file.find(special.key);
  if (value == nullptr) return Status::ok_status();
  // -1 in any width, or an unsigned all-ones value: the writer's "none".
  bool none = false;
  int64_t id = 0;
  std::string shown;
  if (const auto* u = std::get_if<uint64_t>(&value->data)) {
    none = *u == UINT32_MAX || *u > static_cast<uint64_t>(INT64_MAX);
    id = static_cast<int64_t>(*u);
    shown = std::to_string(*u);
  } else if (const auto* i = std::get_if<int64_t>(&value->data)) {
    none = *i < 0;
    id = *i;
    shown = std::to_string(*i);
  } else {
    return corrupt(fmt::format("key '{}' has type {}, expected an integer token id", special.key,
                               gguf::value_type_name(value->type)));
  }
  const auto n_tokens = static_cast<int64_t>(vocabulary.tokens.size());
  if (!none && id < n_tokens) {
    if (special.field != nullptr) vocabulary.*special.field = static_cast<TokenId>(id);
    return Status::ok_status();
  }
  vocabulary.notes.push_back(
      none ? fmt::format("{} = {}: treated as absent", special.key, shown)
           : fmt::format("{} = {} is outside the vocabulary of {} tokens: treated as absent",
                         special.key, shown, n_tokens));
  return Status::ok_status();
}

Status read_flag(const gguf::GgufFile& file, std::string_view key, std::optional<bool>& flag) {
  KVF_ASSIGN_OR_RETURN(flag, file.find_bool(key));
  return Status::ok_status();
}

Result<Vocabulary> read_vocabulary(const gguf::GgufFile& file) {
  Vocabulary vocabulary;
  KVF_ASSIGN_OR_RETURN(vocabulary.model, file.get_string("tokenizer.ggml.model"));
  KVF_ASSIGN_OR_RETURN(const std::optional<std::string> pre,
                       file.find_string("tokenizer.ggml.pre"));
  vocabulary.pre = pre.value_or("");
  KVF_ASSIGN_OR_RETURN(vocabulary.tokens, file.get_string_array("tokenizer.ggml.tokens"));
  if (file.find("tokenizer.ggml.scores") != nullptr) {
    KVF_ASSIGN_OR_RETURN(vocabulary.scores, file.get_float_array("tokenizer.ggml.scores"));
  }
  if (file.find("tokenizer.ggml.token_type") != nullptr) {
    KVF_ASSIGN_OR_RETURN(const std::vector<int64_t> types,
                         file.get_int_array("tokenizer.ggml.token_type"));
    vocabulary.types.reserve(types.size());
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] < 0 || types[i] > static_cast<int64_t>(TokenType::kByte)) {
        return corrupt(fmt::format("token {} has unknown token type {}", i, types[i]));
      }
      vocabulary.types.push_back(static_cast<TokenType>(types[i]));
    }
  }
  if (file.find("tokenizer.ggml.merges") != nullptr) {
    KVF_ASSIGN_OR_RETURN(vocabulary.merges, file.get_string_array("tokenizer.ggml.merges"));
  }
  for (const SpecialIdKey& special : kSpecialIdKeys) {
    KVF_RETURN_IF_ERROR(read_special_id(file, special, vocabulary));
  }
  KVF_RETURN_IF_ERROR(read_flag(file, "tokenizer.ggml.add_bos_token", vocabulary.add_bos));
  KVF_RETURN_IF_ERROR(read_flag(file, "tokenizer.ggml.add_eos_token", vocabulary.add_eos));
  KVF_RETURN_IF_ERROR(
      read_flag(file, "tokenizer.ggml.add_space_prefix", vocabulary.add_space_prefix));
  return vocabulary;
}

}  // namespace

Result<Vocabulary> load_vocabulary(const gguf::GgufFile& file) {
  Result<Vocabulary> vocabulary = read_vocabulary(file);
  if (!vocabulary.ok()) return vocabulary.status().with_context("reading GGUF tokenizer");
  return vocabulary;
}

}  // namespace kvforge::tokenizer
