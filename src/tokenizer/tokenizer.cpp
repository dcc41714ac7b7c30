#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>

#include "tokenizer/subword_model.h"

namespace kvforge::tokenizer {
namespace {

// Control tokens that end a turn in common chat templates. Many GGUF files
// carry no tokenizer.ggml.eot_token_id, so generation would otherwise run
// past the end of the answer.
constexpr std::array<std::string_view, 8> kEndOfTurnTexts = {
    "<|eot_id|>",    "<|im_end|>", "<|end|>", "<end_of_turn>",
    "<|endoftext|>", "<EOT>",      "<|EOT|>", "<|eom_id|>",
};

}  // namespace

Tokenizer::Tokenizer(Vocabulary vocabulary) : vocabulary_(std::move(vocabulary)) {}
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_vocabulary(Vocabulary vocabulary) {
  KVF_RETURN_IF_ERROR(validate_vocabulary(vocabulary));
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer(std::move(vocabulary)));
  KVF_RETURN_IF_ERROR(tokenizer->initialize());
  return tokenizer;
}

Status Tokenizer::initialize() {
  // The model keeps references into vocabulary_, which never moves again.
  KVF_ASSIGN_OR_RETURN(model_, create_subword_model(vocabulary_));
  add_bos_ = vocabulary_.add_bos.value_or(model_->adds_bos_by_default());
  add_eos_ = vocabulary_.add_eos.value_or(false);

  for (TokenId id = 0; id < n_vocab(); ++id) {
    const TokenType type = token_type(id);
    const std::string& text = vocabulary_.tokens[id];
    if (type == TokenType::kUserDefined) {
      special_tokens_.add(text, id, /*always_matched=*/true);
    } else if (type == TokenType::kControl || type == TokenType::kUnknown) {
      special_tokens_.add(text, id, /*always_matched=*/false);
    }
    if (type == TokenType::kControl &&
        std::find(kEndOfTurnTexts.begin(), kEndOfTurnTexts.end(), text) != kEndOfTurnTexts.end()) {
      end_of_generation_ids_.push_back(id);
    }
  }
  for (const auto& id : {vocabulary_.eos_id, vocabulary_.eot_id, vocabulary_.eom_id}) {
    if (id.has_value()) end_of_generation_ids_.push_back(*id);
  }
  std::sort(end_of_generation_ids_.begin(), end_of_generation_ids_.end());
  end_of_generation_ids_.erase(
      std::unique(end_of_generation_ids_.begin(), end_of_generation_ids_.end()),
      end_of_generation_ids_.end());
  return Status::ok_status();
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_special && add_bos_ && vocabulary_.bos_id.has_value()) {
    ids.push_back(*vocabulary_.bos_id);
  }
  std::vector<TextFragment> fragments;
  special_tokens_.split(text, parse_special, fragments);
  bool starts_text = true;
  for (const TextFragment& fragment : fragments) {
    if (fragment.is_special()) {
      ids.push_back(fragment.special_id);
      starts_text = true;
    } else {
      model_->encode_fragment(fragment.text, starts_text, ids);
      starts_text = false;
    }
  }
  if (add_special && add_eos_ && vocabulary_.eos_id.has_value()) {
    ids.push_back(*vocabulary_.eos_id);
  }
  return ids;
}

std::string Tokenizer::token_to_piece(TokenId id) const {
  std::string piece;
  if (!contains(id)) return piece;
  switch (token_type(id)) {
    case TokenType::kNormal:
    case TokenType::kUndefined:
    case TokenType::kByte:
      model_->append_piece(id, piece);
      break;
    default:  // control, unknown, unused and user-defined tokens: their text
      piece = vocabulary_.tokens[id];
      break;
  }
  return piece;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special) const {
  std::string text;
  // Mirrors encode(): the dummy prefix sits at the start of the text and
  // after each special token.
  bool starts_text = true;
  const bool strip_prefix = model_->adds_space_prefix();
  for (const TokenId id : ids) {
    if (!contains(id)) continue;
    const TokenType type = token_type(id);
    const bool is_special = type == TokenType::kControl || type == TokenType::kUnknown ||
                            type == TokenType::kUnused || type == TokenType::kUserDefined;
    if (is_special) {
      if (!skip_special || type == TokenType::kUserDefined) text += vocabulary_.tokens[id];
      starts_text = true;
      continue;
    }
    const size_t piece_start = text.size();
    model_->append_piece(id, text);
    if (starts_text && strip_prefix && text.size() > piece_start && text[piece_start] == ' ') {
      text.erase(piece_start, 1);
    }
    starts_text = false;
  }
  return text;
}

bool Tokenizer::is_end_of_generation(TokenId id) const {
  return std::binary_search(end_of_generation_ids_.begin(), end_of_generation_ids_.end(), id);
}

std::string_view Tokenizer::token_text(TokenId id) const {
  return contains(id) ? std::string_view(vocabulary_.tokens[id]) : std::string_view();
}

TokenType Tokenizer::token_type(TokenId id) const {
  if (!contains(id)) return TokenType::kUndefined;
  return vocabulary_.types.empty() ? TokenType::kNormal : vocabulary_.types[id];
}

float Tokenizer::token_score(TokenId id) const {
  if (!contains(id) || vocabulary_.scores.empty()) return 0.0f;
  return vocabulary_.scores[id];
}

}  // namespace kvforge::tokenizer
