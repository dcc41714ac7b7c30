#include "server/openai_response.h"

#include <nlohmann/json.hpp>

namespace kvforge::server {
namespace {

using Json = nlohmann::ordered_json;

// Text is valid UTF-8 by construction (TextStream); replace anything else
// rather than throw.
std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool is_chat(const ResponseHeader& h) {
  return h.endpoint == Endpoint::kChatCompletions;
}

Json head(const ResponseHeader& h, const char* object) {
  Json j;
  j["id"] = h.id;
  j["object"] = object;
  j["created"] = h.created;
  j["model"] = h.model;
  return j;
}

Json usage(const UsageReport& u) {
  Json j;
  j["prompt_tokens"] = u.prompt_tokens;
  j["completion_tokens"] = u.completion_tokens;
  j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  Json ext;
  ext["reused_prompt_tokens"] = u.reused_prompt_tokens;
  ext["computed_prompt_tokens"] = u.computed_prompt_tokens;
  ext["relay_prompt_tokens"] = u.relay_prompt_tokens;
  ext["relay_recomputed_tokens"] = u.relay_recomputed_tokens;
  ext["preemptions"] = u.preemptions;
  j["kvforge"] = std::move(ext);
  return j;
}

Json nullable(const std::optional<std::string>& s) {
  return s ? Json(*s) : Json(nullptr);
}

}  // namespace

std::string completion_json(const ResponseHeader& header, const std::vector<ChoiceReport>& choices,
                            const UsageReport& u) {
  const bool chat = is_chat(header);
  Json j = head(header, chat ? "chat.completion" : "text_completion");
  Json list = Json::array();
  for (const ChoiceReport& c : choices) {
    Json choice;
    choice["index"] = c.index;
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = c.finish_reason;
    list.push_back(std::move(choice));
  }
  j["choices"] = std::move(list);
  j["usage"] = usage(u);
  return dump(j);
}

std::string chunk_json(const ResponseHeader& header, int32_t index, std::string_view text,
                       bool first, const std::optional<std::string>& finish_reason,
                       bool with_usage_null) {
  const bool chat = is_chat(header);
  Json j = head(header, chat ? "chat.completion.chunk" : "text_completion");
  Json choice;
  choice["index"] = index;
  if (chat) {
    Json delta = Json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || (first && !finish_reason)) delta["content"] = text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullable(finish_reason);
  j["choices"] = Json::array({std::move(choice)});
  if (with_usage_null) j["usage"] = nullptr;
  return dump(j);
}

std::string usage_chunk_json(const ResponseHeader& header, const UsageReport& u) {
  Json j = head(header, is_chat(header) ? "chat.completion.chunk" : "text_completion");
  j["choices"] = Json::array();
  j["usage"] = usage(u);
  return dump(j);
}

std::string sse_event(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 8);
  out += "data: ";
  out += json;
  out += "\n\n";
  return out;
}

std::string_view sse_done() {
  return "data: [DONE]\n\n";
}

std::string error_json(const ApiError& e) {
  Json err;
  err["message"] = e.message;
  err["type"] = e.type;
  err["param"] = e.param.empty() ? Json(nullptr) : Json(e.param);
  err["code"] = e.code.empty() ? Json(nullptr) : Json(e.code);
  Json j;
  j["error"] = std::move(err);
  return dump(j);
}

std::string models_json(const std::string& model_id, int64_t created) {
  Json model;
  model["id"] = model_id;
  model["object"] = "model";
  model["created"] = created;
  model["owned_by"] = "kvforge";
  Json j;
  j["object"] = "list";
  j["data"] = Json::array({std::move(model)});
  return dump(j);
}

}  // namespace kvforge::server
