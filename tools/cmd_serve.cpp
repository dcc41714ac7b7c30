// kvforge serve: the OpenAI-compatible HTTP server (docs/serving.md) over
// one model. Uses the public API only (kvforge/engine.h, server/server.h).
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "command.h"
#include "engine_options.h"
#include "kvforge/engine.h"
#include "server/server.h"

namespace kvforge::cli {
namespace {

struct ServeArgs {
  EngineOptions engine;
  server::ServerOptions server;
};

int serve(ServeArgs& a) {
  // SIGINT and SIGTERM are taken by one thread (below) that stops the
  // server; every thread created from here on inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto engine = Engine::create(a.engine);
  if (!engine.ok()) return fail(engine.status().to_string());
  auto made = server::HttpServer::create(**engine, a.server);
  if (!made.ok()) return fail(made.status().message());
  server::HttpServer& http = **made;
  if (Status s = http.bind(); !s.ok()) return fail(s.message());

  const ModelInfo& info = (*engine)->info();
  std::fprintf(stderr,
               "kvforge serve: model '%s' (%s, context %d, parallel %d) | KV cache: %s | chat "
               "template: %s\n",
               http.model_id().c_str(), info.architecture.c_str(), info.n_ctx, a.engine.parallel,
               info.kv_description.c_str(), http.chat_template_description().c_str());
  std::fprintf(stderr, "kvforge serve: listening on http://%s:%d\n", a.server.host.c_str(),
               http.port());
  std::fflush(stderr);

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    http.stop();
  });
  http.run();
  // run() also returns when listening fails; wake the waiter either way.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  std::fprintf(stderr, "kvforge serve: stopped\n");
  return 0;
}

KVFORGE_REGISTER_COMMAND(
    serve_command, "serve", "Serve a model over an OpenAI-compatible HTTP API",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<ServeArgs>();
      add_engine_options(app, a->engine);
      server::ServerOptions& s = a->server;
      app.add_option("--host", s.host, "Address to listen on")->capture_default_str();
      app.add_option("--port", s.port, "Port to listen on (0: any free port)")
          ->check(CLI::Range(0, 65535))
          ->capture_default_str();
      app.add_option("--model-name", s.model_id,
                     "The model's name in the API (default: the file name without .gguf)");
      app.add_option("--api-key", s.api_key,
                     "Require \"Authorization: Bearer KEY\" on /v1/ routes");
      app.add_option("--chat-template", s.chat_template,
                     "Chat format: auto (from the model's template), chatml, llama2, llama3, "
                     "mistral, plain")
          ->capture_default_str();
      app.add_flag("--no-chat-fallback{false}", s.chat_template_fallback,
                   "With --chat-template auto, refuse to start when the model's template is "
                   "missing or unknown instead of using the plain format");
      app.add_option("--max-body", s.max_body_bytes, "Largest request body in bytes (larger: 413)")
          ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
          ->capture_default_str();
      app.add_option("--read-timeout", s.read_timeout_s,
                     "Seconds a request may take to arrive (then 408)")
          ->check(CLI::Range(1, 3600))
          ->capture_default_str();
      app.add_option("--write-timeout", s.write_timeout_s,
                     "Seconds a client may take to read (then it is dropped)")
          ->check(CLI::Range(1, 3600))
          ->capture_default_str();
      app.add_option("--http-threads", s.http_threads,
                     "Connections served at once (default 32; each streaming client holds one)")
          ->check(CLI::Range(0, 4096));
      app.add_option("--max-n", s.limits.max_n, "Most choices (n) per request")
          ->check(CLI::Range(1, 1024))
          ->capture_default_str();
      return [a] { return serve(*a); };
    });

}  // namespace
}  // namespace kvforge::cli
