#include "tier/redis_tier.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <optional>
#include <set>
#include <utility>

#include "tier/redis_slot.h"

namespace kvforge {
namespace {

constexpr int kMaxRedirects = 5;

bool parse_number(std::string_view text, int64_t min, int64_t max, int64_t& value) {
  if (text.empty() || text.size() > 18) return false;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value >= min && value <= max;
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// "HOST:PORT" or "[V6]:PORT"; an empty string on success.
std::string parse_endpoint(std::string_view text, RedisEndpoint& endpoint) {
  std::string_view host, port;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":")
      return fmt::format("'{}' is not [IPV6]:PORT", text);
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    const bool v6 = host.find(':') != std::string_view::npos &&
                    std::all_of(host.begin(), host.end(), [](char c) {
                      return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
                    });
    if (!v6) return fmt::format("'{}' is not an IPv6 address", host);
  } else {
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos) return fmt::format("'{}' has no :PORT", text);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.empty() || !std::all_of(host.begin(), host.end(), host_char))
      return fmt::format("'{}' is not a host name or address", host);
  }
  int64_t number = 0;
  if (!parse_number(port, 1, 65535, number))
    return fmt::format("port '{}' is not a number from 1 to 65535", port);
  endpoint = RedisEndpoint{std::string(host), static_cast<int>(number)};
  return {};
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    const size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

std::string parse_options(std::string_view query, RedisTierOptions& options) {
  constexpr const char* kNames =
      "timeout_ms, connect_timeout_ms, ttl, backoff_ms, backoff_max_ms, threads, queue";
  std::set<std::string_view> seen;
  for (const std::string_view item : split(query, '&')) {
    const size_t equals = item.find('=');
    if (equals == std::string_view::npos)
      return fmt::format("option '{}' is not NAME=VALUE (options: {})", item, kNames);
    const std::string_view name = item.substr(0, equals), text = item.substr(equals + 1);
    if (!seen.insert(name).second) return fmt::format("option '{}' given twice", name);
    struct Option {
      const char* name;
      int64_t min, max;
    };
    static constexpr Option kOptions[] = {
        {"timeout_ms", 1, 60000}, {"connect_timeout_ms", 1, 60000}, {"ttl", 0, 2147483647},
        {"backoff_ms", 1, 60000}, {"backoff_max_ms", 1, 600000},    {"threads", 1, 64},
        {"queue", 1, 1000000},
    };
    const Option* option = std::find_if(std::begin(kOptions), std::end(kOptions),
                                        [&](const Option& o) { return name == o.name; });
    if (option == std::end(kOptions))
      return fmt::format("unknown option '{}' (options: {})", name, kNames);
    int64_t value = 0;
    if (!parse_number(text, option->min, option->max, value)) {
      return fmt::format("option {}='{}' is not a whole number from {} to {}", name, text,
                         option->min, option->max);
    }
    using std::chrono::milliseconds;
    if (name == "timeout_ms") options.node.command_timeout = milliseconds(value);
    if (name == "connect_timeout_ms") options.node.connect_timeout = milliseconds(value);
    if (name == "ttl") options.ttl_seconds = value;
    if (name == "backoff_ms") options.node.backoff_min = milliseconds(value);
    if (name == "backoff_max_ms") options.node.backoff_max = milliseconds(value);
    if (name == "threads") options.queue.n_threads = static_cast<int32_t>(value);
    if (name == "queue") options.queue.max_queued = static_cast<int32_t>(value);
  }
  // backoff_ms alone may exceed the default maximum: it then is the maximum.
  if (!seen.contains("backoff_max_ms"))
    options.node.backoff_max = std::max(options.node.backoff_max, options.node.backoff_min);
  if (options.node.backoff_max < options.node.backoff_min) {
    return fmt::format("backoff_max_ms={} is below backoff_ms={}", options.node.backoff_max.count(),
                       options.node.backoff_min.count());
  }
  return {};
}

const char* reply_type_name(int type) {
  switch (type) {
    case REDIS_REPLY_STRING:
      return "string";
    case REDIS_REPLY_ARRAY:
      return "array";
    case REDIS_REPLY_INTEGER:
      return "integer";
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_STATUS:
      return "status";
    case REDIS_REPLY_ERROR:
      return "error";
  }
  return "unknown";
}

TierResult failed(std::string why) {
  return {TierOutcome::kError, nullptr, std::move(why), 0};
}

// kError for a reply the command cannot give: an error reply (out of
// memory with noeviction, WRONGTYPE, CLUSTERDOWN...) or the wrong type.
TierResult unexpected(const RedisNode& node, const redisReply& reply, const char* command) {
  if (reply.type == REDIS_REPLY_ERROR) {
    return failed(fmt::format("redis {}: {}: {}", node.address(), command,
                              std::string_view(reply.str, reply.len)));
  }
  return failed(fmt::format("redis {}: {}: unexpected {} reply", node.address(), command,
                            reply_type_name(reply.type)));
}

// "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381". The host may be
// empty (a node that does not know its address): the replying node's then.
struct Redirect {
  bool ask = false;
  uint16_t slot = 0;
  RedisEndpoint to;
};

std::optional<Redirect> parse_redirect(std::string_view text, const std::string& replier_host) {
  Redirect redirect;
  if (text.starts_with("MOVED ")) {
    text.remove_prefix(6);
  } else if (text.starts_with("ASK ")) {
    redirect.ask = true;
    text.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const std::vector<std::string_view> parts = split(text, ' ');
  int64_t slot = 0, port = 0;
  if (parts.size() != 2 || !parse_number(parts[0], 0, kRedisClusterSlots - 1, slot))
    return std::nullopt;
  const size_t colon = parts[1].rfind(':');  // IPv6 hosts come unbracketed
  if (colon == std::string_view::npos || !parse_number(parts[1].substr(colon + 1), 1, 65535, port))
    return std::nullopt;
  redirect.slot = static_cast<uint16_t>(slot);
  redirect.to.host = colon == 0 ? replier_host : std::string(parts[1].substr(0, colon));
  redirect.to.port = static_cast<int>(port);
  return redirect;
}

struct SlotRange {
  int64_t first = 0, last = 0;
  RedisEndpoint master;
};

// CLUSTER SLOTS: [[first, last, [host, port, id, ...], replicas...], ...].
std::string parse_cluster_slots(const redisReply& reply, const std::string& replier_host,
                                std::vector<SlotRange>& ranges) {
  if (reply.type == REDIS_REPLY_ERROR) return std::string(reply.str, reply.len);
  if (reply.type != REDIS_REPLY_ARRAY)
    return fmt::format("unexpected {} reply", reply_type_name(reply.type));
  for (size_t i = 0; i < reply.elements; ++i) {
    const redisReply& entry = *reply.element[i];
    const bool well_formed = entry.type == REDIS_REPLY_ARRAY && entry.elements >= 3 &&
                             entry.element[0]->type == REDIS_REPLY_INTEGER &&
                             entry.element[1]->type == REDIS_REPLY_INTEGER &&
                             entry.element[2]->type == REDIS_REPLY_ARRAY &&
                             entry.element[2]->elements >= 2 &&
                             entry.element[2]->element[0]->type == REDIS_REPLY_STRING &&
                             entry.element[2]->element[1]->type == REDIS_REPLY_INTEGER;
    if (!well_formed) return fmt::format("malformed CLUSTER SLOTS entry {}", i);
    SlotRange range;
    range.first = entry.element[0]->integer;
    range.last = entry.element[1]->integer;
    const redisReply& host = *entry.element[2]->element[0];
    const long long port = entry.element[2]->element[1]->integer;
    if (range.first < 0 || range.first > range.last || range.last >= kRedisClusterSlots ||
        port < 1 || port > 65535) {
      return fmt::format("CLUSTER SLOTS entry {} out of range", i);
    }
    range.master.host = std::string(host.str, host.len);
    range.master.port = static_cast<int>(port);
    // "" is the replying node's own address; "?" an endpoint nobody knows.
    if (range.master.host == "?") continue;
    if (range.master.host.empty()) range.master.host = replier_host;
    ranges.push_back(std::move(range));
  }
  return {};
}

}  // namespace

Result<RedisTierOptions> parse_redis_tier_spec(const std::string& spec) {
  RedisTierOptions options;
  std::string_view rest = spec;
  if (rest.starts_with("redis://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("redis-cluster://")) {
    options.cluster = true;
    rest.remove_prefix(16);
  } else {
    return invalid_argument("not a redis:// or redis-cluster:// spec");
  }
  if (const size_t query = rest.find('?'); query != std::string_view::npos) {
    if (std::string why = parse_options(rest.substr(query + 1), options); !why.empty())
      return invalid_argument(why);
    rest = rest.substr(0, query);
  }
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    const std::string_view prefix = rest.substr(slash + 1);
    const bool valid = !prefix.empty() && prefix.size() <= 64 &&
                       std::all_of(prefix.begin(), prefix.end(),
                                   [](char c) { return host_char(c) || c == ':' || c == '/'; });
    // No braces: a hash tag in the prefix would put every key in one slot.
    if (!valid) {
      return invalid_argument(
          fmt::format("PREFIX '{}' is not 1 to 64 letters, digits and _.:/- characters", prefix));
    }
    options.prefix = std::string(prefix);
    rest = rest.substr(0, slash);
  }
  for (const std::string_view text : split(rest, ',')) {
    RedisEndpoint endpoint;
    if (std::string why = parse_endpoint(text, endpoint); !why.empty())
      return invalid_argument(why);
    options.seeds.push_back(std::move(endpoint));
  }
  if (!options.cluster && options.seeds.size() != 1)
    return invalid_argument("redis:// takes one HOST:PORT (redis-cluster:// takes several)");
  return options;
}

RedisTier::RedisTier(std::string name, RedisTierOptions options)
    : QueuedTier(std::move(name), options.queue),
      config_(std::move(options)),
      ttl_text_(std::to_string(config_.ttl_seconds)) {
  for (const RedisEndpoint& seed : config_.seeds) seeds_.push_back(node_at(seed));
  // Find out now whether the server answers: a down server prints its line
  // at start-up and stats() says so before the first operation.
  if (config_.cluster) {
    slots_.assign(kRedisClusterSlots, nullptr);
    refresh_slots(/*force=*/true);
  } else {
    (void)seeds_.front()->call(RedisCommand{"PING"});
  }
}

RedisTier::~RedisTier() {
  stop();
}

std::string RedisTier::redis_key(const TierKey& key) const {
  return config_.prefix + key.to_string();
}

RedisNode* RedisTier::node_at(const RedisEndpoint& endpoint) {
  const std::string address = endpoint.to_string();
  std::lock_guard lock(map_mutex_);
  std::unique_ptr<RedisNode>& node = nodes_[address];
  if (node == nullptr) node = std::make_unique<RedisNode>(endpoint, config_.node, name());
  return node.get();
}

RedisNode* RedisTier::slot_owner(uint16_t slot) const {
  std::shared_lock lock(map_mutex_);
  return slots_[slot];
}

RedisTier::Routed RedisTier::route(std::string_view redis_key, const RedisCommand& command) {
  if (config_.cluster) return route_in_cluster(redis_key, command);
  RedisNode* node = seeds_.front();
  RedisCall call = node->call(command);
  if (!call.ok()) return {nullptr, std::move(call.failure), node};
  return {std::move(call.replies.front()), {}, node};
}

RedisTier::Routed RedisTier::route_in_cluster(std::string_view redis_key,
                                              const RedisCommand& command) {
  const uint16_t slot = redis_key_slot(redis_key);
  RedisNode* node = slot_owner(slot);
  if (node == nullptr) {
    refresh_slots(/*force=*/false);
    node = slot_owner(slot);
    if (node == nullptr) {
      return {nullptr, fmt::format("redis cluster: no known node serves slot {}", slot), nullptr};
    }
  }
  static const RedisCommand kAsking{"ASKING"};
  bool asking = false;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    RedisCall call =
        asking ? node->call(std::vector<RedisCommand>{kAsking, command}) : node->call(command);
    if (!call.ok()) {
      // A failover may have moved the slots elsewhere.
      refresh_slots(/*force=*/false);
      return {nullptr, std::move(call.failure), node};
    }
    RedisReplyPtr& reply = call.replies.back();
    if (asking && call.replies.front()->type == REDIS_REPLY_ERROR)
      return {std::move(call.replies.front()), {}, node};
    if (reply->type != REDIS_REPLY_ERROR) return {std::move(reply), {}, node};
    const std::optional<Redirect> redirect =
        parse_redirect(std::string_view(reply->str, reply->len), node->endpoint().host);
    if (!redirect) return {std::move(reply), {}, node};
    node = node_at(redirect->to);
    asking = redirect->ask;
    if (!redirect->ask) {
      // The slot has moved for good: note it now, and read the rest of the
      // map in case more moved with it.
      {
        std::lock_guard lock(map_mutex_);
        slots_[redirect->slot] = node;
        if (std::find(owners_.begin(), owners_.end(), node) == owners_.end())
          owners_.push_back(node);
      }
      refresh_slots(/*force=*/false);
    }
  }
  return {nullptr,
          fmt::format("redis cluster: more than {} redirects for slot {}", kMaxRedirects, slot),
          node};
}

void RedisTier::refresh_slots(bool force) {
  std::unique_lock refreshing(refresh_mutex_, std::try_to_lock);
  if (!refreshing.owns_lock()) return;  // another thread is at it
  const auto now = Clock::now();
  if (!force && now - last_refresh_ < config_.node.backoff_min) return;
  last_refresh_ = now;

  // Nodes that answer first: a dead one would cost a timeout.
  std::vector<RedisNode*> candidates;
  {
    std::shared_lock lock(map_mutex_);
    candidates = owners_;
    for (RedisNode* seed : seeds_) {
      if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end())
        candidates.push_back(seed);
    }
  }
  std::stable_partition(candidates.begin(), candidates.end(),
                        [](const RedisNode* node) { return node->up(); });
  std::string why = "no node answers";
  for (RedisNode* node : candidates) {
    RedisCall call = node->call(RedisCommand{"CLUSTER", "SLOTS"});
    if (!call.ok()) continue;  // the node printed its own line
    std::vector<SlotRange> ranges;
    if (std::string error =
            parse_cluster_slots(*call.replies.front(), node->endpoint().host, ranges);
        !error.empty()) {
      why = fmt::format("redis {}: CLUSTER SLOTS: {}", node->address(), error);
      continue;
    }
    std::vector<RedisNode*> masters;
    for (const SlotRange& range : ranges) masters.push_back(node_at(range.master));
    std::lock_guard lock(map_mutex_);
    std::fill(slots_.begin(), slots_.end(), nullptr);
    owners_.clear();
    for (size_t i = 0; i < ranges.size(); ++i) {
      std::fill(slots_.begin() + ranges[i].first, slots_.begin() + ranges[i].last + 1, masters[i]);
      if (std::find(owners_.begin(), owners_.end(), masters[i]) == owners_.end())
        owners_.push_back(masters[i]);
    }
    return;
  }
  if (force) fmt::print(stderr, "kvforge: tier {}: no cluster slot map yet: {}\n", name(), why);
}

TierResult RedisTier::do_put(const TierKey& key, const TierRecord& record) {
  if (record == nullptr) return {TierOutcome::kRejected, nullptr, "no record", 0};
  const std::string name = redis_key(key);
  RedisCommand set{"SET", name,
                   std::string_view(reinterpret_cast<const char*>(record->data()), record->size())};
  if (config_.ttl_seconds > 0) {
    set.emplace_back("EX");
    set.emplace_back(ttl_text_);
  }
  const Routed routed = route(name, set);
  if (routed.reply == nullptr) return failed(routed.failure);
  const redisReply& reply = *routed.reply;
  if (reply.type == REDIS_REPLY_STATUS && std::string_view(reply.str, reply.len) == "OK")
    return {TierOutcome::kOk, nullptr, {}, 0};
  return unexpected(*routed.node, reply, "SET");
}

TierResult RedisTier::do_get(const TierKey& key) {
  const std::string name = redis_key(key);
  const Routed routed = route(name, RedisCommand{"GET", name});
  if (routed.reply == nullptr) return failed(routed.failure);
  const redisReply& reply = *routed.reply;
  if (reply.type == REDIS_REPLY_NIL) return {TierOutcome::kMiss, nullptr, {}, 0};
  if (reply.type != REDIS_REPLY_STRING) return unexpected(*routed.node, reply, "GET");
  const auto* bytes = reinterpret_cast<const uint8_t*>(reply.str);
  return {TierOutcome::kOk,
          std::make_shared<const std::vector<uint8_t>>(bytes, bytes + reply.len),
          {},
          0};
}

// EXISTS and DEL answer 1 or 0 for one key.
TierResult RedisTier::do_contains(const TierKey& key) {
  const std::string name = redis_key(key);
  const Routed routed = route(name, RedisCommand{"EXISTS", name});
  if (routed.reply == nullptr) return failed(routed.failure);
  const redisReply& reply = *routed.reply;
  if (reply.type == REDIS_REPLY_INTEGER && (reply.integer == 0 || reply.integer == 1))
    return {reply.integer == 1 ? TierOutcome::kOk : TierOutcome::kMiss, nullptr, {}, 0};
  return unexpected(*routed.node, reply, "EXISTS");
}

TierResult RedisTier::do_evict(const TierKey& key) {
  const std::string name = redis_key(key);
  const Routed routed = route(name, RedisCommand{"DEL", name});
  if (routed.reply == nullptr) return failed(routed.failure);
  const redisReply& reply = *routed.reply;
  if (reply.type == REDIS_REPLY_INTEGER && (reply.integer == 0 || reply.integer == 1))
    return {reply.integer == 1 ? TierOutcome::kOk : TierOutcome::kMiss, nullptr, {}, 0};
  return unexpected(*routed.node, reply, "DEL");
}

void RedisTier::add_backend_stats(TierStats& stats) const {
  std::shared_lock lock(map_mutex_);
  if (config_.cluster) {
    stats.available = std::any_of(owners_.begin(), owners_.end(),
                                  [](const RedisNode* node) { return node->up(); });
  } else {
    stats.available = seeds_.front()->up();
  }
  for (const auto& [address, node] : nodes_) {
    stats.reconnects += node->reconnects();
    stats.connection_failures += node->failures();
  }
}

}  // namespace kvforge
