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
// over the text, so encoding n code points costs O(n log n); the text is
// first cut where no piece can span two neighbouring code points, which
// keeps the queues small without changing the result.
#include <algorithm>
#include <array>
#include <unordered_map>
#include <unordered_set>

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
    for (const auto& [piece, id] : piece_ids_) {
      uint64_t previous_unit = 0;
      for (size_t pos = 0; pos < piece.size();) {
        const size_t length = utf8_unit_length(piece, pos);
        const uint64_t unit = unit_key(piece, pos, length);
        if (pos > 0) adjacent_units_.insert((previous_unit << 32) | unit);
        previous_unit = unit;
        pos += length;
      }
    }
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

    // Cut the text where no piece can span the boundary (see
    // adjacent_units_): merges on either side never interact, so each
    // segment is merged on its own with a small queue.
    Scratch scratch;
    size_t segment_start = 0;
    uint64_t previous_unit = 0;
    for (size_t pos = 0; pos < text.size();) {
      const size_t length = utf8_unit_length(text, pos);
      const uint64_t unit = unit_key(text, pos, length);
      if (pos > segment_start && !adjacent_units_.contains((previous_unit << 32) | unit)) {
        encode_segment(std::string_view(text).substr(segment_start, pos - segment_start), scratch,
                       ids);
        segment_start = pos;
      }
      previous_unit = unit;
      pos += length;
    }
    encode_segment(std::string_view(text).substr(segment_start), scratch, ids);
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

  // Buffers reused across the segments of one call.
  struct Scratch {
    std::vector<Symbol> symbols;
    std::vector<Candidate> queue;
  };

  // A code point, or 0x80000000 | byte for a byte outside valid UTF-8.
  static uint64_t unit_key(std::string_view text, size_t pos, size_t length) {
    if (length == 1 && static_cast<unsigned char>(text[pos]) >= 0x80) {
      return 0x80000000u | static_cast<unsigned char>(text[pos]);
    }
    return decode_utf8_unit(text, pos, length);
  }

  // Merges one segment of escaped text and appends its ids.
  void encode_segment(std::string_view text, Scratch& scratch, std::vector<TokenId>& ids) const {
    // Symbols form a linked list over `text`; a merged-away symbol has length 0.
    std::vector<Symbol>& symbols = scratch.symbols;
    symbols.clear();
    for (size_t pos = 0; pos < text.size();) {
      const size_t length = utf8_unit_length(text, pos);
      const auto index = static_cast<int32_t>(symbols.size());
      symbols.push_back(
          {static_cast<uint32_t>(pos), static_cast<uint32_t>(length), index - 1, index + 1});
      pos += length;
    }
    symbols.back().next = -1;

    // A max-heap on (score, leftmost) kept in a reused vector.
    std::vector<Candidate>& queue = scratch.queue;
    queue.clear();
    auto consider_pair = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const uint32_t size = symbols[left].length + symbols[right].length;
      const auto it = piece_ids_.find(text.substr(symbols[left].start, size));
      if (it == piece_ids_.end()) return;
      queue.push_back({score_of(it->second), left, size});
      std::push_heap(queue.begin(), queue.end());
    };
    for (size_t i = 1; i < symbols.size(); ++i) {
      consider_pair(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    }

    while (!queue.empty()) {
      std::pop_heap(queue.begin(), queue.end());
      const Candidate candidate = queue.back();
      queue.pop_back();
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
      const std::string_view piece = text.substr(symbols[i].start, symbols[i].length);
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

  [[nodiscard]] TokenType type_of(TokenId id) const {
    return vocabulary_.types.empty() ? TokenType::kNormal : vocabulary_.types[id];
  }
  [[nodiscard]] float score_of(TokenId id) const {
    return vocabulary_.scores.empty() ? 0.0f : vocabulary_.scores[id];
  }

  const Vocabulary& vocabulary_;
  std::unordered_map<std::string_view, TokenId> piece_ids_;
  // Every pair of adjacent units (code points) inside some piece, as
  // (first << 32) | second. Where two neighbouring units of the text are not
  // such a pair, no piece can span them.
  std::unordered_set<uint64_t> adjacent_units_;
  std::array<TokenId, 256> byte_token_;
  TokenId unknown_id_ = -1;
  bool add_space_prefix_ = true;
};

}  // namespace

Result<std::unique_ptr<SubwordModel>> create_sentencepiece_bpe_model(const Vocabulary& vocabulary) {
  return std::unique_ptr<SubwordModel>(std::make_unique<SentencePieceBpeModel>(vocabulary));
}

}  // namespace kvforge::tokenizer
