// Parsing and validating the JSON body of POST /v1/completions and
// /v1/chat/completions into a GenerationRequest.
//
// The checks here need no model: JSON syntax, field types and ranges,
// unknown fields (refused, as OpenAI's API does, so that a misspelt option is
// not silently ignored), features we do not implement (logprobs, echo, tools:
// refused when asked for, accepted when null or off). Checks that need the
// model — the model name, the prompt's length against the context, token
// ids — happen when the request is planned (request_plan.h). Every refusal
// is an ApiError whose param names the field, e.g. "messages[2].content".
//
// Sampling defaults follow OpenAI's API, not the command line: temperature 1,
// top_p 1, top_k and min_p off, no repetition penalty (docs/serving.md).
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kvforge/sampling.h"
#include "server/api_error.h"

namespace kvforge::server {

enum class Endpoint { kCompletions, kChatCompletions };

struct ChatMessage {
  std::string role;  // system, developer, user or assistant
  std::string content;
};

// The "kvforge" extension object: per-request KV options (docs/serving.md).
struct RequestExtension {
  std::string cache_salt;  // prefix-cache isolation
  std::string press;       // a --press spec for this request's sequence
  std::string workflow;    // multi-agent hints
  std::string agent;
  int32_t next_use_steps = -1;  // -1: not given
};

struct RequestLimits {
  int32_t max_n = 16;                 // choices per request
  int32_t max_stop_sequences = 4;     // as OpenAI's API
  int32_t max_stop_bytes = 256;       // per stop sequence
  int32_t max_extension_bytes = 256;  // per kvforge string option
};

struct GenerationRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                // empty: not given
  std::string prompt;               // completions: the prompt text...
  std::vector<int32_t> prompt_ids;  // ...or its token ids (then prompt is empty)
  bool prompt_is_ids = false;
  std::vector<ChatMessage> messages;  // chat
  int32_t max_tokens = 0;             // 0: not given (request_plan.h picks the default)
  SamplingParams sampling;            // with the API's defaults
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool ignore_eos = false;     // keep generating past end-of-generation tokens
  std::vector<std::string> stop;
  RequestExtension kvforge;
};

using ParsedRequest = std::variant<GenerationRequest, ApiError>;

[[nodiscard]] ParsedRequest parse_generation_request(Endpoint endpoint, std::string_view body,
                                                     const RequestLimits& limits = {});

}  // namespace kvforge::server
