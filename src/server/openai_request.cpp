#include "server/openai_request.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kvforge::server {
namespace {

using nlohmann::json;

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "number";
  if (v.is_boolean()) return "boolean";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

ApiError wrong_type(const std::string& param, const char* wanted, const json& v) {
  return invalid_request(param, fmt::format("'{}' must be {}, got {}", param, wanted, type_name(v)),
                         "invalid_type");
}

// Reads one object's fields; the first problem found becomes error.
class FieldReader {
 public:
  FieldReader(const json& object, std::string prefix)
      : object_(object), prefix_(std::move(prefix)) {}

  [[nodiscard]] const std::optional<ApiError>& error() const { return error_; }
  [[nodiscard]] bool ok() const { return !error_; }
  void fail(ApiError e) {
    if (!error_) error_ = std::move(e);
  }
  [[nodiscard]] std::string param(std::string_view key) const { return prefix_ + std::string(key); }

  // The field, or nullptr when absent or null (null means "the default").
  [[nodiscard]] const json* find(std::string_view key) const {
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  void integer(std::string_view key, int64_t lo, int64_t hi, auto& out) {
    const json* v = find(key);
    if (v == nullptr || !ok()) return;
    const std::string p = param(key);
    if (!v->is_number_integer()) return fail(wrong_type(p, "an integer", *v));
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
      return fail(invalid_request(p, fmt::format("'{}' must be <= {}, got {}", p, hi, v->dump()),
                                  "integer_above_max_value"));
    }
    const auto x = v->get<int64_t>();
    if (x < lo) {
      return fail(invalid_request(p, fmt::format("'{}' must be >= {}, got {}", p, lo, x),
                                  "integer_below_min_value"));
    }
    if (x > hi) {
      return fail(invalid_request(p, fmt::format("'{}' must be <= {}, got {}", p, hi, x),
                                  "integer_above_max_value"));
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(x);
  }

  // A number in [lo, hi] (lo excluded when open_lo).
  void number(std::string_view key, double lo, double hi, bool open_lo, float& out) {
    const json* v = find(key);
    if (v == nullptr || !ok()) return;
    const std::string p = param(key);
    if (!v->is_number()) return fail(wrong_type(p, "a number", *v));
    const auto x = v->get<double>();
    if (open_lo ? !(x > lo) : !(x >= lo)) {
      return fail(invalid_request(
          p, fmt::format("'{}' must be {} {}, got {}", p, open_lo ? ">" : ">=", lo, x),
          "decimal_below_min_value"));
    }
    if (!(x <= hi)) {
      return fail(invalid_request(p, fmt::format("'{}' must be <= {}, got {}", p, hi, x),
                                  "decimal_above_max_value"));
    }
    out = static_cast<float>(x);
  }

  void boolean(std::string_view key, bool& out) {
    const json* v = find(key);
    if (v == nullptr || !ok()) return;
    if (!v->is_boolean()) return fail(wrong_type(param(key), "a boolean", *v));
    out = v->get<bool>();
  }

  void string(std::string_view key, int32_t max_bytes, std::string& out) {
    const json* v = find(key);
    if (v == nullptr || !ok()) return;
    const std::string p = param(key);
    if (!v->is_string()) return fail(wrong_type(p, "a string", *v));
    const auto& s = v->get_ref<const std::string&>();
    if (max_bytes > 0 && s.size() > static_cast<size_t>(max_bytes)) {
      return fail(invalid_request(
          p, fmt::format("'{}' is {} bytes long; at most {} are allowed", p, s.size(), max_bytes),
          "string_above_max_length"));
    }
    out = s;
  }

  // A field we accept only in its "off" form (null, false, 0, empty).
  void off_only(std::string_view key, std::string_view what) {
    const json* v = find(key);
    if (v == nullptr || !ok()) return;
    const bool off = (v->is_boolean() && !v->get<bool>()) ||
                     (v->is_number_integer() && v->get<int64_t>() == 0) ||
                     ((v->is_array() || v->is_object()) && v->empty()) ||
                     (v->is_string() && v->get_ref<const std::string&>().empty());
    if (!off) {
      fail(invalid_request(param(key), fmt::format("'{}' is not supported: {}", param(key), what),
                           "unsupported_parameter"));
    }
  }

  // Refuses fields outside `known`.
  void only(std::span<const std::string_view> known) {
    if (!ok()) return;
    for (const auto& [key, value] : object_.items()) {
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string names;
      for (std::string_view k : known) names += (names.empty() ? "" : ", ") + std::string(k);
      return fail(invalid_request(
          param(key),
          prefix_.empty() ? fmt::format("unrecognized request argument '{}'", key)
                          : fmt::format("unrecognized field '{}' (known: {})", param(key), names),
          "unknown_parameter"));
    }
  }

 private:
  const json& object_;
  std::string prefix_;
  std::optional<ApiError> error_;
};

constexpr std::array<std::string_view, 22> kCompletionFields = {
    "model",   "prompt",    "max_tokens",       "temperature",
    "top_p",   "n",         "stream",           "stream_options",
    "stop",    "seed",      "presence_penalty", "frequency_penalty",
    "user",    "kvforge",   "logprobs",         "echo",
    "best_of", "suffix",    "logit_bias",       "top_k",
    "min_p",   "ignore_eos"};
constexpr std::array<std::string_view, 30> kChatFields = {"model",
                                                          "messages",
                                                          "max_tokens",
                                                          "max_completion_tokens",
                                                          "temperature",
                                                          "top_p",
                                                          "n",
                                                          "stream",
                                                          "stream_options",
                                                          "stop",
                                                          "seed",
                                                          "presence_penalty",
                                                          "frequency_penalty",
                                                          "user",
                                                          "kvforge",
                                                          "logprobs",
                                                          "top_logprobs",
                                                          "logit_bias",
                                                          "response_format",
                                                          "tools",
                                                          "tool_choice",
                                                          "functions",
                                                          "function_call",
                                                          "parallel_tool_calls",
                                                          "store",
                                                          "metadata",
                                                          "service_tier",
                                                          "top_k",
                                                          "min_p",
                                                          "ignore_eos"};

void parse_stop(FieldReader& r, const json& body, const RequestLimits& limits,
                std::vector<std::string>& out) {
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null() || !r.ok()) return;
  std::vector<std::pair<std::string, const json*>> items;
  if (it->is_string()) {
    items.emplace_back("stop", &*it);
  } else if (it->is_array()) {
    for (size_t i = 0; i < it->size(); ++i) {
      items.emplace_back(fmt::format("stop[{}]", i), &(*it)[i]);
    }
  } else {
    return r.fail(wrong_type("stop", "a string or an array of strings", *it));
  }
  if (static_cast<int64_t>(items.size()) > limits.max_stop_sequences) {
    return r.fail(invalid_request("stop",
                                  fmt::format("'stop' holds {} sequences; at most {} are allowed",
                                              items.size(), limits.max_stop_sequences),
                                  "array_above_max_length"));
  }
  for (const auto& [param, v] : items) {
    if (!v->is_string()) return r.fail(wrong_type(param, "a string", *v));
    const auto& s = v->get_ref<const std::string&>();
    if (s.empty()) {
      return r.fail(invalid_request(param, fmt::format("'{}' must not be empty", param),
                                    "string_below_min_length"));
    }
    if (s.size() > static_cast<size_t>(limits.max_stop_bytes)) {
      return r.fail(invalid_request(param,
                                    fmt::format("'{}' is {} bytes long; at most {} are allowed",
                                                param, s.size(), limits.max_stop_bytes),
                                    "string_above_max_length"));
    }
    out.push_back(s);
  }
}

void parse_extension(FieldReader& r, const json& body, const RequestLimits& limits,
                     RequestExtension& out) {
  const json* ext = r.find("kvforge");
  if (ext == nullptr || !r.ok()) return;
  if (!ext->is_object()) return r.fail(wrong_type("kvforge", "an object", *ext));
  (void)body;
  FieldReader e(*ext, "kvforge.");
  constexpr std::array<std::string_view, 5> kKnown = {"cache_salt", "press", "workflow", "agent",
                                                      "next_use"};
  e.only(kKnown);
  e.string("cache_salt", limits.max_extension_bytes, out.cache_salt);
  e.string("press", limits.max_extension_bytes, out.press);
  e.string("workflow", limits.max_extension_bytes, out.workflow);
  e.string("agent", limits.max_extension_bytes, out.agent);
  e.integer("next_use", 0, std::numeric_limits<int32_t>::max(), out.next_use_steps);
  if (e.error()) r.fail(*e.error());
}

void parse_stream_options(FieldReader& r, GenerationRequest& out) {
  const json* so = r.find("stream_options");
  if (so == nullptr || !r.ok()) return;
  if (!out.stream) {
    return r.fail(invalid_request("stream_options",
                                  "'stream_options' is only allowed when 'stream' is true"));
  }
  if (!so->is_object()) return r.fail(wrong_type("stream_options", "an object", *so));
  FieldReader s(*so, "stream_options.");
  constexpr std::array<std::string_view, 1> kKnown = {"include_usage"};
  s.only(kKnown);
  s.boolean("include_usage", out.include_usage);
  if (s.error()) r.fail(*s.error());
}

void parse_prompt(FieldReader& r, GenerationRequest& out) {
  const json* p = r.find("prompt");
  if (!r.ok()) return;
  if (p == nullptr) {
    return r.fail(invalid_request("prompt", "'prompt' is required", "missing_required_parameter"));
  }
  if (p->is_string()) {
    out.prompt = p->get<std::string>();
    return;
  }
  if (!p->is_array()) return r.fail(wrong_type("prompt", "a string or an array of token ids", *p));
  if (p->empty()) {
    return r.fail(
        invalid_request("prompt", "'prompt' must not be empty", "array_below_min_length"));
  }
  if (p->size() == 1 && (*p)[0].is_string()) {
    out.prompt = (*p)[0].get<std::string>();
    return;
  }
  if ((*p)[0].is_string() || (*p)[0].is_array()) {
    return r.fail(invalid_request(
        "prompt", "several prompts in one request are not supported; send one request per prompt",
        "unsupported_parameter"));
  }
  out.prompt_is_ids = true;
  for (size_t i = 0; i < p->size(); ++i) {
    const json& id = (*p)[i];
    const std::string param = fmt::format("prompt[{}]", i);
    if (!id.is_number_integer()) return r.fail(wrong_type(param, "a token id (integer)", id));
    if (id.is_number_unsigned()
            ? id.get<uint64_t>() > std::numeric_limits<int32_t>::max()
            : (id.get<int64_t>() < 0 || id.get<int64_t>() > std::numeric_limits<int32_t>::max())) {
      return r.fail(invalid_request(
          param, fmt::format("'{}' is not a token id: {}", param, id.dump()), "invalid_token_id"));
    }
    out.prompt_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
}

// "content": a string, or an array of {"type": "text", "text": ...} parts.
void parse_content(FieldReader& r, const json& message, const std::string& prefix, bool may_be_null,
                   std::string& out) {
  const auto it = message.find("content");
  const std::string param = prefix + "content";
  if (it == message.end() || it->is_null()) {
    if (!may_be_null) {
      r.fail(invalid_request(param, fmt::format("'{}' is required", param),
                             "missing_required_parameter"));
    }
    return;
  }
  if (it->is_string()) {
    out = it->get<std::string>();
    return;
  }
  if (!it->is_array()) return r.fail(wrong_type(param, "a string or an array of parts", *it));
  for (size_t i = 0; i < it->size(); ++i) {
    const json& part = (*it)[i];
    const std::string pp = fmt::format("{}[{}]", param, i);
    if (!part.is_object()) return r.fail(wrong_type(pp, "an object", part));
    const auto type = part.find("type");
    if (type == part.end() || !type->is_string() || *type != "text") {
      return r.fail(invalid_request(pp + ".type",
                                    fmt::format("'{}.type' must be \"text\": this server reads "
                                                "text only",
                                                pp),
                                    "unsupported_content_type"));
    }
    const auto text = part.find("text");
    if (text == part.end() || !text->is_string()) {
      return r.fail(text == part.end()
                        ? invalid_request(pp + ".text", fmt::format("'{}.text' is required", pp),
                                          "missing_required_parameter")
                        : wrong_type(pp + ".text", "a string", *text));
    }
    out += text->get<std::string>();
  }
}

void parse_messages(FieldReader& r, GenerationRequest& out) {
  const json* m = r.find("messages");
  if (!r.ok()) return;
  if (m == nullptr) {
    return r.fail(
        invalid_request("messages", "'messages' is required", "missing_required_parameter"));
  }
  if (!m->is_array()) return r.fail(wrong_type("messages", "an array", *m));
  if (m->empty()) {
    return r.fail(
        invalid_request("messages", "'messages' must not be empty", "array_below_min_length"));
  }
  for (size_t i = 0; i < m->size() && r.ok(); ++i) {
    const json& message = (*m)[i];
    const std::string prefix = fmt::format("messages[{}].", i);
    if (!message.is_object()) {
      return r.fail(wrong_type(fmt::format("messages[{}]", i), "an object", message));
    }
    FieldReader fields(message, prefix);
    constexpr std::array<std::string_view, 5> kKnown = {"role", "content", "name", "tool_calls",
                                                        "refusal"};
    fields.only(kKnown);
    fields.off_only("tool_calls", "tool calls");
    if (fields.error()) return r.fail(*fields.error());
    ChatMessage cm;
    const auto role = message.find("role");
    if (role == message.end() || role->is_null()) {
      return r.fail(invalid_request(prefix + "role", fmt::format("'{}role' is required", prefix),
                                    "missing_required_parameter"));
    }
    if (!role->is_string()) return r.fail(wrong_type(prefix + "role", "a string", *role));
    cm.role = role->get<std::string>();
    if (cm.role != "system" && cm.role != "developer" && cm.role != "user" &&
        cm.role != "assistant") {
      return r.fail(invalid_request(
          prefix + "role",
          fmt::format("'{}role' is '{}'; this server takes system, developer, user and assistant",
                      prefix, cm.role),
          "invalid_value"));
    }
    parse_content(r, message, prefix, cm.role == "assistant", cm.content);
    out.messages.push_back(std::move(cm));
  }
}

}  // namespace

ParsedRequest parse_generation_request(Endpoint endpoint, std::string_view body,
                                       const RequestLimits& limits) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (const size_t close = what.find("] "); close != std::string::npos) {
      what = what.substr(close + 2);
    }
    return invalid_request("", "the request body is not valid JSON: " + what, "invalid_json");
  }
  if (!j.is_object()) {
    return invalid_request(
        "", fmt::format("the request body must be a JSON object, got {}", type_name(j)),
        "invalid_type");
  }
  GenerationRequest out;
  out.endpoint = endpoint;
  out.sampling.temperature = 1.0f;
  out.sampling.top_p = 1.0f;
  out.sampling.top_k = 0;
  out.sampling.min_p = 0.0f;
  out.sampling.repeat_penalty = 1.0f;

  const bool chat = endpoint == Endpoint::kChatCompletions;
  FieldReader r(j, "");
  if (chat) {
    r.only(kChatFields);
  } else {
    r.only(kCompletionFields);
  }
  r.string("model", 1024, out.model);
  if (chat) {
    parse_messages(r, out);
  } else {
    parse_prompt(r, out);
  }
  constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  r.integer("max_tokens", 1, kMaxInt, out.max_tokens);
  if (chat) r.integer("max_completion_tokens", 1, kMaxInt, out.max_tokens);
  r.number("temperature", 0, 2, false, out.sampling.temperature);
  r.number("top_p", 0, 1, true, out.sampling.top_p);
  r.number("min_p", 0, 1, false, out.sampling.min_p);
  r.integer("top_k", -1, kMaxInt, out.sampling.top_k);
  r.number("presence_penalty", -2, 2, false, out.sampling.presence_penalty);
  r.number("frequency_penalty", -2, 2, false, out.sampling.frequency_penalty);
  r.integer("n", 1, limits.max_n, out.n);
  r.boolean("stream", out.stream);
  r.boolean("ignore_eos", out.ignore_eos);
  parse_stream_options(r, out);
  parse_stop(r, j, limits, out.stop);
  if (const json* seed = r.find("seed"); seed != nullptr && r.ok()) {
    if (!seed->is_number_integer()) {
      r.fail(wrong_type("seed", "an integer", *seed));
    } else {
      out.sampling.seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                                     : static_cast<uint64_t>(seed->get<int64_t>());
    }
  }
  std::string user;
  r.string("user", 0, user);
  parse_extension(r, j, limits, out.kvforge);
  r.off_only("logprobs", "log probabilities are not returned");
  r.off_only("logit_bias", "logit biases are not applied");
  if (chat) {
    r.off_only("top_logprobs", "log probabilities are not returned");
    r.off_only("tools", "tool calls");
    r.off_only("functions", "tool calls");
    if (const json* tc = r.find("tool_choice");
        tc != nullptr && r.ok() && !(tc->is_string() && *tc == "none")) {
      r.fail(invalid_request("tool_choice", "'tool_choice' is not supported: tool calls",
                             "unsupported_parameter"));
    }
    if (const json* fc = r.find("function_call");
        fc != nullptr && r.ok() && !(fc->is_string() && *fc == "none")) {
      r.fail(invalid_request("function_call", "'function_call' is not supported: tool calls",
                             "unsupported_parameter"));
    }
    if (const json* rf = r.find("response_format"); rf != nullptr && r.ok()) {
      const bool text = rf->is_object() && rf->contains("type") && (*rf)["type"] == "text";
      if (!text) {
        r.fail(invalid_request("response_format",
                               "'response_format' must be {\"type\": \"text\"}: structured "
                               "output is not supported",
                               "unsupported_parameter"));
      }
    }
  } else {
    r.off_only("echo", "the prompt is not echoed");
    r.off_only("suffix", "insertion is not supported");
    if (const json* best_of = r.find("best_of"); best_of != nullptr && r.ok()) {
      if (!best_of->is_number_integer() || best_of->get<int64_t>() != out.n) {
        r.fail(invalid_request("best_of", "'best_of' is not supported (it may only equal 'n')",
                               "unsupported_parameter"));
      }
    }
  }
  if (r.error()) return *r.error();
  return out;
}

}  // namespace kvforge::server
