// RedisNode: the Redis tier's connections to one Redis server.
//
// A pool of blocking hiredis contexts (one per tier thread at most), a
// deadline on every command, and the server's health:
//
//   up    commands run; a connect failure, timeout, I/O or protocol error
//         frees that context (hiredis cannot reuse it) and the pooled ones,
//         and turns the node down;
//   down  commands fail at once, without touching the network, until the
//         back-off ends (backoff_min, doubling up to backoff_max per failed
//         attempt); then one command tries a new connection, and the first
//         reply (any reply, errors included) turns the node up again.
//
// Each up/down transition prints one line on stderr. A silent server that
// accepts connections but never answers stays down: only a reply counts.
//
// Thread-safety: every member may be called from any thread; commands on
// different threads use different connections.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvforge {

struct RedisEndpoint {
  std::string host;  // name, IPv4 or IPv6 address (no brackets)
  int port = 0;
  // "host:port", or "[v6]:port".
  [[nodiscard]] std::string to_string() const;
};

struct RedisNodeOptions {
  std::chrono::milliseconds connect_timeout{200};
  // The whole command: sending, the server's work and the reply.
  std::chrono::milliseconds command_timeout{300};
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5000};
};

struct RedisReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyFree>;

// One command's arguments, binary safe; the bytes must outlive the call.
using RedisCommand = std::vector<std::string_view>;

struct RedisCall {
  std::vector<RedisReplyPtr> replies;  // one per command, when failure is empty
  std::string failure;                 // no reply: "redis HOST:PORT: why"
  [[nodiscard]] bool ok() const { return failure.empty(); }
};

class RedisNode {
 public:
  // log_name names the owner (the tier's spec) in the stderr lines.
  RedisNode(RedisEndpoint endpoint, const RedisNodeOptions& options, std::string log_name);
  ~RedisNode();
  RedisNode(const RedisNode&) = delete;
  RedisNode& operator=(const RedisNode&) = delete;

  [[nodiscard]] const RedisEndpoint& endpoint() const { return endpoint_; }
  [[nodiscard]] const std::string& address() const { return address_; }

  // Sends the commands pipelined on one connection and reads all their
  // replies (an error reply is a reply), within command_timeout in all.
  RedisCall call(std::span<const RedisCommand> commands);
  RedisCall call(const RedisCommand& command) { return call(std::span(&command, 1)); }

  // False from a failure until the next reply.
  [[nodiscard]] bool up() const;
  // Times the node came back after being down.
  [[nodiscard]] int64_t reconnects() const;
  // Failed connects plus connections dropped after a timeout or an error.
  [[nodiscard]] int64_t failures() const;

 private:
  using Clock = std::chrono::steady_clock;
  enum class Health { kUnknown, kUp, kDown };

  std::string checkout(redisContext*& context);
  void checkin(redisContext* context);
  void mark_down(const std::string& why);
  std::string connect(redisContext*& context) const;
  std::string exchange(redisContext* context, std::span<const RedisCommand> commands,
                       std::vector<RedisReplyPtr>& replies) const;

  const RedisEndpoint endpoint_;
  const std::string address_;
  const RedisNodeOptions options_;
  const std::string log_name_;

  mutable std::mutex mutex_;
  std::vector<redisContext*> idle_;  // connected, no command in flight
  Health health_ = Health::kUnknown;
  bool probing_ = false;  // down: one command is trying a new connection
  Clock::time_point retry_at_;
  Clock::time_point down_since_;
  std::chrono::milliseconds backoff_{0};
  std::string last_failure_;
  int64_t reconnects_ = 0;
  int64_t failures_ = 0;
};

}  // namespace kvforge
