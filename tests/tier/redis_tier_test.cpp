// RedisTier against real redis-server processes on loopback (one server,
// and a three-master cluster), a fake server that never answers, and one
// that answers nonsense. Skipped, saying so, where redis-server is missing.
//
// Servers start once per test suite; each test writes under its own
// PREFIX, so tests sharing a server do not see each other's records.
#include <gtest/gtest.h>

#include <future>
#include <random>
#include <set>

#include "redis_test_servers.h"
#include "tier/redis_slot.h"
#include "tier/redis_tier.h"
#include "tier/tier_factory.h"

namespace kvforge::redis_test {
namespace {

TierKey block_key(uint64_t n) {
  return TierKey{BlockHash{n, n * 0x9e3779b97f4a7c15ull}, TierRecordKind::kBlock};
}

TierRecord bytes_record(size_t size, uint64_t seed) {
  std::mt19937_64 random(seed);
  auto bytes = std::make_shared<std::vector<uint8_t>>(size);
  for (uint8_t& b : *bytes) b = static_cast<uint8_t>(random());
  return bytes;
}

std::unique_ptr<KvTier> tier_from(const std::string& spec) {
  auto tier = make_kv_tier(spec);
  EXPECT_TRUE(tier.ok()) << tier.status().to_string();
  return tier.ok() ? std::move(*tier) : nullptr;
}

template <class Op>
TierResult sync_call(Op op) {
  std::promise<TierResult> done;
  op([&](TierResult r) { done.set_value(std::move(r)); });
  return done.get_future().get();
}
TierResult put(KvTier& tier, const TierKey& key, TierRecord record) {
  return sync_call([&](TierCallback cb) { tier.put(key, std::move(record), std::move(cb)); });
}
TierResult get(KvTier& tier, const TierKey& key) {
  return sync_call([&](TierCallback cb) { tier.get(key, std::move(cb)); });
}
TierResult contains(KvTier& tier, const TierKey& key) {
  return sync_call([&](TierCallback cb) { tier.contains(key, std::move(cb)); });
}
TierResult evict(KvTier& tier, const TierKey& key) {
  return sync_call([&](TierCallback cb) { tier.evict(key, std::move(cb)); });
}

// Polls get until the tier answers (kOk or kMiss) or the time is up.
TierResult get_until_answered(KvTier& tier, const TierKey& key, milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  TierResult result = get(tier, key);
  while (result.outcome == TierOutcome::kError && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
    result = get(tier, key);
  }
  return result;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// --- Specs (no server needed) ---

TEST(RedisTierSpec, ParsesServerClusterSeedsPrefixAndOptions) {
  auto one = parse_redis_tier_spec("redis://cache.local:6379");
  ASSERT_TRUE(one.ok()) << one.status().to_string();
  EXPECT_FALSE(one->cluster);
  ASSERT_EQ(one->seeds.size(), 1u);
  EXPECT_EQ(one->seeds[0].host, "cache.local");
  EXPECT_EQ(one->seeds[0].port, 6379);
  EXPECT_EQ(one->prefix, "kvforge:");
  EXPECT_EQ(one->ttl_seconds, 0);
  EXPECT_EQ(one->node.command_timeout.count(), 300);

  auto many = parse_redis_tier_spec(
      "redis-cluster://10.0.0.1:7000,[::1]:7001,node_3:7002/llama-8b:v2/?timeout_ms=500&ttl=3600&"
      "connect_timeout_ms=50&backoff_ms=10&backoff_max_ms=20&threads=4&queue=64");
  ASSERT_TRUE(many.ok()) << many.status().to_string();
  EXPECT_TRUE(many->cluster);
  ASSERT_EQ(many->seeds.size(), 3u);
  EXPECT_EQ(many->seeds[1].host, "::1");
  EXPECT_EQ(many->seeds[1].to_string(), "[::1]:7001");
  EXPECT_EQ(many->seeds[2].port, 7002);
  EXPECT_EQ(many->prefix, "llama-8b:v2/");
  EXPECT_EQ(many->node.command_timeout.count(), 500);
  EXPECT_EQ(many->node.connect_timeout.count(), 50);
  EXPECT_EQ(many->node.backoff_min.count(), 10);
  EXPECT_EQ(many->node.backoff_max.count(), 20);
  EXPECT_EQ(many->ttl_seconds, 3600);
  EXPECT_EQ(many->queue.n_threads, 4);
  EXPECT_EQ(many->queue.max_queued, 64);
}

TEST(RedisTierSpec, RefusesMalformedSpecsWithTheValidForms) {
  for (const char* bad : {"redis://",
                          "redis://host",
                          "redis://host:",
                          "redis://host:0",
                          "redis://host:65536",
                          "redis://host:6379x",
                          "redis://:6379",
                          "redis://a:1,b:2",
                          "redis://h:1/",
                          "redis://h:1/{tag}",
                          "redis://h:1/with space",
                          "redis://h:1?",
                          "redis://h:1?ttl",
                          "redis://h:1?ttl=-1",
                          "redis://h:1?ttl=1&ttl=2",
                          "redis://h:1?timeout_ms=0",
                          "redis://h:1?nagle=1",
                          "redis://h:1?backoff_ms=500&backoff_max_ms=100",
                          "redis://::1:6379",
                          "redis://[::1:6379",
                          "redis://[nope]:1",
                          "redis-cluster://",
                          "redis-cluster://a:1,",
                          "redis-cluster://a:1,,b:2",
                          "rediss://h:1",
                          "REDIS://h:1"}) {
    auto tier = make_kv_tier(bad);
    ASSERT_FALSE(tier.ok()) << bad;
    EXPECT_EQ(tier.status().code(), StatusCode::kInvalidArgument) << bad;
    const std::string& message = tier.status().message();
    EXPECT_NE(message.find("redis://HOST:PORT[/PREFIX][?OPTIONS]"), std::string::npos) << message;
    EXPECT_NE(message.find("redis-cluster://HOST:PORT[,HOST:PORT...]"), std::string::npos)
        << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

// --- One server ---

class RedisTierTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!on_path("redis-server")) {
      skip_why_ = "redis-server is not installed (scripts/install-deps.sh installs it)";
      return;
    }
    // DEBUG is off by default since Redis 7; the slow-server test needs it.
    server_ = new RedisServer({"--enable-debug-command", "local"});
    if (!server_->start()) skip_why_ = "redis-server did not start";
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!skip_why_.empty()) GTEST_SKIP() << "Redis tier tests skipped: " << skip_why_;
  }
  // A spec on the shared server whose PREFIX is this test's name.
  static std::string spec(const std::string& options = "") {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    return fmt::format("redis://127.0.0.1:{}/t:{}:{}", server_->port(), test->name(), options);
  }
  static std::string key_name(const TierKey& key) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    return fmt::format("t:{}:{}", test->name(), key.to_string());
  }

  static inline RedisServer* server_ = nullptr;
  static inline std::string skip_why_;
};

TEST_F(RedisTierTest, RoundTripReplaceMissContainsEvict) {
  auto tier = tier_from(spec());
  ASSERT_NE(tier, nullptr);
  EXPECT_TRUE(tier->stats().available);
  EXPECT_EQ(put(*tier, block_key(1), bytes_record(4096, 1)).outcome, TierOutcome::kOk);
  const TierRecord second = bytes_record(5000, 2);
  EXPECT_EQ(put(*tier, block_key(1), second).outcome, TierOutcome::kOk);  // replaces
  TierResult got = get(*tier, block_key(1));
  ASSERT_EQ(got.outcome, TierOutcome::kOk) << got.error;
  EXPECT_EQ(*got.record, *second);
  // Same hash, other kind: another record.
  EXPECT_EQ(get(*tier, TierKey{block_key(1).hash, TierRecordKind::kStagedWindow}).outcome,
            TierOutcome::kMiss);
  EXPECT_EQ(get(*tier, block_key(2)).outcome, TierOutcome::kMiss);
  EXPECT_EQ(contains(*tier, block_key(1)).outcome, TierOutcome::kOk);
  EXPECT_EQ(contains(*tier, block_key(2)).outcome, TierOutcome::kMiss);
  EXPECT_EQ(evict(*tier, block_key(1)).outcome, TierOutcome::kOk);
  EXPECT_EQ(evict(*tier, block_key(1)).outcome, TierOutcome::kMiss);
  EXPECT_EQ(get(*tier, block_key(1)).outcome, TierOutcome::kMiss);
  // The record is the Redis string PREFIX + key, bytes as they are.
  put(*tier, block_key(3), bytes_record(100, 3));
  const Reply raw = raw_command(server_->port(), {"GET", key_name(block_key(3))});
  ASSERT_NE(raw, nullptr);
  ASSERT_EQ(raw->type, REDIS_REPLY_STRING);
  EXPECT_EQ(std::vector<uint8_t>(raw->str, raw->str + raw->len), *bytes_record(100, 3));

  const TierStats s = tier->stats();
  EXPECT_EQ(s.puts, 3);
  EXPECT_EQ(s.put_bytes, 4096 + 5000 + 100);
  EXPECT_EQ(s.gets, 4);
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.misses, 3);
  EXPECT_EQ(s.get_errors, 0);
  EXPECT_EQ(s.stored_records, -1);  // Redis's business
  EXPECT_EQ(s.stored_bytes, -1);
  EXPECT_EQ(s.capacity_bytes, -1);
  EXPECT_EQ(s.connection_failures, 0);
  EXPECT_EQ(s.reconnects, 0);
}

TEST_F(RedisTierTest, StoresAOneMebibyteRecordBitExact) {
  auto tier = tier_from(spec());
  ASSERT_NE(tier, nullptr);
  const TierRecord big = bytes_record(1 << 20, 42);
  ASSERT_EQ(put(*tier, block_key(1), big).outcome, TierOutcome::kOk);
  const TierResult got = get(*tier, block_key(1));
  ASSERT_EQ(got.outcome, TierOutcome::kOk) << got.error;
  EXPECT_EQ(*got.record, *big);
  EXPECT_EQ(tier->stats().get_bytes, 1 << 20);
}

TEST_F(RedisTierTest, TtlOptionSetsExpiry) {
  auto with_ttl = tier_from(spec("?ttl=100"));
  auto without = tier_from(spec());
  ASSERT_NE(with_ttl, nullptr);
  ASSERT_EQ(put(*with_ttl, block_key(1), bytes_record(10, 1)).outcome, TierOutcome::kOk);
  ASSERT_EQ(put(*without, block_key(2), bytes_record(10, 2)).outcome, TierOutcome::kOk);
  const Reply ttl = raw_command(server_->port(), {"TTL", key_name(block_key(1))});
  ASSERT_NE(ttl, nullptr);
  ASSERT_EQ(ttl->type, REDIS_REPLY_INTEGER);
  EXPECT_GT(ttl->integer, 0);
  EXPECT_LE(ttl->integer, 100);
  EXPECT_EQ(reply_text(raw_command(server_->port(), {"TTL", key_name(block_key(2))})), "-1");
}

// The point of the tier: what one kvforge instance stored, another finds.
TEST_F(RedisTierTest, TwoInstancesShareRecordsUnderOnePrefix) {
  auto a = tier_from(spec());
  auto b = tier_from(spec());
  auto other = tier_from(fmt::format("redis://127.0.0.1:{}/elsewhere:", server_->port()));
  ASSERT_TRUE(a && b && other);
  const TierRecord record = bytes_record(64 << 10, 7);
  ASSERT_EQ(put(*a, block_key(1), record).outcome, TierOutcome::kOk);
  const TierResult got = get(*b, block_key(1));
  ASSERT_EQ(got.outcome, TierOutcome::kOk) << got.error;
  EXPECT_EQ(*got.record, *record);
  EXPECT_EQ(get(*other, block_key(1)).outcome, TierOutcome::kMiss);  // another namespace
  EXPECT_EQ(evict(*b, block_key(1)).outcome, TierOutcome::kOk);
  EXPECT_EQ(contains(*a, block_key(1)).outcome, TierOutcome::kMiss);
}

TEST_F(RedisTierTest, ErrorRepliesAndWrongReplyTypesAreErrors) {
  auto tier = tier_from(spec());
  ASSERT_NE(tier, nullptr);
  // Another client made the key a list: GET answers WRONGTYPE.
  ASSERT_NE(raw_command(server_->port(), {"RPUSH", key_name(block_key(1)), "x"}), nullptr);
  TierResult got = get(*tier, block_key(1));
  EXPECT_EQ(got.outcome, TierOutcome::kError);
  EXPECT_NE(got.error.find("WRONGTYPE"), std::string::npos) << got.error;
  EXPECT_NE(got.error.find(server_->address()), std::string::npos) << got.error;
  EXPECT_TRUE(tier->stats().available);  // the server answered: nothing is down

  // A server answering an integer to everything.
  FakeServer nonsense(":7\r\n");
  auto confused = tier_from(fmt::format("redis://127.0.0.1:{}", nonsense.port()));
  ASSERT_NE(confused, nullptr);
  got = get(*confused, block_key(1));
  EXPECT_EQ(got.outcome, TierOutcome::kError);
  EXPECT_NE(got.error.find("unexpected integer reply"), std::string::npos) << got.error;
  EXPECT_EQ(put(*confused, block_key(1), bytes_record(10, 1)).outcome, TierOutcome::kError);
  EXPECT_EQ(contains(*confused, block_key(1)).outcome, TierOutcome::kError);  // 7 is not 0 or 1
  EXPECT_EQ(evict(*confused, block_key(1)).outcome, TierOutcome::kError);

  // Bytes that are not the protocol at all: the connection is dropped.
  FakeServer garbage("this is not RESP\r\n");
  auto lost = tier_from(fmt::format("redis://127.0.0.1:{}?backoff_ms=5000", garbage.port()));
  ASSERT_NE(lost, nullptr);
  EXPECT_FALSE(lost->stats().available);
  got = get(*lost, block_key(1));
  EXPECT_EQ(got.outcome, TierOutcome::kError);
  EXPECT_NE(got.error.find("down (unreadable reply"), std::string::npos) << got.error;
}

// A listener that accepts and never answers: each attempt costs about the
// command timeout, then the back-off makes the next operations fail at once.
TEST_F(RedisTierTest, SilentServerCostsAnErrorWithinTheTimeout) {
  FakeServer silent;
  const auto start = Clock::now();
  auto tier = tier_from(fmt::format(
      "redis://127.0.0.1:{}?timeout_ms=150&backoff_ms=100&backoff_max_ms=100", silent.port()));
  ASSERT_NE(tier, nullptr);
  const double constructed = seconds_since(start);
  EXPECT_GE(constructed, 0.14);  // its PING waited for the timeout...
  EXPECT_LT(constructed, 1.0);   // ...and no longer
  EXPECT_FALSE(tier->stats().available);

  TierResult fast = get(*tier, block_key(1));  // inside the back-off
  EXPECT_EQ(fast.outcome, TierOutcome::kError);
  EXPECT_LT(fast.seconds, 0.1);
  EXPECT_NE(fast.error.find("next attempt in"), std::string::npos) << fast.error;

  std::this_thread::sleep_for(milliseconds(120));
  const TierResult slow = get(*tier, block_key(1));  // tries again, times out again
  EXPECT_EQ(slow.outcome, TierOutcome::kError);
  EXPECT_GE(slow.seconds, 0.14);
  EXPECT_LT(slow.seconds, 1.0);
  EXPECT_NE(
      slow.error.find(fmt::format("redis 127.0.0.1:{}: no reply within 150 ms", silent.port())),
      std::string::npos)
      << slow.error;
  EXPECT_FALSE(tier->stats().available);
  EXPECT_EQ(tier->stats().connection_failures, 2);
  EXPECT_EQ(tier->stats().reconnects, 0);  // connecting is not answering
}

// A real server stalled by DEBUG SLEEP: a miss-cost error, then recovery.
TEST_F(RedisTierTest, StalledServerFailsWithinTheTimeoutAndRecovers) {
  auto tier = tier_from(spec("?timeout_ms=100&backoff_ms=50&backoff_max_ms=50"));
  ASSERT_NE(tier, nullptr);
  ASSERT_EQ(put(*tier, block_key(1), bytes_record(10, 1)).outcome, TierOutcome::kOk);
  std::thread sleeper([&] { raw_command(server_->port(), {"DEBUG", "SLEEP", "0.5"}); });
  // Asleep once a PING goes unanswered.
  while (raw_command(server_->port(), {"PING"}, milliseconds(20)) != nullptr)
    std::this_thread::sleep_for(milliseconds(5));
  const TierResult stalled = get(*tier, block_key(1));
  EXPECT_EQ(stalled.outcome, TierOutcome::kError);
  EXPECT_LT(stalled.seconds, 0.5);
  EXPECT_NE(stalled.error.find("no reply within 100 ms"), std::string::npos) << stalled.error;
  sleeper.join();
  const TierResult back = get_until_answered(*tier, block_key(1), milliseconds(3000));
  EXPECT_EQ(back.outcome, TierOutcome::kOk) << back.error;
  EXPECT_TRUE(tier->stats().available);
  EXPECT_GE(tier->stats().reconnects, 1);
}

TEST_F(RedisTierTest, DownAtStartFailsFastThenRecovers) {
  const int port = free_port();
  // A long back-off: operations fail at once, without connecting.
  {
    auto waiting = tier_from(fmt::format("redis://127.0.0.1:{}?backoff_ms=60000", port));
    ASSERT_NE(waiting, nullptr);
    EXPECT_FALSE(waiting->stats().available);
    EXPECT_EQ(waiting->stats().connection_failures, 1);
    for (int i = 0; i < 5; ++i) {
      const TierResult r = get(*waiting, block_key(1));
      EXPECT_EQ(r.outcome, TierOutcome::kError);
      EXPECT_LT(r.seconds, 0.1);
      EXPECT_NE(r.error.find(fmt::format("redis 127.0.0.1:{}: down (connect: ", port)),
                std::string::npos)
          << r.error;
    }
    EXPECT_EQ(waiting->stats().connection_failures, 1);
    EXPECT_EQ(waiting->stats().get_errors, 5);
  }
  // A short one: the tier finds the server once it runs.
  ::testing::internal::CaptureStderr();
  const std::string spec =
      fmt::format("redis://127.0.0.1:{}?backoff_ms=20&backoff_max_ms=80", port);
  auto tier = tier_from(spec);
  ASSERT_NE(tier, nullptr);
  EXPECT_FALSE(tier->stats().available);
  const auto start = Clock::now();
  const TierResult refused = put(*tier, block_key(1), bytes_record(10, 1));
  EXPECT_EQ(refused.outcome, TierOutcome::kError);
  EXPECT_LT(seconds_since(start), 0.2);
  for (int i = 0; i < 5; ++i) {  // several failed attempts: still one line
    std::this_thread::sleep_for(milliseconds(25));
    EXPECT_EQ(get(*tier, block_key(1)).outcome, TierOutcome::kError);
  }

  RedisServer late;
  ASSERT_TRUE(late.start(port));
  const TierResult found = get_until_answered(*tier, block_key(1), milliseconds(3000));
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(found.outcome, TierOutcome::kMiss) << found.error;
  EXPECT_TRUE(tier->stats().available);
  EXPECT_EQ(tier->stats().reconnects, 1);
  EXPECT_GE(tier->stats().connection_failures, 2);
  EXPECT_EQ(put(*tier, block_key(1), bytes_record(10, 1)).outcome, TierOutcome::kOk);
  // One line going down, one coming back.
  const std::string down = fmt::format("kvforge: tier {}: redis 127.0.0.1:{} is down", spec, port);
  const std::string back = fmt::format("kvforge: tier {}: redis 127.0.0.1:{} is back", spec, port);
  size_t downs = 0, backs = 0, lines = 0;
  for (size_t at = 0; (at = log.find('\n', at)) != std::string::npos; ++at) ++lines;
  for (size_t at = 0; (at = log.find(down, at)) != std::string::npos; ++at) ++downs;
  for (size_t at = 0; (at = log.find(back, at)) != std::string::npos; ++at) ++backs;
  EXPECT_EQ(downs, 1u) << log;
  EXPECT_EQ(backs, 1u) << log;
  EXPECT_EQ(lines, 2u) << log;
}

TEST_F(RedisTierTest, RecoversFromAServerKilledAndRestarted) {
  RedisServer own;
  ASSERT_TRUE(own.start());
  auto tier = tier_from(
      fmt::format("redis://127.0.0.1:{}?backoff_ms=20&backoff_max_ms=80&threads=2", own.port()));
  ASSERT_NE(tier, nullptr);
  for (uint64_t k = 0; k < 8; ++k)
    ASSERT_EQ(put(*tier, block_key(k), bytes_record(1000, k)).outcome, TierOutcome::kOk);

  own.kill();
  // Both pooled connections are dead; writes to them must not raise SIGPIPE.
  for (uint64_t k = 0; k < 8; ++k) {
    const TierResult r = put(*tier, block_key(k), bytes_record(100 << 10, k));
    EXPECT_EQ(r.outcome, TierOutcome::kError);
    EXPECT_LT(r.seconds, 0.2);
    EXPECT_NE(r.error.find(own.address()), std::string::npos) << r.error;
  }
  EXPECT_FALSE(tier->stats().available);

  ASSERT_TRUE(own.start(own.port()));
  const TierResult r = get_until_answered(*tier, block_key(1), milliseconds(3000));
  EXPECT_EQ(r.outcome, TierOutcome::kMiss) << r.error;  // no persistence: the records are gone
  EXPECT_EQ(put(*tier, block_key(1), bytes_record(10, 1)).outcome, TierOutcome::kOk);
  EXPECT_EQ(get(*tier, block_key(1)).outcome, TierOutcome::kOk);
  EXPECT_TRUE(tier->stats().available);
  EXPECT_EQ(tier->stats().reconnects, 1);
}

// --- A three-master cluster ---

// Seeds that do not answer: a working tier without a slot map, failing at
// once until a seed answers CLUSTER SLOTS.
TEST(RedisClusterDown, SeedsDownAtStartLeaveTheTierUnavailable) {
  const int port_a = free_port();
  int port_b = free_port();
  while (port_b == port_a) port_b = free_port();
  auto tier = tier_from(
      fmt::format("redis-cluster://127.0.0.1:{},127.0.0.1:{}?backoff_ms=60000", port_a, port_b));
  ASSERT_NE(tier, nullptr);
  EXPECT_FALSE(tier->stats().available);
  EXPECT_EQ(tier->stats().connection_failures, 2);
  const TierResult r = get(*tier, block_key(1));
  EXPECT_EQ(r.outcome, TierOutcome::kError);
  EXPECT_LT(r.seconds, 0.1);
  EXPECT_NE(r.error.find("no known node serves slot"), std::string::npos) << r.error;
  EXPECT_EQ(tier->stats().connection_failures, 2);  // both seeds in back-off: no attempt
}

class RedisClusterTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { cluster_.reset(); }
  // One cluster for the suite; rebuilt if a test killed one of its nodes.
  void SetUp() override {
    if (!on_path("redis-server") || !on_path("redis-cli"))
      GTEST_SKIP() << "Redis cluster tests skipped: redis-server or redis-cli is not installed "
                      "(scripts/install-deps.sh installs them)";
    if (cluster_ == nullptr || !cluster_->healthy()) {
      cluster_ = std::make_unique<RedisCluster>();
      const std::string why = cluster_->start();
      if (!why.empty()) {
        cluster_.reset();
        FAIL() << why;
      }
    }
  }
  static std::string prefix() {
    return fmt::format("t:{}:", ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  static int64_t dbsize(int node) {
    const Reply reply = raw_command(cluster_->port(node), {"DBSIZE"});
    return reply != nullptr && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
  }
  // Which node (0..2) serves each slot, from CLUSTER SLOTS on node 0.
  static std::vector<int> slot_owners() {
    std::vector<int> owners(kRedisClusterSlots, -1);
    const Reply slots = raw_command(cluster_->port(0), {"CLUSTER", "SLOTS"});
    if (slots == nullptr || slots->type != REDIS_REPLY_ARRAY) return owners;
    for (size_t i = 0; i < slots->elements; ++i) {
      const redisReply& range = *slots->element[i];
      for (int node = 0; node < RedisCluster::kNodes; ++node) {
        if (range.element[2]->element[1]->integer != cluster_->port(node)) continue;
        std::fill(owners.begin() + range.element[0]->integer,
                  owners.begin() + range.element[1]->integer + 1, node);
      }
    }
    return owners;
  }
  static uint16_t slot_of(uint64_t k) {
    return redis_key_slot(prefix() + block_key(k).to_string());
  }

  static inline std::unique_ptr<RedisCluster> cluster_;
};

TEST_F(RedisClusterTest, SpreadsKeysOverTheNodesAndFollowsAskAndMoved) {
  const std::vector<int> owner = slot_owners();
  ASSERT_EQ(std::count(owner.begin(), owner.end(), -1), 0);

  const std::string seeds = fmt::format("127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}", cluster_->port(0),
                                        cluster_->port(1), cluster_->port(2));
  auto tier = tier_from(fmt::format("redis-cluster://{}/{}", seeds, prefix()));
  ASSERT_NE(tier, nullptr);
  EXPECT_TRUE(tier->stats().available);
  constexpr int kKeys = 300;
  int64_t expected[RedisCluster::kNodes] = {};
  std::vector<int64_t> before(RedisCluster::kNodes);
  for (int i = 0; i < RedisCluster::kNodes; ++i) before[i] = dbsize(i);
  for (uint64_t k = 0; k < kKeys; ++k) {
    ASSERT_EQ(put(*tier, block_key(k), bytes_record(1000, k)).outcome, TierOutcome::kOk) << k;
    ++expected[owner[slot_of(k)]];
  }
  // Every key on the node its slot says, and all three nodes used.
  for (int i = 0; i < RedisCluster::kNodes; ++i) {
    EXPECT_GT(expected[i], kKeys / 5) << i;
    EXPECT_EQ(dbsize(i) - before[i], expected[i]) << "node " << i;
  }

  // One seed is enough: the tier learns the rest from CLUSTER SLOTS.
  auto one_seed =
      tier_from(fmt::format("redis-cluster://127.0.0.1:{}/{}", cluster_->port(1), prefix()));
  ASSERT_NE(one_seed, nullptr);
  for (uint64_t k = 0; k < kKeys; ++k) {
    const TierResult got = get(*one_seed, block_key(k));
    ASSERT_EQ(got.outcome, TierOutcome::kOk) << k << ": " << got.error;
    ASSERT_EQ(*got.record, *bytes_record(1000, k)) << k;
  }
  EXPECT_EQ(one_seed->stats().hits, kKeys);

  // Move the slot of key 0 from its node (a) to the next (b) while the tier
  // holds the old map: first half-way (ASK), then for good (MOVED).
  const std::string name0 = prefix() + block_key(0).to_string();
  const uint16_t slot = slot_of(0);
  const int a = owner[slot], b = (a + 1) % RedisCluster::kNodes;
  const std::string id_a = cluster_->id(a), id_b = cluster_->id(b);
  const auto slot_text = std::to_string(slot);
  ASSERT_EQ(reply_text(raw_command(cluster_->port(b),
                                   {"CLUSTER", "SETSLOT", slot_text, "IMPORTING", id_a})),
            "OK");
  ASSERT_EQ(reply_text(raw_command(cluster_->port(a),
                                   {"CLUSTER", "SETSLOT", slot_text, "MIGRATING", id_b})),
            "OK");
  // A new key in the same slot: a does not have it, so it answers ASK b.
  uint64_t fresh = kKeys;
  while (slot_of(fresh) != slot) ++fresh;
  ASSERT_EQ(put(*tier, block_key(fresh), bytes_record(500, fresh)).outcome, TierOutcome::kOk);
  EXPECT_EQ(reply_text(raw_command(cluster_->port(b), {"CLUSTER", "COUNTKEYSINSLOT", slot_text})),
            "1");
  TierResult got = get(*tier, block_key(fresh));
  ASSERT_EQ(got.outcome, TierOutcome::kOk) << got.error;
  EXPECT_EQ(*got.record, *bytes_record(500, fresh));
  EXPECT_EQ(get(*tier, block_key(0)).outcome, TierOutcome::kOk);  // still on a

  ASSERT_EQ(reply_text(raw_command(cluster_->port(a),
                                   {"MIGRATE", "127.0.0.1", std::to_string(cluster_->port(b)), "",
                                    "0", "5000", "KEYS", name0})),
            "OK");
  for (const int node : {b, a, 3 - a - b}) {
    ASSERT_EQ(reply_text(raw_command(cluster_->port(node),
                                     {"CLUSTER", "SETSLOT", slot_text, "NODE", id_b})),
              "OK");
  }
  ASSERT_EQ(reply_text(raw_command(cluster_->port(a), {"CONFIG", "RESETSTAT"})), "OK");
  for (const uint64_t k : {uint64_t{0}, fresh, uint64_t{0}}) {
    got = get(*tier, block_key(k));
    ASSERT_EQ(got.outcome, TierOutcome::kOk) << k << ": " << got.error;
    EXPECT_EQ(*got.record, *bytes_record(k == 0 ? 1000 : 500, k));
  }
  // a saw one GET only, redirected: the tier noted the MOVED and went to b
  // directly afterwards.
  const std::string stats = reply_text(raw_command(cluster_->port(a), {"INFO", "commandstats"}));
  const size_t at = stats.find("cmdstat_get:");
  ASSERT_NE(at, std::string::npos) << stats;
  const std::string line = stats.substr(at, stats.find('\r', at) - at);
  EXPECT_NE(line.find("calls=0,"), std::string::npos) << line;
  EXPECT_NE(line.find("rejected_calls=1,"), std::string::npos) << line;
}

TEST_F(RedisClusterTest, ADeadNodeCostsOnlyItsKeys) {
  auto tier = tier_from(
      fmt::format("redis-cluster://127.0.0.1:{}/{}?backoff_ms=50", cluster_->port(0), prefix()));
  ASSERT_NE(tier, nullptr);
  constexpr int kKeys = 90;
  for (uint64_t k = 0; k < kKeys; ++k)
    ASSERT_EQ(put(*tier, block_key(k), bytes_record(100, k)).outcome, TierOutcome::kOk);
  constexpr int kDead = 2;
  const std::vector<int> owner = slot_owners();
  cluster_->node(kDead).kill();

  const auto start = Clock::now();
  int served = 0, failed = 0;
  for (uint64_t k = 0; k < kKeys; ++k) {
    const TierResult got = get(*tier, block_key(k));
    if (owner[slot_of(k)] == kDead) {
      EXPECT_EQ(got.outcome, TierOutcome::kError) << k;
      EXPECT_NE(got.error.find(cluster_->node(kDead).address()), std::string::npos) << got.error;
      ++failed;
    } else {
      EXPECT_EQ(got.outcome, TierOutcome::kOk) << k << ": " << got.error;
      ++served;
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(served, 0);
  EXPECT_LT(seconds_since(start), 2.0);  // failing fast, not waiting on the dead node
  EXPECT_TRUE(tier->stats().available);  // two of three nodes still serve
  EXPECT_GE(tier->stats().connection_failures, 1);
}

}  // namespace
}  // namespace kvforge::redis_test
