#include "tier/redis_node.h"

#include <fmt/format.h>
#include <pthread.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <utility>

namespace kvforge {
namespace {

using std::chrono::milliseconds;

int64_t ms_of(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<milliseconds>(d).count();
}

// A timeval of zero means "no timeout" to the socket options: at least 1 us.
timeval timeval_of(std::chrono::steady_clock::duration d) {
  const auto us =
      std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

// hiredis writes with write(2): a server that closed the connection would
// raise SIGPIPE and kill the process. Blocked for the write, the signal
// stays pending on this thread and write fails with EPIPE instead; the
// pending signal is then taken back so the caller never sees it.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old_);
    blocked_here_ = sigismember(&old_, SIGPIPE) == 0;
  }
  ~SigpipeBlock() {
    if (!blocked_here_) return;
    const int saved_errno = errno;
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      const timespec now{0, 0};
      sigtimedwait(&pipe, nullptr, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    errno = saved_errno;
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t old_;
  bool blocked_here_ = false;
};

}  // namespace

std::string RedisEndpoint::to_string() const {
  return host.find(':') == std::string::npos ? fmt::format("{}:{}", host, port)
                                             : fmt::format("[{}]:{}", host, port);
}

RedisNode::RedisNode(RedisEndpoint endpoint, const RedisNodeOptions& options, std::string log_name)
    : endpoint_(std::move(endpoint)),
      address_(endpoint_.to_string()),
      options_(options),
      log_name_(std::move(log_name)) {}

RedisNode::~RedisNode() {
  for (redisContext* context : idle_) redisFree(context);
}

bool RedisNode::up() const {
  std::lock_guard lock(mutex_);
  return health_ != Health::kDown;
}

int64_t RedisNode::reconnects() const {
  std::lock_guard lock(mutex_);
  return reconnects_;
}

int64_t RedisNode::failures() const {
  std::lock_guard lock(mutex_);
  return failures_;
}

RedisCall RedisNode::call(std::span<const RedisCommand> commands) {
  RedisCall result;
  redisContext* context = nullptr;
  if (std::string why = checkout(context); !why.empty()) {
    result.failure = fmt::format("redis {}: {}", address_, why);
    return result;
  }
  if (std::string why = exchange(context, commands, result.replies); !why.empty()) {
    // After a timeout or an I/O error the reply stream is out of step (or
    // gone): the context cannot be used again.
    redisFree(context);
    result.replies.clear();
    result.failure = fmt::format("redis {}: {}", address_, why);
    mark_down(why);
    return result;
  }
  checkin(context);
  return result;
}

std::string RedisNode::checkout(redisContext*& context) {
  {
    std::lock_guard lock(mutex_);
    if (health_ == Health::kDown) {
      const auto now = Clock::now();
      if (probing_) return fmt::format("down ({}), reconnecting", last_failure_);
      if (now < retry_at_) {
        return fmt::format("down ({}), next attempt in {} ms", last_failure_,
                           ms_of(retry_at_ - now) + 1);
      }
      probing_ = true;  // this command is the attempt; the others keep failing fast
    } else if (!idle_.empty()) {
      context = idle_.back();
      idle_.pop_back();
      return {};
    }
  }
  if (std::string why = connect(context); !why.empty()) {
    mark_down(why);
    return why;
  }
  return {};
}

void RedisNode::checkin(redisContext* context) {
  std::lock_guard lock(mutex_);
  if (health_ == Health::kDown) {
    ++reconnects_;
    fmt::print(stderr, "kvforge: tier {}: redis {} is back after {} ms down\n", log_name_, address_,
               ms_of(Clock::now() - down_since_));
  }
  health_ = Health::kUp;
  probing_ = false;
  backoff_ = milliseconds(0);
  idle_.push_back(context);
}

void RedisNode::mark_down(const std::string& why) {
  std::vector<redisContext*> dropped;
  {
    std::lock_guard lock(mutex_);
    ++failures_;
    last_failure_ = why;
    const bool was_down = health_ == Health::kDown;
    backoff_ = was_down ? std::min(backoff_ * 2, options_.backoff_max) : options_.backoff_min;
    retry_at_ = Clock::now() + backoff_;
    health_ = Health::kDown;
    probing_ = false;
    // The pooled connections most likely failed with this one.
    dropped.swap(idle_);
    if (!was_down) {
      down_since_ = Clock::now();
      fmt::print(stderr,
                 "kvforge: tier {}: redis {} is down ({}); its operations fail until it "
                 "answers again (reconnecting with back-off {}-{} ms)\n",
                 log_name_, address_, why, options_.backoff_min.count(),
                 options_.backoff_max.count());
    }
  }
  for (redisContext* context : dropped) redisFree(context);
}

std::string RedisNode::connect(redisContext*& context) const {
  context = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port,
                                    timeval_of(options_.connect_timeout));
  if (context == nullptr) return "connect: out of memory";
  if (context->err != 0) {
    std::string why = fmt::format("connect: {}", context->errstr);
    redisFree(context);
    context = nullptr;
    return why;
  }
  return {};
}

std::string RedisNode::exchange(redisContext* context, std::span<const RedisCommand> commands,
                                std::vector<RedisReplyPtr>& replies) const {
  const auto deadline = Clock::now() + options_.command_timeout;
  const int64_t timeout_ms = options_.command_timeout.count();
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const RedisCommand& command : commands) {
    argv.clear();
    lengths.clear();
    for (const std::string_view arg : command) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context, static_cast<int>(argv.size()), argv.data(),
                               lengths.data()) != REDIS_OK) {
      return fmt::format("cannot format the command: {}", context->errstr);
    }
  }
  // hiredis's own timeout bounds each read or write; re-arming it with what
  // is left before each one bounds the whole command (a server trickling a
  // large reply cannot stretch it). "" when armed, else why not.
  auto arm = [&]() -> std::string {
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return fmt::format("no reply within {} ms", timeout_ms);
    if (redisSetTimeout(context, timeval_of(left)) != REDIS_OK)
      return fmt::format("cannot set the socket timeout: {}", context->errstr);
    return {};
  };
  auto failed = [&](const char* doing) {
    const int error = errno;  // meaningful for REDIS_ERR_IO only
    if (context->err == REDIS_ERR_IO && (error == EAGAIN || error == EWOULDBLOCK))
      return fmt::format("no reply within {} ms ({})", timeout_ms, doing);
    return fmt::format("{}: {}", doing, context->errstr);
  };
  {
    SigpipeBlock no_sigpipe;
    int done = 0;
    while (done == 0) {
      if (std::string why = arm(); !why.empty()) return why;
      if (redisBufferWrite(context, &done) != REDIS_OK) return failed("sending");
    }
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    void* reply = nullptr;
    for (;;) {
      if (redisGetReplyFromReader(context, &reply) != REDIS_OK)
        return fmt::format("unreadable reply: {}", context->errstr);
      if (reply != nullptr) break;
      if (std::string why = arm(); !why.empty()) return why;
      if (redisBufferRead(context) != REDIS_OK) return failed("reading");
    }
    replies.emplace_back(static_cast<redisReply*>(reply));
  }
  return {};
}

}  // namespace kvforge
