// The server on a loopback port with the bundled model: a table of bad
// requests, each answered with the right status and an error body naming
// the field; good requests (JSON and streamed, n choices, stop sequences,
// usage) checked against the engine driven directly; a client that leaves
// mid-stream has its request cancelled and its blocks returned.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kvforge/engine.h"
#include "server/server.h"

namespace kvforge::server {
namespace {

using nlohmann::json;

struct HttpReply {
  int status = 0;
  std::string headers;
  std::string body;
};

// A client connection on loopback that sends raw bytes and reads one
// response at a time (by its Content-Length or chunks, or to the close).
class TestConnection {
 public:
  explicit TestConnection(int port, int timeout_s = 60) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{timeout_s, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~TestConnection() { close(fd_); }
  TestConnection(const TestConnection&) = delete;
  TestConnection& operator=(const TestConnection&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }
  void send_all(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }
  // Reads some bytes; false when the server closed or nothing came in time.
  bool receive_some() {
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }
  // The next response; status 0 if none came.
  HttpReply read_reply() {
    HttpReply reply;
    size_t length = 0;  // bytes of the whole response, once known
    while (true) {
      const size_t head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const std::string head = buffer_.substr(0, head_end);
        if (head.find("Transfer-Encoding: chunked") != std::string::npos) {
          const size_t last = buffer_.find("\r\n0\r\n\r\n", head_end);
          if (last != std::string::npos) length = last + 7;
        } else if (const size_t cl = head.find("Content-Length: "); cl != std::string::npos) {
          const size_t total = head_end + 4 + std::stoul(head.substr(cl + 16));
          if (buffer_.size() >= total) length = total;
        }
      }
      if (length > 0 || !receive_some()) break;
    }
    if (length == 0) length = buffer_.size();  // read to the close
    const std::string data = buffer_.substr(0, length);
    buffer_.erase(0, length);
    const size_t head_end = data.find("\r\n\r\n");
    if (data.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return reply;
    reply.status = std::atoi(data.c_str() + 9);
    reply.headers = data.substr(0, head_end);
    reply.body = data.substr(head_end + 4);
    if (reply.headers.find("Transfer-Encoding: chunked") != std::string::npos) {
      std::string body;
      size_t at = 0;
      while (at < reply.body.size()) {
        const size_t line_end = reply.body.find("\r\n", at);
        if (line_end == std::string::npos) break;
        const size_t size = std::stoul(reply.body.substr(at, line_end - at), nullptr, 16);
        if (size == 0) break;
        body += reply.body.substr(line_end + 2, size);
        at = line_end + 2 + size + 2;
      }
      reply.body = body;
    }
    return reply;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

// One request over a fresh connection.
HttpReply raw_exchange(int port, const std::string& request, int timeout_s = 60) {
  TestConnection c(port, timeout_s);
  if (!c.connected()) return {};
  c.send_all(request);
  return c.read_reply();
}

HttpReply http(int port, const std::string& method, const std::string& path,
               const std::string& body = "", const std::string& extra_headers = "") {
  std::string request =
      method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  request += extra_headers;
  if (!body.empty() || method == "POST") {
    request +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  return raw_exchange(port, request);
}

// The "data: ..." events of a streamed body. The body must be exactly a
// sequence of "data: PAYLOAD\n\n" events (one line each), ending with
// "data: [DONE]\n\n" and nothing after it; a framing error fails the test.
std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> events;
  size_t at = 0;
  while (at < body.size()) {
    EXPECT_EQ(body.compare(at, 6, "data: "), 0) << "at byte " << at << " of " << body;
    const size_t end = body.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << body;
    if (body.compare(at, 6, "data: ") != 0 || end == std::string::npos) break;
    const std::string payload = body.substr(at + 6, end - at - 6);
    EXPECT_EQ(payload.find('\n'), std::string::npos) << payload;
    events.push_back(payload);
    at = end + 2;
  }
  EXPECT_FALSE(events.empty());
  if (!events.empty()) {
    EXPECT_EQ(events.back(), "[DONE]");
  }
  for (size_t i = 0; i + 1 < events.size(); ++i) EXPECT_NE(events[i], "[DONE]");
  return events;
}

std::string stories_path() {
  return std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf";
}

class LiveServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EngineOptions eo;
    eo.model_path = stories_path();
    eo.n_threads = 2;
    eo.parallel = 4;
    eo.n_batch = 64;
    auto engine = Engine::create(eo);
    ASSERT_TRUE(engine.ok()) << engine.status().to_string();
    engine_ = std::move(engine).value();
    ServerOptions so;
    so.port = 0;
    so.max_body_bytes = 64 * 1024;
    so.read_timeout_s = 1;
    server_ = start(so);
    so.api_key = "sekret";
    keyed_ = start(so);
  }
  static void TearDownTestSuite() {
    for (auto* s : {&server_, &keyed_}) {
      if (*s) (*s)->server->stop();
      if (*s) (*s)->thread.join();
      s->reset();
    }
    engine_.reset();
  }

  struct Running {
    std::unique_ptr<HttpServer> server;
    std::thread thread;
  };
  static std::unique_ptr<Running> start(const ServerOptions& so) {
    auto made = HttpServer::create(*engine_, so);
    EXPECT_TRUE(made.ok()) << made.status().to_string();
    auto r = std::make_unique<Running>();
    r->server = std::move(made).value();
    EXPECT_TRUE(r->server->bind().ok());
    HttpServer* s = r->server.get();
    r->thread = std::thread([s] { s->run(); });
    return r;
  }
  static int port() { return server_->server->port(); }

  // Greedy tokens straight from the engine, as text.
  static std::string engine_greedy(const std::vector<int32_t>& prompt, int32_t max_tokens) {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::string text;
    RequestParams p;
    p.prompt = prompt;
    p.max_tokens = max_tokens;
    p.sampling.temperature = 0;
    auto id = engine_->submit(p, [&](const RequestEvent& e) {
      std::lock_guard lock(m);
      if (e.token >= 0 && !engine_->is_end_of_generation(e.token)) {
        text += engine_->token_to_piece(e.token);
      }
      if (e.finish != FinishReason::kNone) {
        done = true;
        cv.notify_all();
      }
      return true;
    });
    EXPECT_TRUE(id.ok());
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done; });
    return text;
  }

  // Once the engine is idle: every block is back in the pool — free, or
  // held by the prefix cache only — and the counts add up (public stats).
  static void expect_all_blocks_back() {
    ServingStats st;
    for (int i = 0; i < 400; ++i) {  // bounded wait for the last step's report
      st = engine_->stats();
      if (st.running == 0 && st.waiting == 0 && st.finished == st.submitted) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    EXPECT_EQ(st.running, 0);
    EXPECT_EQ(st.waiting, 0);
    EXPECT_EQ(st.finished, st.submitted);
    EXPECT_GT(st.cache.blocks_total, 0);
    EXPECT_GE(st.cache.blocks_free, 0);
    EXPECT_GE(st.cache.blocks_cached, 0);
    EXPECT_EQ(st.cache.blocks_free + st.cache.blocks_cached, st.cache.blocks_total)
        << "free " << st.cache.blocks_free << " cached " << st.cache.blocks_cached;
  }

  static json metrics_value_lines() {
    const HttpReply r = http(port(), "GET", "/metrics");
    json values = json::object();
    size_t at = 0;
    while (at < r.body.size()) {
      const size_t end = r.body.find('\n', at);
      const std::string line = r.body.substr(at, end - at);
      at = end + 1;
      if (line.empty() || line[0] == '#') continue;
      const size_t space = line.rfind(' ');
      values[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return values;
  }

  static std::unique_ptr<Engine> engine_;
  static std::unique_ptr<Running> server_;
  static std::unique_ptr<Running> keyed_;
};

std::unique_ptr<Engine> LiveServerTest::engine_;
std::unique_ptr<LiveServerTest::Running> LiveServerTest::server_;
std::unique_ptr<LiveServerTest::Running> LiveServerTest::keyed_;

struct BadRequest {
  const char* method;
  const char* path;
  std::string body;
  int status;
  const char* param;  // nullptr: the error names no field
  const char* code;
  const char* message_has = "";
};

std::string words(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "word ";
  return s;
}

std::vector<BadRequest> bad_requests() {
  const std::string chat_ok = R"("messages": [{"role": "user", "content": "Hi"}])";
  const std::string long_prompt = words(600);
  std::string nested = R"({"prompt": )";
  for (int i = 0; i < 5000; ++i) nested += "[";
  for (int i = 0; i < 5000; ++i) nested += "]";
  nested += "}";
  return {
      {"GET", "/nope", "", 404, nullptr, "unknown_route"},
      {"POST", "/v1/nope", "{}", 404, nullptr, "unknown_route"},
      {"GET", "/v1/completions", "", 405, nullptr, "method_not_allowed"},
      {"PUT", "/v1/chat/completions", "{}", 405, nullptr, "method_not_allowed"},
      {"DELETE", "/v1/models", "", 405, nullptr, "method_not_allowed"},
      {"POST", "/health", "{}", 405, nullptr, "method_not_allowed"},
      {"POST", "/metrics", "", 405, nullptr, "method_not_allowed"},
      {"GET", "/v1/models/gpt-4", "", 404, "model", "model_not_found"},
      {"POST", "/v1/completions", "{", 400, nullptr, "invalid_json"},
      {"POST", "/v1/completions", "", 400, nullptr, "invalid_json"},
      {"POST", "/v1/completions", "null", 400, nullptr, "invalid_type"},
      {"POST", "/v1/completions", "[]", 400, nullptr, "invalid_type"},
      {"POST", "/v1/completions", "{\"prompt\": \"\xff\"}", 400, nullptr, "invalid_json"},
      {"POST", "/v1/completions", "{}", 400, "prompt", "missing_required_parameter"},
      {"POST", "/v1/completions", R"({"prompt": 5})", 400, "prompt", "invalid_type"},
      {"POST", "/v1/completions", R"({"prompt": []})", 400, "prompt", "array_below_min_length"},
      {"POST", "/v1/completions", R"({"prompt": ["a", "b"]})", 400, "prompt",
       "unsupported_parameter"},
      {"POST", "/v1/completions", nested, 400, "prompt", "unsupported_parameter"},
      {"POST", "/v1/completions", R"({"prompt": [1, 100000]})", 400, "prompt[1]",
       "invalid_token_id"},
      {"POST", "/v1/completions", R"({"prompt": [1, -1]})", 400, "prompt[1]", "invalid_token_id"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "max_tokens": 0})", 400, "max_tokens",
       "integer_below_min_value"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "max_tokens": -5})", 400, "max_tokens",
       "integer_below_min_value"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "max_tokens": "10"})", 400, "max_tokens",
       "invalid_type"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "max_tokens": 600})", 400, "max_tokens",
       "context_length_exceeded", "512"},
      {"POST", "/v1/completions", R"({"prompt": ")" + long_prompt + R"("})", 400, "prompt",
       "context_length_exceeded", "512"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "temperature": 3})", 400, "temperature",
       "decimal_above_max_value"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "temperature": "hot"})", 400, "temperature",
       "invalid_type"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "top_p": 0})", 400, "top_p",
       "decimal_below_min_value"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "top_p": 1.5})", 400, "top_p",
       "decimal_above_max_value"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "n": 0})", 400, "n",
       "integer_below_min_value"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "n": 100})", 400, "n",
       "integer_above_max_value"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "stream": "true"})", 400, "stream",
       "invalid_type"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "stream_options": {"include_usage": true}})",
       400, "stream_options", ""},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "stop": 5})", 400, "stop", "invalid_type"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "stop": ["", "a"]})", 400, "stop[0]",
       "string_below_min_length"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "stop": ["a", "b", "c", "d", "e"]})", 400,
       "stop", "array_above_max_length"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "seed": 1.5})", 400, "seed", "invalid_type"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "model": "gpt-4"})", 404, "model",
       "model_not_found", "stories260K"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "foo": 1})", 400, "foo", "unknown_parameter"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "kvforge": "x"})", 400, "kvforge",
       "invalid_type"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "kvforge": {"unknown": 1}})", 400,
       "kvforge.unknown", "unknown_parameter", "cache_salt"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "kvforge": {"press": "nope"}})", 400,
       "kvforge.press", "invalid_value", "snapkv"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "kvforge": {"press": "snapkv:ratio=5"}})",
       400, "kvforge.press", "invalid_value"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "kvforge": {"next_use": "soon"}})", 400,
       "kvforge.next_use", "invalid_type"},
      {"POST", "/v1/completions",
       R"({"prompt": "Hi", "kvforge": {"cache_salt": ")" + std::string(300, 's') + R"("}})", 400,
       "kvforge.cache_salt", "string_above_max_length"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "logprobs": 5})", 400, "logprobs",
       "unsupported_parameter"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "echo": true})", 400, "echo",
       "unsupported_parameter"},
      {"POST", "/v1/completions", R"({"prompt": "Hi", "presence_penalty": -3})", 400,
       "presence_penalty", "decimal_below_min_value"},
      {"POST", "/v1/chat/completions", "{}", 400, "messages", "missing_required_parameter"},
      {"POST", "/v1/chat/completions", R"({"messages": []})", 400, "messages",
       "array_below_min_length"},
      {"POST", "/v1/chat/completions", R"({"messages": [{"role": "user"}]})", 400,
       "messages[0].content", "missing_required_parameter"},
      {"POST", "/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "x"}]})", 400,
       "messages[0].role", "invalid_value"},
      {"POST", "/v1/chat/completions", R"({"messages": [{"role": "user", "content": 7}]})", 400,
       "messages[0].content", "invalid_type"},
      {"POST", "/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
       400, "messages[0].content[0].type", "unsupported_content_type"},
      {"POST", "/v1/chat/completions", "{" + chat_ok + R"(, "max_tokens": 0})", 400, "max_tokens",
       "integer_below_min_value"},
      {"POST", "/v1/chat/completions", "{" + chat_ok + R"(, "max_completion_tokens": 1000})", 400,
       "max_tokens", "context_length_exceeded"},
      {"POST", "/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": ")" + long_prompt + R"("}]})", 400, "messages",
       "context_length_exceeded"},
      {"POST", "/v1/chat/completions", "{" + chat_ok + R"(, "tools": [{"type": "function"}]})", 400,
       "tools", "unsupported_parameter"},
      {"POST", "/v1/chat/completions", "{" + chat_ok + R"(, "model": "other"})", 404, "model",
       "model_not_found"},
      {"POST", "/v1/chat/completions", "{" + chat_ok + R"(, "prompt": "x"})", 400, "prompt",
       "unknown_parameter"},
      {"POST", "/v1/completions", R"({"prompt": ")" + std::string(100000, 'a') + R"("})", 413,
       nullptr, "request_too_large", "65536"},
  };
}

TEST_F(LiveServerTest, BadRequestsGetStatusAndAnErrorNamingTheField) {
  const std::vector<BadRequest> cases = bad_requests();
  ASSERT_GE(cases.size(), 50u);
  for (const BadRequest& c : cases) {
    SCOPED_TRACE(std::string(c.method) + " " + c.path + " " + c.body.substr(0, 120));
    const HttpReply r = http(port(), c.method, c.path, c.body);
    EXPECT_EQ(r.status, c.status) << r.body;
    json body;
    ASSERT_NO_THROW(body = json::parse(r.body)) << r.body;
    ASSERT_TRUE(body.contains("error")) << r.body;
    const json& e = body["error"];
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
    EXPECT_EQ(e["type"], "invalid_request_error");
    if (c.param == nullptr) {
      EXPECT_TRUE(e["param"].is_null()) << r.body;
    } else {
      EXPECT_EQ(e["param"], c.param) << r.body;
    }
    if (*c.code != '\0') {
      EXPECT_EQ(e["code"], c.code) << r.body;
    }
    EXPECT_NE(e["message"].get<std::string>().find(c.message_has), std::string::npos) << r.body;
  }
  // Nothing was left running (waited for, as the last step's report may
  // come after the reply), and the server still answers.
  EXPECT_EQ(http(port(), "GET", "/health").status, 200);
  expect_all_blocks_back();
  const json m = metrics_value_lines();
  EXPECT_EQ(m["kvforge_requests_running"], 0);
  EXPECT_GE(m["kvforge_http_responses_total{status=\"400\"}"], 40);
}

TEST_F(LiveServerTest, ApiKeyIsRequiredWhenSet) {
  const int keyed = keyed_->server->port();
  const std::string body = R"({"prompt": "Hi", "max_tokens": 2})";
  for (const std::string& header : {std::string(), std::string("Authorization: Bearer wrong\r\n"),
                                    std::string("Authorization: sekret\r\n")}) {
    const HttpReply r = http(keyed, "POST", "/v1/completions", body, header);
    EXPECT_EQ(r.status, 401) << header;
    EXPECT_EQ(json::parse(r.body)["error"]["code"], "invalid_api_key");
  }
  EXPECT_EQ(http(keyed, "POST", "/v1/completions", body, "Authorization: Bearer sekret\r\n").status,
            200);
  EXPECT_EQ(http(keyed, "GET", "/health").status, 200);  // not under /v1/
}

TEST_F(LiveServerTest, RefusedRequestsWithBodiesLeaveTheConnectionUsable) {
  // One connection: requests refused with 405 and 401 (their bodies unread
  // by any handler), then a good one, which must be answered as itself.
  const std::string body = R"({"prompt": "Hi", "max_tokens": 2})";
  const std::string length = "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  TestConnection c(keyed_->server->port());
  ASSERT_TRUE(c.connected());
  c.send_all("PUT /v1/completions HTTP/1.1\r\nHost: x\r\n" + length + body);
  EXPECT_EQ(c.read_reply().status, 405);
  c.send_all("POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + length + body);
  EXPECT_EQ(c.read_reply().status, 401);
  c.send_all("POST /health HTTP/1.1\r\nHost: x\r\n" + length + body);
  EXPECT_EQ(c.read_reply().status, 405);
  c.send_all("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n" +
             length + body);
  const HttpReply good = c.read_reply();
  EXPECT_EQ(good.status, 200) << good.body;
  EXPECT_EQ(json::parse(good.body)["object"], "text_completion");
}

TEST_F(LiveServerTest, SlowBodyGets408AndGarbageDoesNotHurt) {
  // Content-Length promises more than arrives: the read timeout (1 s) ends it.
  const HttpReply slow = raw_exchange(port(),
                                      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                      "100\r\nContent-Type: application/json\r\n\r\n{\"prompt\"",
                                      30);
  EXPECT_EQ(slow.status, 408) << slow.headers << slow.body;
  EXPECT_EQ(json::parse(slow.body)["error"]["code"], "request_timeout");
  // A connection that sends garbage.
  const HttpReply garbage = raw_exchange(port(), "HELLO\r\n\r\n", 30);
  EXPECT_TRUE(garbage.status == 0 || garbage.status == 400) << garbage.status;
  EXPECT_EQ(http(port(), "GET", "/health").body, "{\"status\":\"ok\"}");
}

TEST_F(LiveServerTest, CompletionMatchesTheEngineAndReportsUsage) {
  const std::string prompt = "Once upon a time";
  const std::vector<int32_t> ids = engine_->tokenize(prompt, true, false);
  const std::string expected = engine_greedy(ids, 24);
  ASSERT_FALSE(expected.empty());

  const HttpReply r = http(port(), "POST", "/v1/completions",
                           R"({"model": "stories260K", "prompt": ")" + prompt +
                               R"(", "max_tokens": 24, "temperature": 0})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "stories260K");
  EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["text"], expected);
  const json& u = j["usage"];
  EXPECT_EQ(u["prompt_tokens"], ids.size());
  EXPECT_EQ(u["completion_tokens"].get<int>() + u["prompt_tokens"].get<int>(), u["total_tokens"]);
  if (j["choices"][0]["finish_reason"] == "length") {
    EXPECT_EQ(u["completion_tokens"], 24);
  }
  EXPECT_EQ(u["kvforge"]["reused_prompt_tokens"].get<int>() +
                u["kvforge"]["computed_prompt_tokens"].get<int>(),
            static_cast<int>(ids.size()));

  // The same request streamed: the pieces add up to the same text.
  const HttpReply s = http(port(), "POST", "/v1/completions",
                           R"({"prompt": ")" + prompt +
                               R"(", "max_tokens": 24, "temperature": 0, "stream": true,
                                  "stream_options": {"include_usage": true}})");
  ASSERT_EQ(s.status, 200);
  EXPECT_NE(s.headers.find("text/event-stream"), std::string::npos);
  const std::vector<std::string> events = sse_events(s.body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  std::string id;
  int finishes = 0;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    const json c = json::parse(events[i]);
    EXPECT_EQ(c["object"], "text_completion");
    if (id.empty()) id = c["id"];
    EXPECT_EQ(c["id"], id);
    EXPECT_TRUE(c.contains("usage") && c["usage"].is_null());
    text += c["choices"][0]["text"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) ++finishes;
  }
  EXPECT_EQ(text, expected);
  EXPECT_EQ(finishes, 1);
  const json usage = json::parse(events[events.size() - 2]);
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["prompt_tokens"], ids.size());
  expect_all_blocks_back();
}

TEST_F(LiveServerTest, StopSequencesEndTheTextEvenAcrossTokens) {
  const std::string prompt = "Once upon a time";
  const std::vector<int32_t> ids = engine_->tokenize(prompt, true, false);
  const std::string full = engine_greedy(ids, 40);
  ASSERT_GE(full.size(), 12u);
  // Find a stop string that spans two tokens: the last character of one
  // piece and the first of the next.
  std::string spanning;
  {
    std::string so_far;
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::vector<std::string> pieces;
    RequestParams p;
    p.prompt = ids;
    p.max_tokens = 40;
    p.sampling.temperature = 0;
    ASSERT_TRUE(engine_
                    ->submit(p,
                             [&](const RequestEvent& e) {
                               std::lock_guard lock(m);
                               if (e.token >= 0) pieces.push_back(engine_->token_to_piece(e.token));
                               if (e.finish != FinishReason::kNone) {
                                 done = true;
                                 cv.notify_all();
                               }
                               return true;
                             })
                    .ok());
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done; });
    for (size_t i = 3; i + 1 < pieces.size() && spanning.empty(); ++i) {
      if (pieces[i].size() >= 2 && !pieces[i + 1].empty()) {
        spanning = pieces[i].substr(pieces[i].size() - 1) + pieces[i + 1].substr(0, 1);
      }
    }
  }
  ASSERT_FALSE(spanning.empty());
  const std::string expected = full.substr(0, full.find(spanning));
  for (const bool stream : {false, true}) {
    json body = {{"prompt", prompt},
                 {"max_tokens", 40},
                 {"temperature", 0},
                 {"stop", {spanning, "@@"}},
                 {"stream", stream}};
    const HttpReply r = http(port(), "POST", "/v1/completions", body.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    std::string text;
    std::string finish;
    if (stream) {
      for (const std::string& e : sse_events(r.body)) {
        if (e == "[DONE]") continue;
        const json c = json::parse(e);
        text += c["choices"][0]["text"].get<std::string>();
        if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
      }
    } else {
      const json j = json::parse(r.body);
      text = j["choices"][0]["text"];
      finish = j["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(text, expected) << "stop '" << spanning << "' in '" << full << "'";
    EXPECT_EQ(finish, "stop");
  }
  expect_all_blocks_back();
}

TEST_F(LiveServerTest, SeveralChoicesAndSeeds) {
  const std::string body =
      R"({"prompt": "Once upon a time", "max_tokens": 16, "temperature": 1.0, "n": 2, "seed": 7})";
  const HttpReply a = http(port(), "POST", "/v1/completions", body);
  const HttpReply b = http(port(), "POST", "/v1/completions", body);
  ASSERT_EQ(a.status, 200) << a.body;
  const json ja = json::parse(a.body);
  const json jb = json::parse(b.body);
  ASSERT_EQ(ja["choices"].size(), 2u);
  EXPECT_EQ(ja["choices"][0]["index"], 0);
  EXPECT_EQ(ja["choices"][1]["index"], 1);
  // A fixed seed reproduces every choice; the choices draw differently.
  EXPECT_EQ(ja["choices"][0]["text"], jb["choices"][0]["text"]);
  EXPECT_EQ(ja["choices"][1]["text"], jb["choices"][1]["text"]);
  EXPECT_NE(ja["choices"][0]["text"], ja["choices"][1]["text"]);
  const int completion = ja["usage"]["completion_tokens"];
  EXPECT_GE(completion, 2);
  EXPECT_LE(completion, 32);

  // Streamed: both indices appear, each finishing once.
  const HttpReply s = http(port(), "POST", "/v1/chat/completions",
                           R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
                               "n": 2, "stream": true})");
  ASSERT_EQ(s.status, 200);
  int roles[2] = {0, 0};
  int finishes[2] = {0, 0};
  for (const std::string& e : sse_events(s.body)) {
    if (e == "[DONE]") continue;
    const json c = json::parse(e);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    const int index = c["choices"][0]["index"];
    ASSERT_TRUE(index == 0 || index == 1);
    if (c["choices"][0]["delta"].contains("role")) ++roles[index];
    if (!c["choices"][0]["finish_reason"].is_null()) ++finishes[index];
  }
  EXPECT_EQ(roles[0], 1);
  EXPECT_EQ(roles[1], 1);
  EXPECT_EQ(finishes[0], 1);
  EXPECT_EQ(finishes[1], 1);
  expect_all_blocks_back();
}

TEST_F(LiveServerTest, ChatUsesThePlainFallbackTemplate) {
  const HttpReply r = http(port(), "POST", "/v1/chat/completions",
                           R"({"messages": [{"role": "system", "content": "Tell a story."},
                            {"role": "user", "content": "Hi"}], "max_tokens": 12,
               "temperature": 0})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::vector<int32_t> ids =
      engine_->tokenize("system: Tell a story.\nuser: Hi\nassistant:", true, true);
  EXPECT_EQ(j["usage"]["prompt_tokens"], ids.size());
  EXPECT_EQ(j["choices"][0]["message"]["content"], engine_greedy(ids, 12));
  expect_all_blocks_back();
}

TEST_F(LiveServerTest, CacheSaltSeparatesPrefixReuse) {
  const std::string prompt = words(40);
  auto reused = [&](const std::string& salt) {
    const json body = {{"prompt", prompt},
                       {"max_tokens", 2},
                       {"kvforge", {{"cache_salt", salt}, {"workflow", "w"}, {"next_use", 1}}}};
    const HttpReply r = http(port(), "POST", "/v1/completions", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body)["usage"]["kvforge"]["reused_prompt_tokens"].get<int>();
  };
  EXPECT_EQ(reused("alice"), 0);
  EXPECT_GT(reused("alice"), 16);  // at least one block of the same prompt
  EXPECT_EQ(reused("bob"), 0);
  expect_all_blocks_back();
}

TEST_F(LiveServerTest, WorkflowOutputsAreKeptAndRelayIsReported) {
  // Agent A's greedy output, as token ids (the engine driven directly).
  const std::vector<int32_t> a_prompt = engine_->tokenize("Once upon a time", true, false);
  std::vector<int32_t> a_output;
  {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    RequestParams p;
    p.prompt = a_prompt;
    p.max_tokens = 40;
    p.stop_at_end_of_generation = false;
    p.sampling.temperature = 0;
    ASSERT_TRUE(engine_
                    ->submit(p,
                             [&](const RequestEvent& e) {
                               std::lock_guard lock(m);
                               if (e.token >= 0) a_output.push_back(e.token);
                               if (e.finish != FinishReason::kNone) {
                                 done = true;
                                 cv.notify_all();
                               }
                               return true;
                             })
                    .ok());
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done; });
  }
  ASSERT_EQ(a_output.size(), 40u);
  // The same request through the server, in a workflow: its output is kept.
  const json a_body = {{"prompt", a_prompt},
                       {"max_tokens", 40},
                       {"temperature", 0},
                       {"ignore_eos", true},
                       {"kvforge", {{"workflow", "relay-wf"}, {"agent", "planner"}}}};
  const double kept_before = metrics_value_lines()["kvforge_relay_outputs"];
  const HttpReply a = http(port(), "POST", "/v1/completions", a_body.dump());
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(json::parse(a.body)["choices"][0]["text"], engine_->detokenize(a_output, true));
  EXPECT_EQ(metrics_value_lines()["kvforge_relay_outputs"], kept_before + 1);
  // Agent B quotes A's output after instructions of its own.
  std::vector<int32_t> b_prompt = engine_->tokenize("The critic reads the plan:", true, false);
  b_prompt.insert(b_prompt.end(), a_output.begin(), a_output.end() - 1);
  const std::vector<int32_t> tail = engine_->tokenize(" The end.", false, false);
  b_prompt.insert(b_prompt.end(), tail.begin(), tail.end());
  auto relayed = [&](const std::string& workflow) {
    const json body = {{"prompt", b_prompt},
                       {"max_tokens", 4},
                       {"kvforge", {{"workflow", workflow}, {"agent", "critic"}}}};
    const HttpReply r = http(port(), "POST", "/v1/completions", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    const json u = json::parse(r.body)["usage"]["kvforge"];
    EXPECT_LE(u["relay_recomputed_tokens"].get<int>(), u["relay_prompt_tokens"].get<int>());
    return u["relay_prompt_tokens"].get<int>();
  };
  const double relayed_before = metrics_value_lines()["kvforge_prompt_tokens_relayed_total"];
  // The whole quoted run (39 tokens, past the 16-token minimum) comes from
  // A's output. (First: the second request finds the same prompt in the
  // prefix cache.)
  const int n = relayed("relay-wf");
  EXPECT_EQ(n, 39);
  EXPECT_EQ(relayed("another-wf"), 0);  // relay stays within a workflow
  EXPECT_EQ(metrics_value_lines()["kvforge_prompt_tokens_relayed_total"], relayed_before + n);
  expect_all_blocks_back();
}

TEST_F(LiveServerTest, ModelsHealthAndMetrics) {
  // Something generated first (each test may run in its own process).
  ASSERT_EQ(http(port(), "POST", "/v1/completions", R"({"prompt": "Hi", "max_tokens": 3})").status,
            200);
  const json models = json::parse(http(port(), "GET", "/v1/models").body);
  EXPECT_EQ(models["data"][0]["id"], "stories260K");
  const json one = json::parse(http(port(), "GET", "/v1/models/stories260K").body);
  EXPECT_EQ(one["id"], "stories260K");
  EXPECT_EQ(one["object"], "model");
  const HttpReply m = http(port(), "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.headers.find("text/plain; version=0.0.4"), std::string::npos);
  // The metrics the server promises (docs/serving.md), each with its TYPE.
  for (const char* family :
       {"kvforge_kv_blocks gauge", "kvforge_kv_blocks_capacity gauge",
        "kvforge_prefix_cache_hit_rate gauge", "kvforge_prompt_tokens_reused_total counter",
        "kvforge_prompt_tokens_computed_total counter",
        "kvforge_time_to_first_token_seconds histogram",
        "kvforge_time_per_output_token_seconds histogram", "kvforge_requests_waiting gauge",
        "kvforge_requests_running gauge", "kvforge_preemptions_total counter",
        "kvforge_http_responses_total counter"}) {
    EXPECT_NE(m.body.find(std::string("# TYPE ") + family + "\n"), std::string::npos) << family;
  }
  // The numbers agree with the engine's own counters once it is idle (the
  // reply can reach the client before the step that finishes the request
  // has freed its blocks: read earlier, the free count was one short).
  expect_all_blocks_back();
  const json v = metrics_value_lines();
  for (const char* state : {"used", "free", "cached"}) {
    EXPECT_TRUE(v.contains(std::string("kvforge_kv_blocks{state=\"") + state + "\"}")) << state;
  }
  const ServingStats st = engine_->stats();
  EXPECT_EQ(v["kvforge_kv_blocks_capacity"], st.cache.blocks_total);
  EXPECT_EQ(v["kvforge_kv_blocks{state=\"free\"}"], st.cache.blocks_free);
  EXPECT_EQ(v["kvforge_prompt_tokens_reused_total"], st.reused_tokens);
  EXPECT_EQ(v["kvforge_preemptions_total"], st.preemptions);
  EXPECT_EQ(v["kvforge_requests_waiting"], 0);
  // Histograms: cumulative buckets ending in +Inf equal to the count.
  const double ttft_count = v["kvforge_time_to_first_token_seconds_count"];
  EXPECT_EQ(v["kvforge_time_to_first_token_seconds_bucket{le=\"+Inf\"}"], ttft_count);
  EXPECT_EQ(ttft_count, st.time_to_first_token.total);
  EXPECT_GT(ttft_count, 0);
  EXPECT_EQ(http(port(), "GET", "/health").body, "{\"status\":\"ok\"}");
}

// Many clients connecting in the same instant are all served: the listen
// backlog holds them until the server accepts (with httplib's own backlog
// of 5 the kernel answered the overflow with SYN cookies and reset some).
TEST_F(LiveServerTest, ABurstOfConnectionsIsServed) {
  constexpr int kClients = 256;
  std::vector<std::unique_ptr<TestConnection>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<TestConnection>(port()));
  for (auto& c : clients) {
    ASSERT_TRUE(c->connected());
    c->send_all("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  }
  int served = 0;
  for (auto& c : clients) served += c->read_reply().status == 200 ? 1 : 0;
  EXPECT_EQ(served, kClients);
}

// A second server cannot take a port that one is listening on.
TEST_F(LiveServerTest, APortInUseIsRefused) {
  ServerOptions so;
  so.port = port();
  auto second = HttpServer::create(*engine_, so);
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  const Status bound = (*second)->bind();
  EXPECT_FALSE(bound.ok());
  EXPECT_NE(bound.message().find("in use"), std::string::npos) << bound.message();
  // The first still answers.
  EXPECT_EQ(http(port(), "GET", "/health").status, 200);
}

TEST_F(LiveServerTest, ClientLeavingMidStreamCancelsAndFreesBlocks) {
  const double cancelled_before = metrics_value_lines().value(
      "kvforge_requests_finished_total{finish_reason=\"cancelled\"}", 0.0);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string body =
      R"({"prompt": "Once upon a time", "max_tokens": 480, "ignore_eos": true, "stream": true})";
  const std::string request =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  char buf[256];
  ASSERT_GT(recv(fd, buf, sizeof(buf), 0), 0);  // the stream has begun
  close(fd);
  // The request ends cancelled rather than running to 480 tokens, and every
  // block it held is back (free or in the prefix cache). Bounded wait.
  json m;
  for (int i = 0; i < 400; ++i) {
    m = metrics_value_lines();
    if (m.value("kvforge_requests_finished_total{finish_reason=\"cancelled\"}", 0.0) >
            cancelled_before &&
        m["kvforge_requests_running"] == 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(m["kvforge_requests_finished_total{finish_reason=\"cancelled\"}"],
            cancelled_before + 1);
  EXPECT_EQ(m["kvforge_kv_blocks{state=\"used\"}"], 0);
  EXPECT_EQ(m["kvforge_requests_running"], 0);
  expect_all_blocks_back();
}

}  // namespace
}  // namespace kvforge::server
