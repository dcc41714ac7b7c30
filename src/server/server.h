// HttpServer: kvforge's OpenAI-compatible HTTP API over one Engine
// (docs/serving.md).
//
//   POST /v1/completions, POST /v1/chat/completions   (JSON, or SSE with "stream")
//   GET  /v1/models, /v1/models/{id}, /health, /metrics
//
// Each connection is served by a thread of the server's pool; a generation
// request submits its choices to the engine and waits for their text. A
// streamed response sends each piece of text as it comes and checks the
// connection between pieces: a client that goes away has its requests
// cancelled, so their KV blocks return to the pool at the engine's next
// step. Bad requests get an OpenAI-style error body naming the field
// (api_error.h); bodies past max_body_bytes get 413, bodies that do not
// arrive within the read timeout 408, unknown routes 404, wrong methods 405.
//
// Ownership: the server borrows the Engine, which must outlive it. Thread-
// safety: run() blocks serving; stop() may be called from any thread (a
// signal-handling thread) and makes run() return once the open requests
// are answered or cancelled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kvforge/engine.h"
#include "kvforge/status.h"
#include "server/openai_request.h"

namespace kvforge::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int32_t port = 8080;              // 0: any free port (port() tells which)
  std::string model_id;             // the served model's name; empty: the file name without .gguf
  std::string api_key;              // non-empty: /v1/ routes need "Authorization: Bearer KEY"
  size_t max_body_bytes = 1 << 20;  // larger request bodies get 413
  int32_t read_timeout_s = 10;      // a request that does not arrive in time gets 408
  int32_t write_timeout_s = 10;     // a client that does not read in time is dropped
  int32_t http_threads = 0;         // connections served at once; 0: 32
  // Chat template family (chat_template.h) or "auto": detect it from the
  // model's template, falling back to "plain" unless chat_template_fallback
  // is false (then create() fails naming the families).
  std::string chat_template = "auto";
  bool chat_template_fallback = true;
  RequestLimits limits;
};

class HttpServer {
 public:
  // Checks the options (chat template, sizes); starts nothing.
  [[nodiscard]] static Result<std::unique_ptr<HttpServer>> create(Engine& engine,
                                                                  const ServerOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket (kIoError naming host:port on failure).
  [[nodiscard]] Status bind();
  // The bound port, after bind().
  [[nodiscard]] int32_t port() const;
  // Serves until stop(); needs bind() first.
  void run();
  void stop();

  [[nodiscard]] const std::string& model_id() const;
  // "chatml (detected)", "plain (fallback: no template)", ...
  [[nodiscard]] const std::string& chat_template_description() const;

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvforge::server
