// Chat templates: each real model template (tests/server/data/chat_templates)
// is recognised as its family, and our renderer gives the text the template
// gives for the reference conversation (renderings in the data README).
#include <fstream>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

#include "server/chat_template.h"

namespace kvforge::server {
namespace {

std::string template_text(const std::string& name) {
  std::ifstream in(std::string(KVFORGE_SOURCE_DIR) + "/tests/server/data/chat_templates/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<ChatMessage> conversation(bool with_system) {
  std::vector<ChatMessage> m;
  if (with_system) m.push_back({"system", "You are a helpful assistant"});
  m.push_back({"user", "Hello"});
  m.push_back({"assistant", "Hi there"});
  m.push_back({"user", "Who are you"});
  m.push_back({"assistant", "   I am an assistant   "});
  m.push_back({"user", "Another question"});
  return m;
}

std::string render_ok(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  auto out = t.render(messages);
  if (const auto* e = std::get_if<ApiError>(&out)) {
    ADD_FAILURE() << e->message;
    return {};
  }
  return std::get<std::string>(out);
}

struct FamilyCase {
  const char* file;
  ChatFamily family;
  const char* bos;
  const char* eos;
  bool with_system;
  const char* expected;
};

const FamilyCase kFamilyCases[] = {
    {"chatml-openhermes.jinja", ChatFamily::kChatml, "<s>", "</s>", true,
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>"
     "\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_"
     "start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother "
     "question<|im_end|>\n<|im_start|>assistant\n"},
    {"mistral-7b-instruct-v0.1.jinja", ChatFamily::kMistral, "<s>", "</s>", false,
     "<s>[INST] Hello [/INST]Hi there</s> [INST] Who are you [/INST]   I am an assistant   </s> "
     "[INST] Another question [/INST]"},
    {"llama-2-chat.jinja", ChatFamily::kLlama2, "<s>", "</s>", true,
     "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there "
     "</s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another question "
     "[/INST]"},
    {"mixtral-8x7b-instruct-v0.1.jinja", ChatFamily::kMistral, "<s>", "</s>", false,
     "<s>[INST] Hello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   "
     "</s>[INST] Another question [/INST]"},
    {"llama-3-instruct.jinja", ChatFamily::kLlama3, "<|begin_of_text|>", "<|end_of_text|>", true,
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
     "assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_"
     "header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_"
     "header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am "
     "an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother "
     "question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    // Qwen2 writes its default system message when the first is not one.
    {"qwen2.jinja", ChatFamily::kChatml, "", "<|endoftext|>", false,
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>"
     "\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_"
     "start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother "
     "question<|im_end|>\n<|im_start|>assistant\n"},
};

TEST(ChatTemplateTest, RealTemplatesAreDetectedAndRenderedAsTheyRender) {
  for (const FamilyCase& c : kFamilyCases) {
    SCOPED_TRACE(c.file);
    const std::string jinja = template_text(c.file);
    const auto family = detect_chat_family(jinja);
    ASSERT_TRUE(family.has_value());
    EXPECT_EQ(*family, c.family);
    const ChatTemplate t(*family, jinja, c.bos, c.eos);
    EXPECT_EQ(render_ok(t, conversation(c.with_system)), c.expected);
  }
}

TEST(ChatTemplateTest, DefaultSystemMessageOnlyWhenTheTemplateWritesOne) {
  const ChatTemplate qwen(ChatFamily::kChatml, template_text("qwen2.jinja"), "", "");
  EXPECT_EQ(qwen.default_system(), "You are a helpful assistant");
  // A system message of the request replaces it.
  EXPECT_EQ(render_ok(qwen, {{"system", "Be brief."}, {"user", "Hi"}}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>"
            "assistant\n");
  // Escaped newlines, as Qwen2.5's template writes them.
  const ChatTemplate escaped(
      ChatFamily::kChatml,
      "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\\n' }}", "", "");
  EXPECT_EQ(escaped.default_system(), "You are Qwen, created by Alibaba Cloud.");
  const ChatTemplate hermes(ChatFamily::kChatml, template_text("chatml-openhermes.jinja"), "", "");
  EXPECT_EQ(hermes.default_system(), "");
  EXPECT_EQ(render_ok(hermes, {{"developer", "Rules"}, {"user", "Hi"}}),
            "<|im_start|>system\nRules<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>"
            "assistant\n");
}

TEST(ChatTemplateTest, UnknownOrMissingTemplatesAreNotGuessed) {
  EXPECT_FALSE(detect_chat_family("").has_value());
  EXPECT_FALSE(detect_chat_family(template_text("phi-3.jinja")).has_value());
  EXPECT_FALSE(detect_chat_family("{{ messages }}").has_value());
}

TEST(ChatTemplateTest, PlainFallbackFormat) {
  const ChatTemplate plain(ChatFamily::kPlain, "", "<s>", "</s>");
  EXPECT_EQ(render_ok(plain, {{"system", "Be kind."},
                              {"user", "Hi"},
                              {"assistant", "Hello"},
                              {"user", "Tell a story"}}),
            "system: Be kind.\nuser: Hi\nassistant: Hello\nuser: Tell a story\nassistant:");
}

TEST(ChatTemplateTest, AlternationIsRequiredWhereTheTemplateRaises) {
  for (ChatFamily family : {ChatFamily::kLlama2, ChatFamily::kMistral}) {
    const ChatTemplate t(family, "", "<s>", "</s>");
    auto two_users = t.render(std::vector<ChatMessage>{{"user", "a"}, {"user", "b"}});
    ASSERT_TRUE(std::holds_alternative<ApiError>(two_users));
    EXPECT_EQ(std::get<ApiError>(two_users).param, "messages[1].role");
    auto assistant_first = t.render(std::vector<ChatMessage>{{"system", "s"}, {"assistant", "a"}});
    ASSERT_TRUE(std::holds_alternative<ApiError>(assistant_first));
    EXPECT_EQ(std::get<ApiError>(assistant_first).param, "messages[1].role");
    auto late_system = t.render(std::vector<ChatMessage>{{"user", "a"}, {"system", "s"}});
    ASSERT_TRUE(std::holds_alternative<ApiError>(late_system));
  }
  // chatml and llama3 take any order.
  const ChatTemplate chatml(ChatFamily::kChatml, "", "", "");
  EXPECT_TRUE(std::holds_alternative<std::string>(
      chatml.render(std::vector<ChatMessage>{{"user", "a"}, {"user", "b"}})));
}

TEST(ChatTemplateTest, MistralPutsTheSystemMessageBeforeTheFirstUserMessage) {
  const ChatTemplate t(ChatFamily::kMistral, template_text("mixtral-8x7b-instruct-v0.1.jinja"),
                       "<s>", "</s>");
  EXPECT_EQ(render_ok(t, {{"system", "Be brief."}, {"user", "Hi"}}),
            "<s>[INST] Be brief.\n\nHi [/INST]");
  const ChatTemplate llama2(ChatFamily::kLlama2, "", "<s>", "</s>");
  EXPECT_EQ(render_ok(llama2, {{"system", "Be brief."}}),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>> [/INST]");
}

TEST(ChatTemplateTest, FamilyNames) {
  EXPECT_EQ(chat_family_from_name("llama3"), ChatFamily::kLlama3);
  EXPECT_FALSE(chat_family_from_name("jinja").has_value());
  EXPECT_EQ(chat_family_names(), "chatml, llama2, llama3, mistral, plain");
  for (ChatFamily f : {ChatFamily::kPlain, ChatFamily::kChatml, ChatFamily::kLlama2,
                       ChatFamily::kLlama3, ChatFamily::kMistral}) {
    EXPECT_EQ(chat_family_from_name(chat_family_name(f)), f);
  }
}

}  // namespace
}  // namespace kvforge::server
