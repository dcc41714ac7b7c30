#include "tokenizer/vocabulary.h"

#include <fmt/format.h>

namespace kvforge::tokenizer {
namespace {

Status check_special_id(const Vocabulary& vocabulary, const std::optional<TokenId>& id,
                        std::string_view name) {
  if (!id.has_value()) return Status::ok_status();
  if (*id < 0 || static_cast<size_t>(*id) >= vocabulary.tokens.size()) {
    return corrupt(fmt::format("tokenizer {} id {} is outside the vocabulary of {} tokens", name,
                               *id, vocabulary.tokens.size()));
  }
  return Status::ok_status();
}

}  // namespace

Status validate_vocabulary(const Vocabulary& vocabulary) {
  if (vocabulary.model.empty()) return invalid_argument("tokenizer model name is empty");
  if (vocabulary.tokens.empty()) return corrupt("tokenizer has no tokens");
  // Ids are int32 throughout the engine.
  if (vocabulary.tokens.size() > static_cast<size_t>(INT32_MAX)) {
    return corrupt(fmt::format("tokenizer has {} tokens, more than int32 ids can address",
                               vocabulary.tokens.size()));
  }
  if (!vocabulary.scores.empty() && vocabulary.scores.size() != vocabulary.tokens.size()) {
    return corrupt(fmt::format("tokenizer has {} scores for {} tokens", vocabulary.scores.size(),
                               vocabulary.tokens.size()));
  }
  if (!vocabulary.types.empty() && vocabulary.types.size() != vocabulary.tokens.size()) {
    return corrupt(fmt::format("tokenizer has {} token types for {} tokens",
                               vocabulary.types.size(), vocabulary.tokens.size()));
  }
  for (size_t i = 0; i < vocabulary.types.size(); ++i) {
    const auto type = static_cast<int32_t>(vocabulary.types[i]);
    if (type < static_cast<int32_t>(TokenType::kUndefined) ||
        type > static_cast<int32_t>(TokenType::kByte)) {
      return corrupt(fmt::format("token {} has unknown token type {}", i, type));
    }
  }
  KVF_RETURN_IF_ERROR(check_special_id(vocabulary, vocabulary.bos_id, "bos"));
  KVF_RETURN_IF_ERROR(check_special_id(vocabulary, vocabulary.eos_id, "eos"));
  KVF_RETURN_IF_ERROR(check_special_id(vocabulary, vocabulary.unknown_id, "unknown"));
  KVF_RETURN_IF_ERROR(check_special_id(vocabulary, vocabulary.padding_id, "padding"));
  KVF_RETURN_IF_ERROR(check_special_id(vocabulary, vocabulary.eot_id, "eot"));
  KVF_RETURN_IF_ERROR(check_special_id(vocabulary, vocabulary.eom_id, "eom"));
  return Status::ok_status();
}

}  // namespace kvforge::tokenizer
