// Response shapes: the fields and nesting OpenAI's API documents, checked by
// parsing what we write.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/openai_response.h"

namespace kvforge::server {
namespace {

using nlohmann::json;

const ResponseHeader kTextHeader{Endpoint::kCompletions, "cmpl-1", 1700000000, "m"};
const ResponseHeader kChatHeader{Endpoint::kChatCompletions, "chatcmpl-1", 1700000000, "m"};

TEST(OpenaiResponseTest, CompletionAndChatCompletion) {
  const UsageReport usage{5, 7, 2, 3, 1};
  const json text =
      json::parse(completion_json(kTextHeader, {{0, "a", "stop"}, {1, "b", "length"}}, usage));
  EXPECT_EQ(text["id"], "cmpl-1");
  EXPECT_EQ(text["object"], "text_completion");
  EXPECT_EQ(text["created"], 1700000000);
  EXPECT_EQ(text["model"], "m");
  ASSERT_EQ(text["choices"].size(), 2u);
  EXPECT_EQ(text["choices"][1]["index"], 1);
  EXPECT_EQ(text["choices"][1]["text"], "b");
  EXPECT_TRUE(text["choices"][1]["logprobs"].is_null());
  EXPECT_EQ(text["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(text["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(text["usage"]["completion_tokens"], 7);
  EXPECT_EQ(text["usage"]["total_tokens"], 12);
  EXPECT_EQ(text["usage"]["kvforge"]["reused_prompt_tokens"], 2);
  EXPECT_EQ(text["usage"]["kvforge"]["computed_prompt_tokens"], 3);
  EXPECT_EQ(text["usage"]["kvforge"]["preemptions"], 1);

  const json chat = json::parse(completion_json(kChatHeader, {{0, "hi", "stop"}}, usage));
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["choices"][0]["message"], json({{"role", "assistant"}, {"content", "hi"}}));
  EXPECT_FALSE(chat["choices"][0].contains("text"));
}

TEST(OpenaiResponseTest, StreamChunks) {
  const json first = json::parse(chunk_json(kChatHeader, 0, "", true, std::nullopt, false));
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(first.contains("usage"));

  const json piece = json::parse(chunk_json(kChatHeader, 1, "x", false, std::nullopt, true));
  EXPECT_EQ(piece["choices"][0]["index"], 1);
  EXPECT_EQ(piece["choices"][0]["delta"], json({{"content", "x"}}));
  EXPECT_TRUE(piece.contains("usage"));
  EXPECT_TRUE(piece["usage"].is_null());

  const json last = json::parse(chunk_json(kChatHeader, 0, "", false, "stop", false));
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");

  const json text = json::parse(chunk_json(kTextHeader, 0, "y", false, std::nullopt, false));
  EXPECT_EQ(text["object"], "text_completion");
  EXPECT_EQ(text["choices"][0]["text"], "y");

  const json usage = json::parse(usage_chunk_json(kChatHeader, UsageReport{3, 4, 0, 3, 0}));
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);

  EXPECT_EQ(sse_event("{}"), "data: {}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
}

TEST(OpenaiResponseTest, ErrorsAndModels) {
  const json e =
      json::parse(error_json(invalid_request("max_tokens", "bad", "integer_below_min_value")));
  EXPECT_EQ(e, json::parse(R"({"error": {"message": "bad", "type": "invalid_request_error",
                                          "param": "max_tokens", "code": "integer_below_min_value"}})"));
  const json none = json::parse(error_json(ApiError{500, "x", "server_error", "", ""}));
  EXPECT_TRUE(none["error"]["param"].is_null());
  EXPECT_TRUE(none["error"]["code"].is_null());

  const json models = json::parse(models_json("stories", 5));
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "stories");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(models["data"][0]["owned_by"], "kvforge");
}

TEST(OpenaiResponseTest, InvalidUtf8IsReplacedNotThrown) {
  const json j = json::parse(chunk_json(kTextHeader, 0, "a\xFF", false, std::nullopt, false));
  EXPECT_EQ(j["choices"][0]["text"], "a\xEF\xBF\xBD");
}

}  // namespace
}  // namespace kvforge::server
