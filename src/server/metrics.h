// Metrics: the engine's counters and the server's own, in the Prometheus
// text exposition format (version 0.0.4) for GET /metrics.
//
// ServerCounters are what only the server sees — requests by finish reason,
// HTTP responses by status; ServerMetrics keeps them for many threads.
// render_metrics is a pure function of a snapshot of both. The names and
// meanings are listed in docs/serving.md.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "kvforge/generation.h"

namespace kvforge::server {

struct ServerCounters {
  std::map<std::string, int64_t> finished_by_reason;  // "stop", "length", "cancelled", "error"
  std::map<int, int64_t> responses_by_status;         // 200, 400, ...
};

// Thread-safe accumulation of ServerCounters.
class ServerMetrics {
 public:
  void count_finish(const std::string& reason);
  void count_response(int status);
  [[nodiscard]] ServerCounters snapshot() const;

 private:
  mutable std::mutex mutex_;
  ServerCounters counters_;
};

[[nodiscard]] std::string render_metrics(const ServingStats& stats, const ServerCounters& server);

}  // namespace kvforge::server
