// The JSON the server answers with, in OpenAI's field names and shapes:
// whole completions, streamed chunks (server-sent events), usage, the model
// list and error bodies. Pure functions over plain data; thread-safe.
//
//   completion  {"id", "object": "text_completion", "created", "model",
//                "choices": [{"index", "text", "logprobs": null, "finish_reason"}],
//                "usage": {...}}
//   chat        {"id", "object": "chat.completion", ...,
//                "choices": [{"index", "message": {"role": "assistant", "content"},
//                             "logprobs": null, "finish_reason"}], "usage": {...}}
//   chunks      "object": "text_completion" / "chat.completion.chunk", choices
//               carrying "text" / "delta"; finish_reason null until the last
//   usage       {"prompt_tokens", "completion_tokens", "total_tokens",
//                "kvforge": {"reused_prompt_tokens", "computed_prompt_tokens",
//                            "preemptions"}}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/api_error.h"
#include "server/openai_request.h"

namespace kvforge::server {

// What every response of one request shares.
struct ResponseHeader {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

struct UsageReport {
  int32_t prompt_tokens = 0;           // the prompt's length (once, whatever n)
  int32_t completion_tokens = 0;       // over all choices
  int32_t reused_prompt_tokens = 0;    // over all choices: taken from the prefix cache
  int32_t computed_prompt_tokens = 0;  // over all choices: prefilled
  int32_t preemptions = 0;
  // Over all choices, relay (multi-agent reuse): prompt tokens whose KV came
  // from an earlier output of the workflow, and of those the recomputed ones.
  int32_t relay_prompt_tokens = 0;
  int32_t relay_recomputed_tokens = 0;
};

struct ChoiceReport {
  int32_t index = 0;
  std::string text;
  std::string finish_reason;  // "stop", "length"
};

[[nodiscard]] std::string completion_json(const ResponseHeader& header,
                                          const std::vector<ChoiceReport>& choices,
                                          const UsageReport& usage);

// One streamed chunk for one choice. `text` is the new text; `first` makes a
// chat chunk carry the assistant role; a set finish_reason ends the choice.
// with_usage_null: the chunk carries "usage": null (stream_options.include_usage).
[[nodiscard]] std::string chunk_json(const ResponseHeader& header, int32_t index,
                                     std::string_view text, bool first,
                                     const std::optional<std::string>& finish_reason,
                                     bool with_usage_null);
// The last chunk with stream_options.include_usage: no choices, the usage.
[[nodiscard]] std::string usage_chunk_json(const ResponseHeader& header, const UsageReport& usage);

// "data: JSON\n\n"; sse_done() is "data: [DONE]\n\n".
[[nodiscard]] std::string sse_event(std::string_view json);
[[nodiscard]] std::string_view sse_done();

[[nodiscard]] std::string error_json(const ApiError& error);

[[nodiscard]] std::string models_json(const std::string& model_id, int64_t created);

}  // namespace kvforge::server
