// Test helpers for the Redis tier: real redis-server processes on loopback
// ports (one server, or a three-master cluster made by redis-cli), a fake
// server that never answers or answers garbage, and raw hiredis commands
// for checking what the tier wrote.
//
// Servers are child processes in their own temporary directories, killed
// by the destructor and, should the test binary die first, by the kernel
// (PR_SET_PDEATHSIG), so that no test leaves a redis-server behind.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace kvforge::redis_test {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline bool on_path(const char* program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string dirs = path;
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string file = dirs.substr(start, end - start) + "/" + program;
    if (!file.empty() && access(file.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// A loopback port nobody listens on right now.
inline int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

struct ReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

// One command on a fresh connection; null if the server did not answer.
inline Reply raw_command(int port, const std::vector<std::string>& args,
                         milliseconds timeout = milliseconds(2000)) {
  const timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  redisContext* context = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (context == nullptr) return nullptr;
  Reply reply;
  if (context->err == 0 && redisSetTimeout(context, tv) == REDIS_OK) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const std::string& arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    reply.reset(static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
  }
  redisFree(context);
  return reply;
}

inline std::string reply_text(const Reply& reply) {
  if (reply == nullptr) return "(no reply)";
  if (reply->type == REDIS_REPLY_INTEGER) return std::to_string(reply->integer);
  if (reply->str != nullptr) return std::string(reply->str, reply->len);
  return fmt::format("(reply type {})", reply->type);
}

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/kvforge-redis-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// redis-server --port P --bind 127.0.0.1 --save "" --appendonly no
// --daemonize no, logging to a file in its own directory.
class RedisServer {
 public:
  explicit RedisServer(std::vector<std::string> extra_args = {})
      : extra_args_(std::move(extra_args)) {}
  ~RedisServer() { kill(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts on port (0: a free one, retried if another process takes it
  // first); true once the server answers PING.
  bool start(int port = 0) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = port != 0 ? port : free_port();
      if (spawn() && wait_for_ping()) return true;
      kill();
      if (port != 0) return false;
    }
    return false;
  }
  // SIGKILL: no goodbye to the clients, like a crash.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  [[nodiscard]] bool running() const {
    if (pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) != 0) pid_ = -1;  // exited, reaped
    return pid_ > 0;
  }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::string& dir() const { return dir_.path(); }
  [[nodiscard]] std::string address() const { return fmt::format("127.0.0.1:{}", port_); }

 private:
  bool spawn() {
    std::vector<std::string> args = {"redis-server",
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--daemonize",
                                     "no",
                                     "--dir",
                                     dir(),
                                     "--logfile",
                                     dir() + "/redis.log"};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const std::string out = dir() + "/stdout.log";
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execvp(argv[0], argv.data());
      _exit(127);
    }
    return pid_ > 0;
  }
  bool wait_for_ping() {
    const auto deadline = Clock::now() + milliseconds(5000);
    while (Clock::now() < deadline) {
      if (!running()) return false;  // e.g. the port was taken
      const Reply pong = raw_command(port_, {"PING"}, milliseconds(200));
      if (pong != nullptr && reply_text(pong) == "PONG") return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

  std::vector<std::string> extra_args_;
  TempDir dir_;
  int port_ = 0;
  mutable pid_t pid_ = -1;
};

// Three masters, no replicas, all 16384 slots, made by
// redis-cli --cluster create. Partial coverage keeps the survivors serving
// when a node dies, as a cache deployment would want.
class RedisCluster {
 public:
  static constexpr int kNodes = 3;

  // An empty string when the cluster is up with every slot served, else why not.
  std::string start() {
    std::string create = "redis-cli --cluster create";
    for (int i = 0; i < kNodes; ++i) {
      nodes_.push_back(std::make_unique<RedisServer>(std::vector<std::string>{
          "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
          "--cluster-require-full-coverage", "no", "--cluster-node-timeout", "5000"}));
      // The cluster bus listens on port + 10000.
      int port = 0;
      for (int attempt = 0; attempt < 50 && port == 0; ++attempt) {
        port = free_port();
        if (port > 55000 || !port_free(port + 10000)) port = 0;
      }
      if (port == 0 || !nodes_.back()->start(port))
        return fmt::format("redis-server node {} did not start", i);
      create += " " + nodes_.back()->address();
    }
    create += fmt::format(" --cluster-replicas 0 --cluster-yes >{}/create.log 2>&1",
                          nodes_.front()->dir());
    if (std::system(create.c_str()) != 0)
      return "redis-cli --cluster create failed (see create.log)";
    const auto deadline = Clock::now() + milliseconds(20000);
    for (int i = 0; i < kNodes; ++i) {
      for (;;) {
        const std::string info = reply_text(raw_command(port(i), {"CLUSTER", "INFO"}));
        if (info.find("cluster_state:ok") != std::string::npos &&
            info.find("cluster_slots_ok:16384") != std::string::npos &&
            info.find(fmt::format("cluster_known_nodes:{}", kNodes)) != std::string::npos) {
          break;
        }
        if (Clock::now() > deadline)
          return fmt::format("node {} never reached cluster_state:ok", i);
        std::this_thread::sleep_for(milliseconds(20));
      }
    }
    return {};
  }
  [[nodiscard]] bool healthy() const {
    for (const auto& node : nodes_)
      if (!node->running()) return false;
    return nodes_.size() == kNodes;
  }
  [[nodiscard]] RedisServer& node(int i) { return *nodes_[i]; }
  [[nodiscard]] int port(int i) const { return nodes_[i]->port(); }
  [[nodiscard]] std::string id(int i) const {
    return reply_text(raw_command(port(i), {"CLUSTER", "MYID"}));
  }

 private:
  static bool port_free(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    return free;
  }

  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

// A loopback listener that accepts connections and either never answers
// (a stalled server) or answers every read with the same canned bytes (a
// server speaking nonsense).
class FakeServer {
 public:
  explicit FakeServer(std::string reply = {}) : reply_(std::move(reply)) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        listen(listener_, 16) == 0 &&
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
      port_ = ntohs(addr.sin_port);
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
    for (const int fd : clients_) close(fd);
    close(listener_);
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;
  [[nodiscard]] int port() const { return port_; }

 private:
  void serve() {
    while (!stop_) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (const int fd : clients_) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      std::vector<int> open;
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          char buffer[65536];
          const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
          if (n <= 0) {
            close(fds[i].fd);
            continue;
          }
          if (!reply_.empty()) (void)!send(fds[i].fd, reply_.data(), reply_.size(), MSG_NOSIGNAL);
        }
        open.push_back(fds[i].fd);
      }
      if (fds[0].revents & POLLIN) {
        const int client = accept(listener_, nullptr, nullptr);
        if (client >= 0) open.push_back(client);
      }
      clients_.swap(open);
    }
  }

  std::string reply_;
  int listener_ = -1;
  int port_ = 0;
  std::vector<int> clients_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace kvforge::redis_test
