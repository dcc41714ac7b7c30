#include "server/chat_template.h"

#include <array>
#include <vector>

#include <fmt/format.h>

namespace kvforge::server {
namespace {

struct FamilyName {
  ChatFamily family;
  std::string_view name;
};
constexpr std::array<FamilyName, 5> kFamilies = {{{ChatFamily::kChatml, "chatml"},
                                                  {ChatFamily::kLlama2, "llama2"},
                                                  {ChatFamily::kLlama3, "llama3"},
                                                  {ChatFamily::kMistral, "mistral"},
                                                  {ChatFamily::kPlain, "plain"}}};

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Python's str.strip() and Jinja's trim: ASCII whitespace at both ends.
std::string_view strip(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\v\f";
  const size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  const size_t end = s.find_last_not_of(kSpace);
  return s.substr(begin, end - begin + 1);
}

std::string_view role_of(const ChatMessage& m) {
  return m.role == "developer" ? std::string_view("system") : std::string_view(m.role);
}

// A chatml template's default system message: the literal text it writes
// between "<|im_start|>system" + newline and "<|im_end|>" (Qwen2:
// "You are a helpful assistant"), unescaping "\n". Empty when the system
// text comes from the messages.
std::string default_system_message(std::string_view jinja) {
  constexpr std::string_view kStart = "<|im_start|>system";
  for (size_t at = jinja.find(kStart); at != std::string_view::npos;
       at = jinja.find(kStart, at + 1)) {
    std::string_view rest = jinja.substr(at + kStart.size());
    if (rest.starts_with("\\n")) {
      rest.remove_prefix(2);
    } else if (rest.starts_with("\n")) {
      rest.remove_prefix(1);
    } else {
      continue;
    }
    const size_t end = rest.find("<|im_end|>");
    const size_t quote = rest.find_first_of("'\"");
    if (end == std::string_view::npos || end == 0 ||
        (quote != std::string_view::npos && quote < end)) {
      continue;
    }
    std::string text;
    for (size_t i = 0; i < end; ++i) {
      if (rest[i] == '\\' && i + 1 < end && rest[i + 1] == 'n') {
        text += '\n';
        ++i;
      } else {
        text += rest[i];
      }
    }
    return text;
  }
  return {};
}

ApiError alternation_error(size_t index, ChatFamily family) {
  return invalid_request(
      fmt::format("messages[{}].role", index),
      fmt::format("messages[{}]: the {} chat template needs user and assistant messages "
                  "alternating, starting with user (after one optional system message)",
                  index, chat_family_name(family)),
      "invalid_value");
}

}  // namespace

std::string_view chat_family_name(ChatFamily family) {
  for (const FamilyName& f : kFamilies) {
    if (f.family == family) return f.name;
  }
  return "plain";
}

std::optional<ChatFamily> chat_family_from_name(std::string_view name) {
  for (const FamilyName& f : kFamilies) {
    if (f.name == name) return f.family;
  }
  return std::nullopt;
}

std::string chat_family_names() {
  std::string names;
  for (const FamilyName& f : kFamilies) names += (names.empty() ? "" : ", ") + std::string(f.name);
  return names;
}

std::optional<ChatFamily> detect_chat_family(std::string_view jinja) {
  if (contains(jinja, "<|im_start|>")) return ChatFamily::kChatml;
  if (contains(jinja, "<|start_header_id|>")) return ChatFamily::kLlama3;
  if (contains(jinja, "[INST]")) {
    return contains(jinja, "<<SYS>>") ? ChatFamily::kLlama2 : ChatFamily::kMistral;
  }
  return std::nullopt;
}

ChatTemplate::ChatTemplate(ChatFamily family, std::string_view jinja, std::string bos_text,
                           std::string eos_text)
    : family_(family), bos_(std::move(bos_text)), eos_(std::move(eos_text)) {
  if (family_ == ChatFamily::kChatml) default_system_ = default_system_message(jinja);
  if (family_ == ChatFamily::kMistral) {
    space_after_eos_ = contains(jinja, "eos_token + ' '") || contains(jinja, "eos_token + \" \"");
  }
}

std::variant<std::string, ApiError> ChatTemplate::render(
    std::span<const ChatMessage> messages) const {
  std::string out;
  switch (family_) {
    case ChatFamily::kPlain:
      for (const ChatMessage& m : messages) {
        out += fmt::format("{}: {}\n", role_of(m), m.content);
      }
      out += "assistant:";
      return out;
    case ChatFamily::kChatml:
      if (!default_system_.empty() && (messages.empty() || role_of(messages[0]) != "system")) {
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      }
      for (const ChatMessage& m : messages) {
        out += fmt::format("<|im_start|>{}\n{}<|im_end|>\n", role_of(m), m.content);
      }
      out += "<|im_start|>assistant\n";
      return out;
    case ChatFamily::kLlama3:
      out += bos_;
      for (const ChatMessage& m : messages) {
        out += fmt::format("<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>", role_of(m),
                           strip(m.content));
      }
      out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFamily::kLlama2:
    case ChatFamily::kMistral: {
      // An optional leading system message, then strictly alternating turns.
      size_t first = 0;
      std::string system;
      if (!messages.empty() && role_of(messages[0]) == "system") {
        system = messages[0].content;
        first = 1;
      }
      for (size_t i = first; i < messages.size(); ++i) {
        const bool user_turn = (i - first) % 2 == 0;
        if (messages[i].role != (user_turn ? "user" : "assistant")) {
          return alternation_error(i, family_);
        }
      }
      for (size_t i = first; i < messages.size(); ++i) {
        std::string content = messages[i].content;
        const bool user = messages[i].role == "user";
        if (i == first && first == 1) {
          content = family_ == ChatFamily::kLlama2
                        ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content
                        : system + "\n\n" + content;
        }
        if (family_ == ChatFamily::kLlama2) {
          out += user ? fmt::format("{}[INST] {} [/INST]", bos_, strip(content))
                      : fmt::format(" {} {}", strip(content), eos_);
        } else {
          if (i == first) out += bos_;
          out += user ? fmt::format("[INST] {} [/INST]", content)
                      : content + eos_ + (space_after_eos_ ? " " : "");
        }
      }
      if (messages.size() == first) {
        // Only a system message: a user turn of its own.
        const std::string content =
            family_ == ChatFamily::kLlama2 ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" : system;
        out += fmt::format("{}[INST] {} [/INST]", bos_,
                           family_ == ChatFamily::kLlama2 ? strip(content) : content);
      }
      return out;
    }
  }
  return out;
}

}  // namespace kvforge::server
