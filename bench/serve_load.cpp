// Load generator for `kvforge serve` (bench/serve_load.sh runs both): N
// clients on loopback, each sending streamed completions one after another
// for a fixed time. Reports requests, generated tokens per second, time to
// first token and time per output token (p50/p95/p99), then waits for the
// server to go idle and reads /metrics: every KV block must be back in the
// pool (none "used"), or the exit status is 1.
//
// usage: kvforge_serve_load PORT CLIENTS SECONDS [MAX_TOKENS=64] [PROMPT_WORDS=32]
//
// Time to first token: from sending the request to the first event with
// text. Time per output token: (last text event - first) / (tokens - 1),
// with tokens from the final usage chunk (each request asks for exactly
// MAX_TOKENS with ignore_eos). Requests still running at the deadline are
// finished and counted; throughput divides by the time until the last ends.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{120, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// A GET over a fresh connection; the body, or empty on failure.
std::string http_get(int port, const std::string& path) {
  const int fd = connect_loopback(port);
  if (fd < 0) return {};
  std::string out;
  if (send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) {
    char buf[8192];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? std::string() : out.substr(body + 4);
}

// The value of a metric line "NAME VALUE" in Prometheus text, or -1.
double metric(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::atof(text.c_str() + at + name.size() + 2);
}

struct Sample {
  double ttft = 0;
  double tpot = 0;
  int tokens = 0;
};

// One streamed request; false on any failure.
bool one_request(int port, const std::string& body, Sample& out) {
  const int fd = connect_loopback(port);
  if (fd < 0) return false;
  const std::string request =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  const Clock::time_point start = Clock::now();
  if (!send_all(fd, request)) {
    close(fd);
    return false;
  }
  std::string buffer;
  size_t scanned = 0;  // events before this offset are counted
  bool first_seen = false;
  bool done = false;
  Clock::time_point first, last;
  char buf[4096];
  while (!done) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    buffer.append(buf, static_cast<size_t>(n));
    const Clock::time_point now = Clock::now();
    // Events are "data: ...\n\n"; chunk-size lines between them are skipped.
    size_t at;
    while ((at = buffer.find("data: ", scanned)) != std::string::npos) {
      const size_t end = buffer.find("\n\n", at);
      if (end == std::string::npos) break;
      const std::string event = buffer.substr(at + 6, end - at - 6);
      scanned = end + 2;
      if (event == "[DONE]") {
        done = true;
        break;
      }
      if (event.find("\"error\"") != std::string::npos &&
          event.find("\"choices\"") == std::string::npos) {
        close(fd);
        return false;
      }
      if (const size_t u = event.find("\"completion_tokens\":"); u != std::string::npos) {
        out.tokens = std::atoi(event.c_str() + u + 20);
      }
      if (event.find("\"text\":\"\"") == std::string::npos &&
          event.find("\"text\":") != std::string::npos) {
        if (!first_seen) first = now;
        first_seen = true;
        last = now;
      }
    }
  }
  close(fd);
  if (!done || !first_seen || out.tokens < 1) return false;
  out.ttft = seconds_since(start, first);
  out.tpot = out.tokens > 1 ? seconds_since(first, last) / (out.tokens - 1) : 0;
  return true;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s PORT CLIENTS SECONDS [MAX_TOKENS=64] [PROMPT_WORDS=32]\n",
                 argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int clients = std::atoi(argv[2]);
  const double seconds = std::atof(argv[3]);
  const int max_tokens = argc > 4 ? std::atoi(argv[4]) : 64;
  const int prompt_words = argc > 5 ? std::atoi(argv[5]) : 32;
  if (port <= 0 || clients <= 0 || seconds <= 0 || max_tokens <= 0 || prompt_words <= 0) {
    std::fprintf(stderr,
                 "serve_load: PORT, CLIENTS, SECONDS, MAX_TOKENS, PROMPT_WORDS must be > 0\n");
    return 2;
  }
  if (http_get(port, "/health").find("ok") == std::string::npos) {
    std::fprintf(stderr, "serve_load: no server answering /health on 127.0.0.1:%d\n", port);
    return 2;
  }

  static const char* kWords[] = {"the", "little", "dog",  "ran", "to",  "a",
                                 "big", "red",    "ball", "and", "sun", "happy"};
  std::mutex mutex;
  std::vector<Sample> samples;
  std::atomic<int> failures{0};
  const Clock::time_point begin = Clock::now();
  const Clock::time_point deadline =
      begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int r = 0; Clock::now() < deadline; ++r) {
        // Distinct prompts per client and request (no prefix-cache shortcut
        // beyond the shared opening word).
        std::string prompt = "Once";
        for (int w = 0; w < prompt_words - 1; ++w) {
          prompt += ' ';
          prompt += kWords[static_cast<size_t>(c * 7 + r * 3 + w * (c + 1)) % std::size(kWords)];
        }
        const std::string body =
            "{\"prompt\":\"" + prompt + "\",\"max_tokens\":" + std::to_string(max_tokens) +
            ",\"ignore_eos\":true,\"temperature\":0.8,\"seed\":" + std::to_string(c * 100000 + r) +
            ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
        Sample s;
        if (one_request(port, body, s)) {
          std::lock_guard lock(mutex);
          samples.push_back(s);
        } else {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = seconds_since(begin, Clock::now());

  std::vector<double> ttft, tpot;
  long tokens = 0;
  for (const Sample& s : samples) {
    ttft.push_back(s.ttft * 1e3);
    if (s.tokens > 1) tpot.push_back(s.tpot * 1e3);
    tokens += s.tokens;
  }
  std::printf("clients %d, %.1f s, max_tokens %d, prompt %d words\n", clients, elapsed, max_tokens,
              prompt_words);
  std::printf("requests %zu ok, %d failed; %ld tokens; %.1f tokens/s; %.2f requests/s\n",
              samples.size(), failures.load(), tokens, static_cast<double>(tokens) / elapsed,
              static_cast<double>(samples.size()) / elapsed);
  std::printf("TTFT ms   p50 %.1f  p95 %.1f  p99 %.1f\n", percentile(ttft, 0.5),
              percentile(ttft, 0.95), percentile(ttft, 0.99));
  std::printf("TPOT ms   p50 %.2f  p95 %.2f  p99 %.2f\n", percentile(tpot, 0.5),
              percentile(tpot, 0.95), percentile(tpot, 0.99));

  // Idle server: every block back (free, or held by the prefix cache only).
  std::string m;
  for (int i = 0; i < 200; ++i) {
    m = "\n" + http_get(port, "/metrics");
    if (metric(m, "kvforge_requests_running") == 0 && metric(m, "kvforge_requests_waiting") == 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double used = metric(m, "kvforge_kv_blocks{state=\"used\"}");
  const double free_blocks = metric(m, "kvforge_kv_blocks{state=\"free\"}");
  const double cached = metric(m, "kvforge_kv_blocks{state=\"cached\"}");
  const double total = metric(m, "kvforge_kv_blocks_capacity");
  std::printf(
      "after: running %.0f, KV blocks used %.0f, free %.0f, cached %.0f of %.0f; "
      "preemptions %.0f\n",
      metric(m, "kvforge_requests_running"), used, free_blocks, cached, total,
      metric(m, "kvforge_preemptions_total"));
  const bool all_back = used == 0 && free_blocks + cached == total && total > 0;
  if (!all_back) std::printf("FAIL: not every KV block is back in the pool\n");
  if (failures > 0) std::printf("FAIL: %d requests failed\n", failures.load());
  return all_back && failures == 0 && !samples.empty() ? 0 : 1;
}
