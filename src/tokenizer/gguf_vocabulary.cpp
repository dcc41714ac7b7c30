// load_vocabulary: the tokenizer.ggml.* GGUF keys -> Vocabulary. Kept apart
// from vocabulary.cpp so that code building vocabularies by hand does not
// link the GGUF reader.
#include <fmt/format.h>

#include "gguf/gguf.h"
#include "tokenizer/vocabulary.h"

namespace kvforge::tokenizer {
namespace {

// Token ids are stored as uint32 by most writers; some store int32 with -1
// meaning "none", which we read as absent.
Result<std::optional<TokenId>> find_token_id(const gguf::GgufFile& file, std::string_view key) {
  if (file.find(key) == nullptr) return std::optional<TokenId>();
  KVF_ASSIGN_OR_RETURN(const int64_t id, file.get_int(key));
  if (id < 0) return std::optional<TokenId>();
  if (id > INT32_MAX) return corrupt(fmt::format("{} = {} does not fit a token id", key, id));
  return std::optional<TokenId>(static_cast<TokenId>(id));
}

Status read_token_id(const gguf::GgufFile& file, std::string_view key, std::optional<TokenId>& id) {
  KVF_ASSIGN_OR_RETURN(id, find_token_id(file, key));
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
  KVF_RETURN_IF_ERROR(read_token_id(file, "tokenizer.ggml.bos_token_id", vocabulary.bos_id));
  KVF_RETURN_IF_ERROR(read_token_id(file, "tokenizer.ggml.eos_token_id", vocabulary.eos_id));
  KVF_RETURN_IF_ERROR(
      read_token_id(file, "tokenizer.ggml.unknown_token_id", vocabulary.unknown_id));
  KVF_RETURN_IF_ERROR(
      read_token_id(file, "tokenizer.ggml.padding_token_id", vocabulary.padding_id));
  KVF_RETURN_IF_ERROR(read_token_id(file, "tokenizer.ggml.eot_token_id", vocabulary.eot_id));
  KVF_RETURN_IF_ERROR(read_token_id(file, "tokenizer.ggml.eom_token_id", vocabulary.eom_id));
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
