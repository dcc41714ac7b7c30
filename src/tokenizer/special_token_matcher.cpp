#include "tokenizer/special_token_matcher.h"

#include <algorithm>

namespace kvforge::tokenizer {
namespace {

constexpr uint32_t kNoNode = 0;  // the root is never anyone's child

}  // namespace

uint32_t SpecialTokenMatcher::find_child(uint32_t node, uint8_t byte) const {
  const auto& children = nodes_[node].children;
  auto it = std::lower_bound(children.begin(), children.end(), byte,
                             [](const auto& child, uint8_t b) { return child.first < b; });
  return (it != children.end() && it->first == byte) ? it->second : kNoNode;
}

void SpecialTokenMatcher::add(std::string_view text, TokenId id, bool always_matched) {
  if (text.empty()) return;
  uint32_t node = 0;
  for (char c : text) {
    const auto byte = static_cast<uint8_t>(c);
    uint32_t child = find_child(node, byte);
    if (child == kNoNode) {
      child = static_cast<uint32_t>(nodes_.size());
      nodes_.emplace_back();
      auto& children = nodes_[node].children;
      auto it = std::lower_bound(children.begin(), children.end(), byte,
                                 [](const auto& entry, uint8_t b) { return entry.first < b; });
      children.insert(it, {byte, child});
    }
    node = child;
  }
  if (nodes_[node].id < 0) {
    nodes_[node].id = id;
    nodes_[node].always_matched = always_matched;
  }
}

size_t SpecialTokenMatcher::longest_match(std::string_view text, size_t pos, bool match_control,
                                          TokenId& id) const {
  size_t best_length = 0;
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = find_child(node, static_cast<uint8_t>(text[i]));
    if (node == kNoNode) break;
    const Node& entry = nodes_[node];
    if (entry.id >= 0 && (entry.always_matched || match_control)) {
      best_length = i + 1 - pos;
      id = entry.id;
    }
  }
  return best_length;
}

void SpecialTokenMatcher::split(std::string_view text, bool match_control,
                                std::vector<TextFragment>& fragments) const {
  size_t raw_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    TokenId id = -1;
    const size_t length = empty() ? 0 : longest_match(text, pos, match_control, id);
    if (length == 0) {
      ++pos;
      continue;
    }
    if (pos > raw_start) fragments.push_back({text.substr(raw_start, pos - raw_start), -1});
    fragments.push_back({text.substr(pos, length), id});
    pos += length;
    raw_start = pos;
  }
  if (raw_start < text.size()) fragments.push_back({text.substr(raw_start), -1});
}

}  // namespace kvforge::tokenizer
