#include "server/server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <random>
#include <utility>

#include <sys/socket.h>

#include <fmt/format.h>
#include <httplib.h>

#include "server/chat_template.h"
#include "server/generation_job.h"
#include "server/metrics.h"
#include "server/openai_response.h"
#include "server/request_plan.h"

namespace kvforge::server {
namespace {

using httplib::Request;
using httplib::Response;
using HandlerResponse = httplib::Server::HandlerResponse;

// How often a waiting handler looks at its connection and at stop().
constexpr auto kPollInterval = std::chrono::milliseconds(50);
// Connections the kernel completes before the server accepts them.
constexpr int kListenBacklog = 4096;

int64_t unix_seconds() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

void send_error(Response& res, const ApiError& e) {
  res.status = e.http_status;
  res.set_content(error_json(e), "application/json");
}

ApiError plain_error(int status, std::string message, std::string code) {
  return ApiError{status, std::move(message), "invalid_request_error", "", std::move(code)};
}

ApiError method_not_allowed(const Request& req, const char* allowed) {
  return plain_error(405,
                     fmt::format("{} {} is not allowed; use {}", req.method, req.path, allowed),
                     "method_not_allowed");
}

// The method a known path takes, or nullptr for an unknown path.
const char* allowed_method(const std::string& path) {
  if (path == "/v1/completions" || path == "/v1/chat/completions") return "POST";
  if (path == "/v1/models" || path.starts_with("/v1/models/") || path == "/health" ||
      path == "/metrics") {
    return "GET";
  }
  return nullptr;
}

}  // namespace

struct HttpServer::Impl {
  Impl(Engine& e, const ServerOptions& o, ChatTemplate t)
      : engine(e), options(o), chat_template(std::move(t)) {}

  void install_routes();
  // With an API key: whether the request carries it; if not, answers 401.
  [[nodiscard]] bool authorized(const Request& req, Response& res) const;
  void handle_generation(Endpoint endpoint, const Request& req, Response& res);
  void stream(std::shared_ptr<GenerationJob> job, ResponseHeader header, bool include_usage,
              int32_t n, Response& res);
  std::string new_id(Endpoint endpoint) {
    return fmt::format("{}-{:016x}{:08x}",
                       endpoint == Endpoint::kChatCompletions ? "chatcmpl" : "cmpl", id_salt,
                       next_id.fetch_add(1));
  }

  Engine& engine;
  ServerOptions options;
  ChatTemplate chat_template;
  std::string template_description;
  std::string model_id;
  int64_t created = unix_seconds();
  uint64_t id_salt = std::random_device{}() * 0x9E3779B97F4A7C15ull;
  std::atomic<uint64_t> next_id{1};
  ServerMetrics metrics;
  httplib::Server http;
  std::atomic<bool> stopping{false};
  int32_t port = -1;
  int listening_socket = -1;  // httplib's, recorded when it is created
};

void HttpServer::Impl::install_routes() {
  const int32_t threads = options.http_threads > 0 ? options.http_threads : 32;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(options.max_body_bytes);
  http.set_read_timeout(options.read_timeout_s, 0);
  http.set_write_timeout(options.write_timeout_s, 0);
  http.set_keep_alive_max_count(1000);

  // Methods httplib does not route: 405 before the body is read, so the
  // connection is not reused.
  http.set_pre_routing_handler([](const Request& req, Response& res) {
    const char* allowed = allowed_method(req.path);
    static constexpr std::string_view kRouted[] = {"GET",   "HEAD",   "POST",   "PUT",
                                                   "PATCH", "DELETE", "OPTIONS"};
    if (allowed != nullptr &&
        std::find(std::begin(kRouted), std::end(kRouted), req.method) == std::end(kRouted)) {
      res.set_header("Allow", allowed);
      res.set_header("Connection", "close");
      send_error(res, method_not_allowed(req, allowed));
      return HandlerResponse::Handled;
    }
    return HandlerResponse::Unhandled;
  });

  // Responses httplib made itself (no route, body too large or too slow,
  // malformed request) get an error body too; ours already have one.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const Request& req,
                                                                     Response& res) {
    if (!res.body.empty()) return HandlerResponse::Unhandled;
    ApiError e;
    if (res.status == 404) {
      e = plain_error(404, fmt::format("there is no route {} {}", req.method, req.path),
                      "unknown_route");
    } else if (res.status == 413) {
      e = plain_error(413,
                      fmt::format("the request body is larger than {} bytes (--max-body)",
                                  options.max_body_bytes),
                      "request_too_large");
    } else if (res.status == 400 && req.has_header("Content-Length") &&
               req.body.size() <
                   std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10)) {
      e = plain_error(408,
                      fmt::format("the request body did not arrive within {} s (--read-timeout)",
                                  options.read_timeout_s),
                      "request_timeout");
      res.set_header("Connection", "close");
    } else {
      e = plain_error(res.status,
                      req.path.empty()
                          ? fmt::format("malformed HTTP request (status {})", res.status)
                          : fmt::format("the server could not read this {} {} request (status {})",
                                        req.method, req.path, res.status),
                      "bad_request");
    }
    send_error(res, e);
    return HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    send_error(res, ApiError{500, "internal error: " + what, "server_error", "", ""});
  });
  http.set_logger(
      [this](const Request&, const Response& res) { metrics.count_response(res.status); });

  http.Get("/health", [](const Request&, Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  http.Get("/metrics", [this](const Request&, Response& res) {
    res.set_content(render_metrics(engine.stats(), metrics.snapshot()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/v1/models", [this](const Request& req, Response& res) {
    if (!authorized(req, res)) return;
    res.set_content(models_json(model_id, created), "application/json");
  });
  http.Get("/v1/models/(.+)", [this](const Request& req, Response& res) {
    if (!authorized(req, res)) return;
    if (req.matches[1] != model_id) {
      return send_error(res, ApiError{404,
                                      fmt::format("the model '{}' does not exist; this server "
                                                  "serves '{}'",
                                                  req.matches[1].str(), model_id),
                                      "invalid_request_error", "model", "model_not_found"});
    }
    std::string list = models_json(model_id, created);
    // The one model object of the list.
    const size_t begin = list.find('{', 1);
    res.set_content(list.substr(begin, list.rfind('}', list.size() - 2) - begin + 1),
                    "application/json");
  });
  http.Post("/v1/completions", [this](const Request& req, Response& res) {
    if (authorized(req, res)) handle_generation(Endpoint::kCompletions, req, res);
  });
  http.Post("/v1/chat/completions", [this](const Request& req, Response& res) {
    if (authorized(req, res)) handle_generation(Endpoint::kChatCompletions, req, res);
  });

  // The other methods on known paths: 405 (after reading any body, so the
  // connection stays usable).
  const auto refuse = [](const char* allowed) {
    return [allowed](const Request& req, Response& res) {
      res.set_header("Allow", allowed);
      send_error(res, method_not_allowed(req, allowed));
    };
  };
  for (const char* path : {"/v1/models", "/v1/models/(.+)", "/health", "/metrics"}) {
    http.Post(path, refuse("GET"));
    http.Put(path, refuse("GET"));
    http.Patch(path, refuse("GET"));
    http.Delete(path, refuse("GET"));
    http.Options(path, refuse("GET"));
  }
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    http.Get(path, refuse("POST"));
    http.Put(path, refuse("POST"));
    http.Patch(path, refuse("POST"));
    http.Delete(path, refuse("POST"));
    http.Options(path, refuse("POST"));
  }
}

bool HttpServer::Impl::authorized(const Request& req, Response& res) const {
  if (options.api_key.empty() ||
      req.get_header_value("Authorization") == "Bearer " + options.api_key) {
    return true;
  }
  send_error(res, plain_error(401,
                              "missing or wrong API key: send \"Authorization: Bearer KEY\" with "
                              "the server's --api-key",
                              "invalid_api_key"));
  return false;
}

void HttpServer::Impl::handle_generation(Endpoint endpoint, const Request& req, Response& res) {
  ParsedRequest parsed = parse_generation_request(endpoint, req.body, options.limits);
  if (const auto* error = std::get_if<ApiError>(&parsed)) return send_error(res, *error);
  const GenerationRequest& request = std::get<GenerationRequest>(parsed);
  auto planned = plan_request(request, engine, chat_template, model_id);
  if (const auto* error = std::get_if<ApiError>(&planned)) return send_error(res, *error);
  const RequestPlan& plan = std::get<RequestPlan>(planned);

  auto job = std::make_shared<GenerationJob>(engine, plan.stop, &metrics);
  if (auto error = job->start(plan.params, plan.n)) return send_error(res, *error);
  ResponseHeader header{endpoint, new_id(endpoint), unix_seconds(), model_id};
  if (request.stream) return stream(job, std::move(header), request.include_usage, plan.n, res);

  // Without streaming the answer is one JSON object: wait for every choice.
  // (The connection is not watched meanwhile: the request ends at its
  // max_tokens, which the context bounds.)
  while (!job->done()) {
    (void)job->wait(kPollInterval);
    if (stopping) job->cancel();
  }
  if (auto failure = job->failure()) return send_error(res, *failure);
  res.set_content(completion_json(header, job->choices(), job->usage()), "application/json");
}

// Server-sent events: a chunk per piece of text and choice, a last chunk
// per choice with its finish reason, the usage when asked for, then
// "data: [DONE]". Between pieces the connection is checked; a closed one
// cancels the job.
void HttpServer::Impl::stream(std::shared_ptr<GenerationJob> job, ResponseHeader header,
                              bool include_usage, int32_t n, Response& res) {
  struct State {
    std::shared_ptr<GenerationJob> job;
    ResponseHeader header;
    bool include_usage = false;
    std::vector<bool> started;
  };
  auto state = std::make_shared<State>(State{std::move(job), std::move(header), include_usage,
                                             std::vector<bool>(static_cast<size_t>(n), false)});
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, state](size_t, httplib::DataSink& sink) {
        State& s = *state;
        if (stopping || !sink.is_writable()) {
          s.job->cancel();
          return false;
        }
        // Once done() holds, every update is queued: this wait drains them.
        const bool done = s.job->done();
        const std::vector<ChoiceUpdate> updates =
            s.job->wait(done ? std::chrono::milliseconds(0) : kPollInterval);
        const bool chat = s.header.endpoint == Endpoint::kChatCompletions;
        std::string out;
        for (const ChoiceUpdate& u : updates) {
          const auto index = static_cast<size_t>(u.index);
          if (chat && !s.started[index]) {
            out +=
                sse_event(chunk_json(s.header, u.index, "", true, std::nullopt, s.include_usage));
          }
          s.started[index] = true;
          if (!u.text.empty()) {
            out += sse_event(
                chunk_json(s.header, u.index, u.text, false, std::nullopt, s.include_usage));
          }
          if (u.finish_reason && (*u.finish_reason == "stop" || *u.finish_reason == "length")) {
            out += sse_event(
                chunk_json(s.header, u.index, "", false, u.finish_reason, s.include_usage));
          }
        }
        if (done) {
          if (auto failure = s.job->failure()) out += sse_event(error_json(*failure));
          if (s.include_usage) out += sse_event(usage_chunk_json(s.header, s.job->usage()));
          out += sse_done();
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) {
          s.job->cancel();
          return false;
        }
        if (done) sink.done();
        return true;
      },
      [state](bool) { state->job->cancel(); });
}

Result<std::unique_ptr<HttpServer>> HttpServer::create(Engine& engine, const ServerOptions& o) {
  if (o.port < 0 || o.port > 65535) {
    return invalid_argument(fmt::format("port must be in [0, 65535], got {}", o.port));
  }
  if (o.max_body_bytes < 1024) {
    return invalid_argument(fmt::format(
        "the request body limit must be at least 1024 bytes, got {}", o.max_body_bytes));
  }
  if (o.read_timeout_s < 1 || o.write_timeout_s < 1) {
    return invalid_argument("read and write timeouts must be at least 1 s");
  }
  if (o.http_threads < 0 || o.http_threads > 4096) {
    return invalid_argument(
        fmt::format("HTTP threads must be in [0, 4096], got {}", o.http_threads));
  }
  const ModelInfo& info = engine.info();
  std::optional<ChatFamily> family;
  std::string description;
  if (o.chat_template == "auto") {
    family = detect_chat_family(info.chat_template);
    if (family) {
      description =
          fmt::format("{} (detected from the model's template)", chat_family_name(*family));
    } else {
      const char* why = info.chat_template.empty() ? "the model has no chat template"
                                                   : "the model's chat template is not one we know";
      if (!o.chat_template_fallback) {
        return invalid_argument(
            fmt::format("{}; choose one with --chat-template ({})", why, chat_family_names()));
      }
      family = ChatFamily::kPlain;
      description = fmt::format("plain (fallback: {})", why);
    }
  } else {
    family = chat_family_from_name(o.chat_template);
    if (!family) {
      return invalid_argument(fmt::format("unknown chat template '{}'; valid: auto, {}",
                                          o.chat_template, chat_family_names()));
    }
    description = fmt::format("{} (chosen)", chat_family_name(*family));
  }
  const std::string bos = info.bos_id >= 0 ? engine.token_to_piece(info.bos_id) : std::string();
  const std::string eos = info.eos_id >= 0 ? engine.token_to_piece(info.eos_id) : std::string();
  auto impl =
      std::make_unique<Impl>(engine, o, ChatTemplate(*family, info.chat_template, bos, eos));
  impl->template_description = std::move(description);
  impl->model_id =
      o.model_id.empty() ? std::filesystem::path(info.path).stem().string() : o.model_id;
  impl->install_routes();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() {
  stop();
}

Status HttpServer::bind() {
  // A client that closes its connection must not kill the process when we
  // write to it: writes then fail with EPIPE, which ends its request.
  std::signal(SIGPIPE, SIG_IGN);
  const auto& o = impl_->options;
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, with which
  // a second server on a port in use would bind and take half of its
  // connections instead of failing.
  impl_->listening_socket = -1;
  impl_->http.set_socket_options([impl = impl_.get()](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    impl->listening_socket = sock;
  });
  if (o.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(o.host);
  } else {
    impl_->port = impl_->http.bind_to_port(o.host, o.port) ? o.port : -1;
  }
  if (impl_->port < 0) {
    return io_error(fmt::format(
        "cannot listen on {}:{} (in use, or not an address of this machine)", o.host, o.port));
  }
  // Debian's httplib is compiled with a listen backlog of 5: a burst of
  // clients connecting at once (64 in bench/serving_throughput.py)
  // overflowed it, and connections answered by SYN cookies were reset.
  // Listening again on the bound socket raises the backlog (Linux caps it
  // at net.core.somaxconn).
  if (impl_->listening_socket < 0 || ::listen(impl_->listening_socket, kListenBacklog) != 0) {
    const int32_t port = std::exchange(impl_->port, -1);  // run() must not start
    return io_error(
        fmt::format("cannot listen on {}:{} with a backlog of {}", o.host, port, kListenBacklog));
  }
  return Status();
}

int32_t HttpServer::port() const {
  return impl_->port;
}

void HttpServer::run() {
  KVF_CHECK(impl_->port >= 0);
  impl_->http.listen_after_bind();
}

void HttpServer::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}

const std::string& HttpServer::model_id() const {
  return impl_->model_id;
}

const std::string& HttpServer::chat_template_description() const {
  return impl_->template_description;
}

}  // namespace kvforge::server
