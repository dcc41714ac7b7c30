#include "server/request_plan.h"

#include <fmt/format.h>

namespace kvforge::server {

std::variant<RequestPlan, ApiError> plan_request(const GenerationRequest& request,
                                                 const Engine& engine,
                                                 const ChatTemplate& chat_template,
                                                 const std::string& model_id) {
  const ModelInfo& info = engine.info();
  if (!request.model.empty() && request.model != model_id) {
    return ApiError{404,
                    fmt::format("the model '{}' does not exist; this server serves '{}'",
                                request.model, model_id),
                    "invalid_request_error", "model", "model_not_found"};
  }
  if (const Status press = check_press_spec(request.kvforge.press); !press.ok()) {
    return invalid_request("kvforge.press", press.message(), "invalid_value");
  }

  const bool chat = request.endpoint == Endpoint::kChatCompletions;
  const char* prompt_param = chat ? "messages" : "prompt";
  RequestPlan plan;
  std::vector<int32_t>& ids = plan.params.prompt;
  if (chat) {
    auto rendered = chat_template.render(request.messages);
    if (auto* error = std::get_if<ApiError>(&rendered)) return *error;
    ids = engine.tokenize(std::get<std::string>(rendered), /*add_special=*/true,
                          /*parse_special=*/true);
    if (ids.size() >= 2 && info.bos_id >= 0 && ids[0] == info.bos_id && ids[1] == info.bos_id) {
      ids.erase(ids.begin());
    }
  } else if (request.prompt_is_ids) {
    ids = request.prompt_ids;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] >= info.n_vocab) {
        return invalid_request(fmt::format("prompt[{}]", i),
                               fmt::format("'prompt[{}]' is {}, outside the vocabulary [0, {})", i,
                                           ids[i], info.n_vocab),
                               "invalid_token_id");
      }
    }
  } else {
    ids = engine.tokenize(request.prompt, /*add_special=*/true, /*parse_special=*/false);
  }
  if (ids.empty()) {
    return invalid_request(prompt_param, fmt::format("'{}' is empty", prompt_param),
                           "empty_prompt");
  }
  const auto n_prompt = static_cast<int64_t>(ids.size());
  if (n_prompt >= info.n_ctx) {
    return invalid_request(prompt_param,
                           fmt::format("the prompt has {} tokens, but this model's context holds "
                                       "{} (the prompt and at least one generated token)",
                                       n_prompt, info.n_ctx),
                           "context_length_exceeded");
  }
  const int64_t room = info.n_ctx - n_prompt;
  int64_t max_tokens = request.max_tokens;
  if (max_tokens == 0) {
    max_tokens = chat ? room : std::min<int64_t>(16, room);
  } else if (max_tokens > room) {
    return invalid_request(
        "max_tokens",
        fmt::format("the context holds {} tokens, but {} were requested ({} in the prompt, {} "
                    "to generate); lower max_tokens to at most {}",
                    info.n_ctx, n_prompt + max_tokens, n_prompt, max_tokens, room),
        "context_length_exceeded");
  }
  plan.params.max_tokens = static_cast<int32_t>(max_tokens);
  plan.params.sampling = request.sampling;
  plan.params.stop_at_end_of_generation = !request.ignore_eos;
  plan.params.cache_salt = request.kvforge.cache_salt;
  plan.params.press = request.kvforge.press;
  plan.params.workflow = request.kvforge.workflow;
  plan.params.agent = request.kvforge.agent;
  plan.params.next_use_steps = request.kvforge.next_use_steps;
  plan.n = request.n;
  plan.stop = request.stop;
  return plan;
}

}  // namespace kvforge::server
