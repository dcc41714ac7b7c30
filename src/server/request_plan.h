// Planning a parsed request against the served model: the checks that need
// the model (its name, the tokenizer, the context size, press specs) and
// the engine parameters that follow from them.
//
// Completions tokenize the prompt as text (a "<s>" in it is text, not a
// control token) with the model's BOS; chat renders the messages with the
// chat template and tokenizes the result with control tokens parsed, and a
// BOS the template already wrote is not doubled. max_tokens defaults to 16
// for completions (as OpenAI's API) and to the rest of the context for chat;
// the prompt and max_tokens together must fit the context.
// Thread-safe (Engine's tokenizer methods are).
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "kvforge/engine.h"
#include "server/api_error.h"
#include "server/chat_template.h"
#include "server/openai_request.h"

namespace kvforge::server {

struct RequestPlan {
  RequestParams params;  // for every choice (seeds differ per choice)
  int32_t n = 1;
  std::vector<std::string> stop;
};

[[nodiscard]] std::variant<RequestPlan, ApiError> plan_request(const GenerationRequest& request,
                                                               const Engine& engine,
                                                               const ChatTemplate& chat_template,
                                                               const std::string& model_id);

}  // namespace kvforge::server
