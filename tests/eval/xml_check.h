// A small, strict XML reader for tests of the SVG writers: it accepts a
// prolog, comments, elements with quoted attributes, character data and the
// five predefined entities plus numeric character references, and rejects
// what XML 1.0 forbids in those (mismatched or unclosed tags, a raw '<' or
// '&' in text or attribute values, unquoted or duplicate attributes, more
// than one root, text outside the root). Written independently of the
// writers under test. Not a general-purpose parser (no DTD, no CDATA).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvforge::testing {

struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::string text;  // character data directly inside, entities resolved
  std::vector<std::unique_ptr<XmlNode>> children;

  [[nodiscard]] std::string attribute(const std::string& key) const {
    auto it = attributes.find(key);
    return it == attributes.end() ? std::string() : it->second;
  }
  // Every node below (and including) this one, in document order.
  void collect(std::vector<const XmlNode*>& out) const {
    out.push_back(this);
    for (const auto& c : children) c->collect(out);
  }
  [[nodiscard]] std::vector<const XmlNode*> all() const {
    std::vector<const XmlNode*> out;
    collect(out);
    return out;
  }
  // Nodes below with this class attribute.
  [[nodiscard]] std::vector<const XmlNode*> with_class(const std::string& cls) const {
    std::vector<const XmlNode*> out;
    for (const XmlNode* n : all()) {
      if (n->attribute("class") == cls) out.push_back(n);
    }
    return out;
  }
};

class XmlReader {
 public:
  // The root element, or nullopt with error() saying why.
  static std::unique_ptr<XmlNode> parse(std::string_view text, std::string* error) {
    XmlReader r(text);
    auto root = r.document();
    if (!root && error) *error = r.error_ + " at offset " + std::to_string(r.pos_);
    return root;
  }

 private:
  explicit XmlReader(std::string_view text) : s_(text) {}

  bool fail(const std::string& why) {
    if (error_.empty()) error_ = why;
    return false;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  bool starts(std::string_view p) const { return s_.substr(pos_).starts_with(p); }
  void skip_space() {
    while (!at_end() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  static bool name_char(char c, bool first) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    return first ? letter : letter || (c >= '0' && c <= '9') || c == '-' || c == '.';
  }
  bool name(std::string& out) {
    const size_t start = pos_;
    while (!at_end() && name_char(s_[pos_], pos_ == start)) ++pos_;
    out = std::string(s_.substr(start, pos_ - start));
    return !out.empty() || fail("expected a name");
  }
  // Skips comments and processing instructions; false on a malformed one.
  bool misc() {
    while (true) {
      skip_space();
      if (starts("<!--")) {
        const size_t end = s_.find("-->", pos_ + 4);
        if (end == std::string_view::npos) return fail("unclosed comment");
        pos_ = end + 3;
      } else if (starts("<?")) {
        const size_t end = s_.find("?>", pos_ + 2);
        if (end == std::string_view::npos) return fail("unclosed processing instruction");
        pos_ = end + 2;
      } else {
        return true;
      }
    }
  }
  // Character data up to `stop`, entities resolved.
  bool chars(char stop, std::string& out) {
    while (!at_end() && s_[pos_] != stop) {
      const char c = s_[pos_];
      if (c == '<') return fail("raw '<' in character data or attribute value");
      if (c == '&') {
        const size_t semi = s_.find(';', pos_);
        if (semi == std::string_view::npos) return fail("unterminated entity");
        const std::string_view ref = s_.substr(pos_ + 1, semi - pos_ - 1);
        static const std::map<std::string, char, std::less<>> kNamed = {
            {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
        if (auto it = kNamed.find(ref); it != kNamed.end()) {
          out += it->second;
        } else if (ref.starts_with("#x") || ref.starts_with("#")) {
          const bool hex = ref.starts_with("#x");
          const std::string digits(ref.substr(hex ? 2 : 1));
          if (digits.empty()) return fail("empty character reference");
          const unsigned long code = std::stoul(digits, nullptr, hex ? 16 : 10);
          if (code < 0x80) {
            out += static_cast<char>(code);
          } else {
            out += '?';  // tests use ASCII references only
          }
        } else {
          return fail("unknown entity &" + std::string(ref) + ";");
        }
        pos_ = semi + 1;
        continue;
      }
      out += c;
      ++pos_;
    }
    return true;
  }
  std::unique_ptr<XmlNode> element() {
    if (!starts("<")) return fail("expected '<'"), nullptr;
    ++pos_;
    auto node = std::make_unique<XmlNode>();
    if (!name(node->name)) return nullptr;
    while (true) {
      const size_t before = pos_;
      skip_space();
      if (starts("/>")) {
        pos_ += 2;
        return node;
      }
      if (starts(">")) {
        ++pos_;
        break;
      }
      if (pos_ == before) return fail("expected white space before an attribute"), nullptr;
      std::string key, value;
      if (!name(key)) return nullptr;
      skip_space();
      if (!starts("=")) return fail("attribute without '='"), nullptr;
      ++pos_;
      skip_space();
      if (at_end() || (s_[pos_] != '"' && s_[pos_] != '\'')) {
        return fail("unquoted attribute value"), nullptr;
      }
      const char quote = s_[pos_++];
      if (!chars(quote, value)) return nullptr;
      if (at_end()) return fail("unterminated attribute value"), nullptr;
      ++pos_;
      if (!node->attributes.emplace(key, value).second) {
        return fail("duplicate attribute " + key), nullptr;
      }
    }
    // Content.
    while (true) {
      if (!chars('<', node->text)) return nullptr;
      if (at_end()) return fail("unclosed element <" + node->name + ">"), nullptr;
      if (starts("</")) {
        pos_ += 2;
        std::string end_name;
        if (!name(end_name)) return nullptr;
        if (end_name != node->name) {
          return fail("</" + end_name + "> closes <" + node->name + ">"), nullptr;
        }
        skip_space();
        if (!starts(">")) return fail("expected '>'"), nullptr;
        ++pos_;
        return node;
      }
      if (starts("<!--") || starts("<?")) {
        if (!misc()) return nullptr;
        continue;
      }
      auto child = element();
      if (!child) return nullptr;
      node->children.push_back(std::move(child));
    }
  }
  std::unique_ptr<XmlNode> document() {
    if (!misc()) return nullptr;
    auto root = element();
    if (!root) return nullptr;
    if (!misc()) return nullptr;
    skip_space();
    if (!at_end()) return fail("content after the root element"), nullptr;
    return root;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace kvforge::testing
