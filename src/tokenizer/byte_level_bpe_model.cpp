// Byte-level BPE (tokenizer.ggml.model = "gpt2": GPT-2, Llama 3, Qwen2,
// DeepSeek, Falcon, MPT, StarCoder, ...).
//
// Algorithm (OpenAI's GPT-2 encoder, Hugging Face tokenizers' BPE model):
// the pre-tokenizer named by tokenizer.ggml.pre splits the text into words;
// each byte of a word becomes the token for its printable stand-in code point
// (byte_unicode_map.h); then, repeatedly, the adjacent pair with the lowest
// merge rank (position in tokenizer.ggml.merges) is merged, leftmost first on
// ties, until no listed merge applies.
//
// Merges are looked up by the ids of the two parts, so merging allocates
// nothing; the pairs live in a priority queue over a linked list of symbols.
#include <array>
#include <queue>
#include <unordered_map>

#include <fmt/format.h>

#include "tokenizer/byte_unicode_map.h"
#include "tokenizer/pre_tokenizer_registry.h"
#include "tokenizer/regex_splitter.h"
#include "tokenizer/subword_model.h"
#include "tokenizer/utf8.h"

namespace kvforge::tokenizer {
namespace {

struct MergeResult {
  int32_t rank;
  TokenId merged_id;
};

uint64_t pair_key(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

class ByteLevelBpeModel final : public SubwordModel {
 public:
  ByteLevelBpeModel(const Vocabulary& vocabulary, std::unique_ptr<RegexSplitter> splitter,
                    bool ignore_merges)
      : vocabulary_(vocabulary), splitter_(std::move(splitter)), ignore_merges_(ignore_merges) {}

  Status build() {
    const size_t n_tokens = vocabulary_.tokens.size();
    token_ids_.reserve(n_tokens);
    for (size_t i = 0; i < n_tokens; ++i) {
      token_ids_.emplace(vocabulary_.tokens[i], static_cast<TokenId>(i));
    }
    for (int byte = 0; byte < 256; ++byte) {
      const auto it = token_ids_.find(byte_to_unicode_text(static_cast<uint8_t>(byte)));
      byte_token_[byte] = it == token_ids_.end() ? -1 : it->second;
    }

    merges_.reserve(vocabulary_.merges.size());
    for (size_t rank = 0; rank < vocabulary_.merges.size(); ++rank) {
      const std::string_view merge = vocabulary_.merges[rank];
      const size_t space = merge.find(' ');
      if (space == std::string_view::npos || space == 0 || space + 1 == merge.size()) {
        return corrupt(fmt::format("tokenizer merge {} '{}' is not two pieces separated by a space",
                                   rank, merge));
      }
      const std::string_view left = merge.substr(0, space);
      const std::string_view right = merge.substr(space + 1);
      const auto left_it = token_ids_.find(left);
      const auto right_it = token_ids_.find(right);
      std::string merged(left);
      merged += right;
      const auto merged_it = token_ids_.find(merged);
      // A merge whose parts or result are not tokens can never be used.
      if (left_it == token_ids_.end() || right_it == token_ids_.end() ||
          merged_it == token_ids_.end()) {
        continue;
      }
      merges_.emplace(pair_key(left_it->second, right_it->second),
                      MergeResult{static_cast<int32_t>(rank), merged_it->second});
    }
    return Status::ok_status();
  }

  void encode_fragment(std::string_view text, bool /*starts_text*/,
                       std::vector<TokenId>& ids) const override {
    std::vector<std::string_view> words;
    splitter_->split(text, words);
    WordScratch scratch;
    for (std::string_view word : words) encode_word(word, scratch, ids);
  }

  void append_piece(TokenId id, std::string& out) const override {
    const std::string& text = vocabulary_.tokens[id];
    for (size_t pos = 0; pos < text.size();) {
      const size_t length = utf8_unit_length(text, pos);
      const std::optional<uint8_t> byte =
          length == 1 && static_cast<unsigned char>(text[pos]) >= 0x80
              ? std::nullopt
              : unicode_to_byte(decode_utf8_unit(text, pos, length));
      if (byte.has_value()) {
        out.push_back(static_cast<char>(*byte));
      } else {
        out.append(text, pos, length);  // not a byte stand-in: keep as written
      }
      pos += length;
    }
  }

  [[nodiscard]] bool adds_bos_by_default() const override { return false; }
  [[nodiscard]] bool adds_space_prefix() const override { return false; }

 private:
  struct Symbol {
    TokenId id;  // -1: a byte without a token; kMerged: absorbed by its left neighbour
    int32_t prev;
    int32_t next;
  };
  static constexpr TokenId kMerged = -2;

  struct Candidate {
    int32_t rank;
    int32_t left;
    TokenId left_id;
    TokenId right_id;
    TokenId merged_id;
    // priority_queue pops the largest: lowest rank, then leftmost.
    bool operator<(const Candidate& other) const {
      if (rank != other.rank) return rank > other.rank;
      return left > other.left;
    }
  };

  // Buffers reused across the words of one call.
  struct WordScratch {
    std::vector<Symbol> symbols;
    std::vector<Candidate> queue_storage;
    std::string mapped;
  };

  void encode_word(std::string_view word, WordScratch& scratch, std::vector<TokenId>& ids) const {
    if (ignore_merges_) {
      scratch.mapped.clear();
      append_bytes_as_unicode(word, scratch.mapped);
      const auto it = token_ids_.find(scratch.mapped);
      if (it != token_ids_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    auto& symbols = scratch.symbols;
    symbols.clear();
    for (size_t i = 0; i < word.size(); ++i) {
      const auto index = static_cast<int32_t>(i);
      symbols.push_back({byte_token_[static_cast<uint8_t>(word[i])], index - 1, index + 1});
    }
    symbols.back().next = -1;

    scratch.queue_storage.clear();
    std::priority_queue<Candidate> queue(std::less<Candidate>(), std::move(scratch.queue_storage));
    auto consider_pair = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const TokenId left_id = symbols[left].id;
      const TokenId right_id = symbols[right].id;
      if (left_id < 0 || right_id < 0) return;
      const auto it = merges_.find(pair_key(left_id, right_id));
      if (it == merges_.end()) return;
      queue.push({it->second.rank, left, left_id, right_id, it->second.merged_id});
    };
    for (size_t i = 1; i < symbols.size(); ++i) {
      consider_pair(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    }
    while (!queue.empty()) {
      const Candidate candidate = queue.top();
      queue.pop();
      Symbol& left = symbols[candidate.left];
      // Stale: either side changed since the pair was queued.
      if (left.id != candidate.left_id || left.next < 0) continue;
      Symbol& right = symbols[left.next];
      if (right.id != candidate.right_id) continue;
      left.id = candidate.merged_id;
      right.id = kMerged;
      left.next = right.next;
      if (left.next >= 0) symbols[left.next].prev = candidate.left;
      consider_pair(left.prev, candidate.left);
      consider_pair(candidate.left, left.next);
    }
    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
      // A byte the vocabulary cannot spell is dropped: the unknown id of
      // these vocabularies is often a control token such as <|endoftext|>,
      // which would end the text for the model.
      if (symbols[i].id >= 0) ids.push_back(symbols[i].id);
    }
  }

  const Vocabulary& vocabulary_;
  std::unique_ptr<RegexSplitter> splitter_;
  bool ignore_merges_;
  std::unordered_map<std::string_view, TokenId> token_ids_;  // first of duplicates wins
  std::unordered_map<uint64_t, MergeResult> merges_;
  std::array<TokenId, 256> byte_token_{};
};

}  // namespace

Result<std::unique_ptr<SubwordModel>> create_byte_level_bpe_model(const Vocabulary& vocabulary) {
  if (vocabulary.merges.empty()) {
    return corrupt("byte-level BPE tokenizer has no merges (tokenizer.ggml.merges)");
  }
  KVF_ASSIGN_OR_RETURN(const PreTokenizerSpec spec, find_pre_tokenizer(vocabulary.pre));
  KVF_ASSIGN_OR_RETURN(std::unique_ptr<RegexSplitter> splitter,
                       RegexSplitter::create(spec.patterns));
  auto model =
      std::make_unique<ByteLevelBpeModel>(vocabulary, std::move(splitter), spec.ignore_merges);
  KVF_RETURN_IF_ERROR(model->build());
  return std::unique_ptr<SubwordModel>(std::move(model));
}

}  // namespace kvforge::tokenizer
