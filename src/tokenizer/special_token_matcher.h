// SpecialTokenMatcher: finds control and user-defined tokens written out in
// text, before the subword model sees it.
//
// Matching is leftmost-longest over all registered token texts (a byte trie),
// which is how the Hugging Face tokenizers library matches its "added tokens".
// User-defined tokens are always matched; control (and unknown) tokens only
// when the caller asks for it (parse_special). The matcher owns its trie;
// split() is const and thread-safe.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/vocabulary.h"

namespace kvforge::tokenizer {

// A piece of the input: either raw text for the subword model
// (special_id < 0) or one matched special token.
struct TextFragment {
  std::string_view text;
  TokenId special_id = -1;

  [[nodiscard]] bool is_special() const { return special_id >= 0; }
};

class SpecialTokenMatcher {
 public:
  // Registers a token. Empty texts are ignored; when two tokens share a
  // text the first one registered wins.
  void add(std::string_view text, TokenId id, bool always_matched);

  // Appends the fragments of `text` to `fragments`, in order; together they
  // cover text exactly. Empty raw fragments are not emitted.
  void split(std::string_view text, bool match_control, std::vector<TextFragment>& fragments) const;

  [[nodiscard]] bool empty() const { return nodes_.size() <= 1; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> children;  // sorted by byte
    TokenId id = -1;
    bool always_matched = false;
  };

  [[nodiscard]] uint32_t find_child(uint32_t node, uint8_t byte) const;
  // Length of the longest eligible token starting at text[pos], 0 if none.
  [[nodiscard]] size_t longest_match(std::string_view text, size_t pos, bool match_control,
                                     TokenId& id) const;

  std::vector<Node> nodes_ = std::vector<Node>(1);  // nodes_[0] is the root
};

}  // namespace kvforge::tokenizer
