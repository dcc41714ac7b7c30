// Chat templates: turning a chat request's messages into the prompt text
// the model was fine-tuned on.
//
// A GGUF file carries its template as a Jinja program
// (tokenizer.chat_template). Rather than interpret Jinja, we recognise the
// family a template belongs to by the markers it writes and render that
// family's format ourselves, reproducing the reference templates (whose
// texts and renderings are test data in tests/server/data/):
//
//   chatml   <|im_start|>ROLE\nCONTENT<|im_end|>\n ... <|im_start|>assistant\n
//            (Qwen2, Qwen3, OpenHermes; a default system message that the
//            template writes when the first message is not one is kept)
//   llama3   BOS <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> ...
//   llama2   BOS[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nUSER [/INST] ASSISTANT EOS ...
//   mistral  BOS[INST] USER [/INST]ASSISTANT EOS ... (v0.1's space after EOS
//            when the template writes one)
//   plain    "ROLE: CONTENT\n" per message, then "assistant:" — the fallback
//            for a model without a template or with one we do not recognise.
//
// Roles: "developer" is rendered as "system". llama2 and mistral need
// user/assistant turns alternating after an optional system message (their
// templates raise otherwise): a refusal names the message. mistral has no
// system role: a system message is put before the first user message,
// separated by a blank line.
//
// Immutable after construction; thread-safe.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "server/api_error.h"
#include "server/openai_request.h"

namespace kvforge::server {

enum class ChatFamily { kPlain, kChatml, kLlama2, kLlama3, kMistral };

// "plain", "chatml", ...
[[nodiscard]] std::string_view chat_family_name(ChatFamily family);
// The family a name selects (--chat-template), or nullopt.
[[nodiscard]] std::optional<ChatFamily> chat_family_from_name(std::string_view name);
// "chatml, llama2, llama3, mistral, plain"
[[nodiscard]] std::string chat_family_names();

// The family whose markers the Jinja source writes, or nullopt when it has
// none we know (or is empty).
[[nodiscard]] std::optional<ChatFamily> detect_chat_family(std::string_view jinja);

class ChatTemplate {
 public:
  // `jinja` is the model's template (may be empty): details such as a
  // default system message are read from it. bos/eos are the texts of the
  // model's BOS and EOS tokens.
  ChatTemplate(ChatFamily family, std::string_view jinja, std::string bos_text,
               std::string eos_text);

  [[nodiscard]] ChatFamily family() const { return family_; }
  [[nodiscard]] const std::string& default_system() const { return default_system_; }

  // The prompt for `messages`, ending where the assistant's reply begins. An
  // ApiError (param "messages[i].role") when the family cannot render them.
  [[nodiscard]] std::variant<std::string, ApiError> render(
      std::span<const ChatMessage> messages) const;

 private:
  ChatFamily family_;
  std::string bos_;
  std::string eos_;
  std::string default_system_;    // chatml
  bool space_after_eos_ = false;  // mistral v0.1
};

}  // namespace kvforge::server
