// Request parsing: good bodies give the fields and the API's defaults; each
// bad body is refused with the field it names.
#include <gtest/gtest.h>

#include "server/openai_request.h"

namespace kvforge::server {
namespace {

GenerationRequest parse_ok(Endpoint e, const std::string& body) {
  ParsedRequest p = parse_generation_request(e, body);
  if (const auto* error = std::get_if<ApiError>(&p)) {
    ADD_FAILURE() << body << ": " << error->message;
    return {};
  }
  return std::get<GenerationRequest>(p);
}

ApiError parse_error(Endpoint e, const std::string& body) {
  ParsedRequest p = parse_generation_request(e, body);
  if (!std::holds_alternative<ApiError>(p)) {
    ADD_FAILURE() << body << " was accepted";
    return {};
  }
  return std::get<ApiError>(p);
}

constexpr Endpoint kText = Endpoint::kCompletions;
constexpr Endpoint kChat = Endpoint::kChatCompletions;

TEST(OpenaiRequestTest, CompletionFieldsAndDefaults) {
  const GenerationRequest r = parse_ok(kText, R"({"model": "m", "prompt": "Once"})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_FALSE(r.prompt_is_ids);
  EXPECT_EQ(r.max_tokens, 0);
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.0f);
  EXPECT_EQ(r.sampling.seed, SamplingParams::kRandomSeed);
  EXPECT_TRUE(r.sampling.validate().ok());

  const GenerationRequest full =
      parse_ok(kText,
               R"({"prompt": [1, 2, 3], "max_tokens": 7, "temperature": 0, "top_p": 0.5, "n": 3,
          "stream": true, "stream_options": {"include_usage": true}, "stop": ["a", "bc"],
          "seed": 42, "presence_penalty": -1.5, "frequency_penalty": 2, "user": "u",
          "logprobs": null, "echo": false, "best_of": 3, "logit_bias": {}, "suffix": null,
          "top_k": 5, "min_p": 0.1, "ignore_eos": true,
          "kvforge": {"cache_salt": "s", "press": "snapkv:ratio=0.5", "workflow": "w",
                      "agent": "a", "next_use": 3}})");
  EXPECT_TRUE(full.prompt_is_ids);
  EXPECT_EQ(full.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(full.max_tokens, 7);
  EXPECT_FLOAT_EQ(full.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(full.sampling.top_p, 0.5f);
  EXPECT_EQ(full.n, 3);
  EXPECT_TRUE(full.stream);
  EXPECT_TRUE(full.include_usage);
  EXPECT_EQ(full.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(full.sampling.seed, 42u);
  EXPECT_FLOAT_EQ(full.sampling.presence_penalty, -1.5f);
  EXPECT_FLOAT_EQ(full.sampling.frequency_penalty, 2.0f);
  EXPECT_EQ(full.sampling.top_k, 5);
  EXPECT_FLOAT_EQ(full.sampling.min_p, 0.1f);
  EXPECT_TRUE(full.ignore_eos);
  EXPECT_EQ(full.kvforge.cache_salt, "s");
  EXPECT_EQ(full.kvforge.press, "snapkv:ratio=0.5");
  EXPECT_EQ(full.kvforge.workflow, "w");
  EXPECT_EQ(full.kvforge.agent, "a");
  EXPECT_EQ(full.kvforge.next_use_steps, 3);

  EXPECT_EQ(parse_ok(kText, R"({"prompt": ["one"], "stop": "x"})").prompt, "one");
  EXPECT_EQ(parse_ok(kText, R"({"prompt": "p", "stop": "x"})").stop,
            (std::vector<std::string>{"x"}));
}

TEST(OpenaiRequestTest, ChatFieldsAndContentParts) {
  const GenerationRequest r = parse_ok(kChat,
                                       R"({"messages": [{"role": "system", "content": "S"},
                       {"role": "user", "content": [{"type": "text", "text": "a"},
                                                    {"type": "text", "text": "b"}], "name": "x"},
                       {"role": "assistant", "content": null},
                       {"role": "developer", "content": "D"}],
          "max_completion_tokens": 9, "response_format": {"type": "text"},
          "tools": [], "tool_choice": "none", "parallel_tool_calls": true, "store": false})");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.messages[3].role, "developer");
  EXPECT_EQ(r.max_tokens, 9);
}

struct BadCase {
  Endpoint endpoint;
  const char* body;
  const char* param;  // "" : none
  const char* code;
};

const BadCase kBadCases[] = {
    {kText, "{", "", "invalid_json"},
    {kText, "[1]", "", "invalid_type"},
    {kText, "{}", "prompt", "missing_required_parameter"},
    {kText, R"({"prompt": 5})", "prompt", "invalid_type"},
    {kText, R"({"prompt": []})", "prompt", "array_below_min_length"},
    {kText, R"({"prompt": ["a", "b"]})", "prompt", "unsupported_parameter"},
    {kText, R"({"prompt": [1, "x"]})", "prompt[1]", "invalid_type"},
    {kText, R"({"prompt": [1, -2]})", "prompt[1]", "invalid_token_id"},
    {kText, R"({"prompt": "p", "max_tokens": 0})", "max_tokens", "integer_below_min_value"},
    {kText, R"({"prompt": "p", "max_tokens": "5"})", "max_tokens", "invalid_type"},
    {kText, R"({"prompt": "p", "max_tokens": 2.5})", "max_tokens", "invalid_type"},
    {kText, R"({"prompt": "p", "max_tokens": 99999999999})", "max_tokens",
     "integer_above_max_value"},
    {kText, R"({"prompt": "p", "temperature": 2.5})", "temperature", "decimal_above_max_value"},
    {kText, R"({"prompt": "p", "temperature": -1})", "temperature", "decimal_below_min_value"},
    {kText, R"({"prompt": "p", "top_p": 0})", "top_p", "decimal_below_min_value"},
    {kText, R"({"prompt": "p", "top_p": "high"})", "top_p", "invalid_type"},
    {kText, R"({"prompt": "p", "n": 0})", "n", "integer_below_min_value"},
    {kText, R"({"prompt": "p", "n": 17})", "n", "integer_above_max_value"},
    {kText, R"({"prompt": "p", "stream": "yes"})", "stream", "invalid_type"},
    {kText, R"({"prompt": "p", "stream_options": {"include_usage": true}})", "stream_options", ""},
    {kText, R"({"prompt": "p", "stream": true, "stream_options": {"x": 1}})", "stream_options.x",
     "unknown_parameter"},
    {kText, R"({"prompt": "p", "stop": 3})", "stop", "invalid_type"},
    {kText, R"({"prompt": "p", "stop": ["a", 1]})", "stop[1]", "invalid_type"},
    {kText, R"({"prompt": "p", "stop": ["a", ""]})", "stop[1]", "string_below_min_length"},
    {kText, R"({"prompt": "p", "stop": ["a", "b", "c", "d", "e"]})", "stop",
     "array_above_max_length"},
    {kText, R"({"prompt": "p", "seed": "7"})", "seed", "invalid_type"},
    {kText, R"({"prompt": "p", "presence_penalty": 3})", "presence_penalty",
     "decimal_above_max_value"},
    {kText, R"({"prompt": "p", "logprobs": 2})", "logprobs", "unsupported_parameter"},
    {kText, R"({"prompt": "p", "echo": true})", "echo", "unsupported_parameter"},
    {kText, R"({"prompt": "p", "best_of": 2})", "best_of", "unsupported_parameter"},
    {kText, R"({"prompt": "p", "suffix": "s"})", "suffix", "unsupported_parameter"},
    {kText, R"({"prompt": "p", "logit_bias": {"5": 1}})", "logit_bias", "unsupported_parameter"},
    {kText, R"({"prompt": "p", "max_token": 5})", "max_token", "unknown_parameter"},
    {kText, R"({"prompt": "p", "model": 3})", "model", "invalid_type"},
    {kText, R"({"prompt": "p", "kvforge": "x"})", "kvforge", "invalid_type"},
    {kText, R"({"prompt": "p", "kvforge": {"salt": "x"}})", "kvforge.salt", "unknown_parameter"},
    {kText, R"({"prompt": "p", "kvforge": {"next_use": -1}})", "kvforge.next_use",
     "integer_below_min_value"},
    {kText, R"({"prompt": "p", "kvforge": {"press": 5}})", "kvforge.press", "invalid_type"},
    {kText, R"({"prompt": "p", "messages": []})", "messages", "unknown_parameter"},
    {kChat, "{}", "messages", "missing_required_parameter"},
    {kChat, R"({"messages": "hi"})", "messages", "invalid_type"},
    {kChat, R"({"messages": []})", "messages", "array_below_min_length"},
    {kChat, R"({"messages": ["hi"]})", "messages[0]", "invalid_type"},
    {kChat, R"({"messages": [{"content": "hi"}]})", "messages[0].role",
     "missing_required_parameter"},
    {kChat, R"({"messages": [{"role": "tool", "content": "hi"}]})", "messages[0].role",
     "invalid_value"},
    {kChat, R"({"messages": [{"role": "user"}]})", "messages[0].content",
     "missing_required_parameter"},
    {kChat, R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content",
     "invalid_type"},
    {kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
     "messages[0].content[0].type", "unsupported_content_type"},
    {kChat, R"({"messages": [{"role": "user", "content": "a", "extra": 1}]})", "messages[0].extra",
     "unknown_parameter"},
    {kChat, R"({"messages": [{"role": "user", "content": "a"}], "tools": [{}]})", "tools",
     "unsupported_parameter"},
    {kChat,
     R"({"messages": [{"role": "user", "content": "a"}], "response_format": {"type": "json_object"}})",
     "response_format", "unsupported_parameter"},
    {kChat, R"({"messages": [{"role": "user", "content": "a"}], "prompt": "p"})", "prompt",
     "unknown_parameter"},
    {kChat, R"({"messages": [{"role": "user", "content": "a"}], "max_completion_tokens": -3})",
     "max_completion_tokens", "integer_below_min_value"},
    {kChat, R"({"messages": [{"role": "user", "content": "a"}], "logprobs": true})", "logprobs",
     "unsupported_parameter"},
};

TEST(OpenaiRequestTest, BadRequestsNameTheField) {
  for (const BadCase& c : kBadCases) {
    SCOPED_TRACE(c.body);
    const ApiError e = parse_error(c.endpoint, c.body);
    EXPECT_EQ(e.http_status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param, c.param);
    if (*c.code != '\0') {
      EXPECT_EQ(e.code, c.code);
    }
    EXPECT_FALSE(e.message.empty());
    if (*c.param != '\0') {
      EXPECT_NE(e.message.find(c.param), std::string::npos) << e.message;
    }
  }
}

TEST(OpenaiRequestTest, LimitsAreOptions) {
  RequestLimits limits;
  limits.max_n = 2;
  limits.max_extension_bytes = 4;
  EXPECT_EQ(
      std::get<ApiError>(parse_generation_request(kText, R"({"prompt": "p", "n": 3})", limits))
          .param,
      "n");
  EXPECT_EQ(
      std::get<ApiError>(parse_generation_request(
                             kText, R"({"prompt": "p", "kvforge": {"agent": "abcde"}})", limits))
          .param,
      "kvforge.agent");
}

}  // namespace
}  // namespace kvforge::server
