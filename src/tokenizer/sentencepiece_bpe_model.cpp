// SentencePiece-style BPE (tokenizer.ggml.model = "llama").
//
// Algorithm (SentencePiece's BPE model, as used by Llama 1/2, Mistral,
// Phi-3, llama2.c): spaces become U+2581 "▁", optionally with one "▁" in
// front of the text (the dummy prefix); the text starts as one symbol per
// code point; then, repeatedly, of all adjacent symbol pairs whose
// concatenation is a vocabulary piece, the pair whose piece has the highest
// score is merged (leftmost first on ties). Symbols that end up not being
// pieces are spelled with byte-fallback tokens <0xHH>, or the unknown token
// when the vocabulary has none.
//
// The pairs live in a priority queue and the symbols in a doubly linked list
// over the text, so encoding n code points costs O(n log n).
#include <array>
#include <queue>
#include <unordered_map>

#include "tokenizer/subword_model.h"
#include "tokenizer/utf8.h"

namespace kvforge::tokenizer {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// "<0xHH>" -> HH, or -1.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    value <<= 4;
    if (c >= '0' && c <= '9') {
      value |= c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value |= c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      value |= c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

class SentencePieceBpeModel final : public SubwordModel {
 public:
  explicit SentencePieceBpeModel(const Vocabulary& vocabulary) : vocabulary_(vocabulary) {
    byte_token_.fill(-1);
    const size_t n_tokens = vocabulary.tokens.size();
    piece_ids_.reserve(n_tokens);
    for (size_t i = 0; i < n_tokens; ++i) {
      const auto id = static_cast<TokenId>(i);
      const std::string& text = vocabulary.tokens[i];
      const TokenType type = type_of(id);
      if (type == TokenType::kByte || (vocabulary.types.empty() && parse_byte_token(text) >= 0)) {
        const int byte = parse_byte_token(text);
        if (byte >= 0 && byte_token_[byte] < 0) byte_token_[byte] = id;
        continue;
      }
      if (type == TokenType::kUnknown && unknown_id_ < 0) unknown_id_ = id;
      // Control, unknown and unused pieces are never produced from text.
      if (type == TokenType::kNormal || type == TokenType::kUserDefined ||
          type == TokenType::kUndefined) {
        piece_ids_.emplace(text, id);  // the first of duplicate pieces wins
      }
    }
    if (vocabulary.unknown_id.has_value()) unknown_id_ = *vocabulary.unknown_id;
    add_space_prefix_ = vocabulary.add_space_prefix.value_or(true);
  }

  void encode_fragment(std::string_view fragment, bool starts_text,
                       std::vector<TokenId>& ids) const override {
    std::string text;
    text.reserve(fragment.size() + 8);
    if (add_space_prefix_ && starts_text) text += kSpaceMarker;
    for (char c : fragment) {
      if (c == ' ') {
        text += kSpaceMarker;
      } else {
        text.push_back(c);
      }
    }
    if (text.empty()) return;

    // Symbols form a linked list over `text`; a merged-away symbol has length 0.
    std::vector<Symbol> symbols;
    symbols.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      const size_t length = utf8_unit_length(text, pos);
      const auto index = static_cast<int32_t>(symbols.size());
      symbols.push_back(
          {static_cast<uint32_t>(pos), static_cast<uint32_t>(length), index - 1, index + 1});
      pos += length;
    }
    symbols.back().next = -1;

    std::priority_queue<Candidate> queue;
    auto consider_pair = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const uint32_t size = symbols[left].length + symbols[right].length;
      const auto it = piece_ids_.find(std::string_view(text).substr(symbols[left].start, size));
      if (it == piece_ids_.end()) return;
      queue.push({score_of(it->second), left, size});
    };
    for (size_t i = 1; i < symbols.size(); ++i) {
      consider_pair(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    }

    while (!queue.empty()) {
      const Candidate candidate = queue.top();
      queue.pop();
      Symbol& left = symbols[candidate.left];
      // Stale: one side was merged into something else since it was queued.
      if (left.length == 0 || left.next < 0) continue;
      Symbol& right = symbols[left.next];
      if (left.length + right.length != candidate.size) continue;
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (left.next >= 0) symbols[left.next].prev = candidate.left;
      consider_pair(left.prev, candidate.left);
      consider_pair(candidate.left, left.next);
    }

    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
      const std::string_view piece =
          std::string_view(text).substr(symbols[i].start, symbols[i].length);
      const auto it = piece_ids_.find(piece);
      if (it != piece_ids_.end()) {
        ids.push_back(it->second);
        continue;
      }
      for (char c : piece) {
        const TokenId byte_id = byte_token_[static_cast<uint8_t>(c)];
        if (byte_id >= 0) {
          ids.push_back(byte_id);
        } else if (unknown_id_ >= 0) {
          ids.push_back(unknown_id_);
          break;  // one unknown token stands for the whole symbol
        }
      }
    }
  }

  void append_piece(TokenId id, std::string& out) const override {
    const std::string& text = vocabulary_.tokens[id];
    if (type_of(id) == TokenType::kByte ||
        (vocabulary_.types.empty() && parse_byte_token(text) >= 0)) {
      const int byte = parse_byte_token(text);
      if (byte >= 0) {
        out.push_back(static_cast<char>(byte));
        return;
      }
    }
    for (size_t pos = 0; pos < text.size();) {
      if (std::string_view(text).substr(pos, kSpaceMarker.size()) == kSpaceMarker) {
        out.push_back(' ');
        pos += kSpaceMarker.size();
      } else {
        out.push_back(text[pos++]);
      }
    }
  }

  [[nodiscard]] bool adds_bos_by_default() const override { return true; }
  [[nodiscard]] bool adds_space_prefix() const override { return add_space_prefix_; }

 private:
  struct Symbol {
    uint32_t start;   // byte offset in the escaped text
    uint32_t length;  // bytes; 0 once merged into the symbol on its left
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    float score;
    int32_t left;   // index of the left symbol
    uint32_t size;  // bytes of the merged piece, to detect stale entries
    // priority_queue pops the largest: highest score, then leftmost.
    bool operator<(const Candidate& other) const {
      if (score != other.score) return score < other.score;
      return left > other.left;
    }
  };

  [[nodiscard]] TokenType type_of(TokenId id) const {
    return vocabulary_.types.empty() ? TokenType::kNormal : vocabulary_.types[id];
  }
  [[nodiscard]] float score_of(TokenId id) const {
    return vocabulary_.scores.empty() ? 0.0f : vocabulary_.scores[id];
  }

  const Vocabulary& vocabulary_;
  std::unordered_map<std::string_view, TokenId> piece_ids_;
  std::array<TokenId, 256> byte_token_;
  TokenId unknown_id_ = -1;
  bool add_space_prefix_ = true;
};

}  // namespace

Result<std::unique_ptr<SubwordModel>> create_sentencepiece_bpe_model(const Vocabulary& vocabulary) {
  return std::unique_ptr<SubwordModel>(std::make_unique<SentencePieceBpeModel>(vocabulary));
}

}  // namespace kvforge::tokenizer
