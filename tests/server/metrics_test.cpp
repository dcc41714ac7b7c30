// Metrics text: Prometheus exposition lines for known stats — cumulative
// histogram buckets, block states, counters by label.
#include <gtest/gtest.h>

#include "server/metrics.h"

namespace kvforge::server {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(MetricsTest, PrometheusTextForKnownStats) {
  ServingStats s;
  s.cache.blocks_total = 100;
  s.cache.blocks_free = 60;
  s.cache.blocks_cached = 30;
  s.cache.prefix_lookup_tokens = 200;
  s.cache.prefix_hit_tokens = 50;
  s.prompt_tokens = 200;
  s.reused_tokens = 50;
  s.computed_tokens = 160;
  s.generated_tokens = 1234567;
  s.waiting = 3;
  s.running = 2;
  s.preemptions = 4;
  s.time_to_first_token.add(0.0005);  // first bucket
  s.time_to_first_token.add(0.003);   // le 0.005
  s.time_to_first_token.add(100.0);   // +Inf only
  ServerMetrics server;
  server.count_finish("stop");
  server.count_finish("stop");
  server.count_finish("cancelled");
  server.count_response(200);
  server.count_response(400);
  const std::string text = render_metrics(s, server.snapshot());

  EXPECT_TRUE(has_line(text, "kvforge_kv_blocks{state=\"used\"} 10"));
  EXPECT_TRUE(has_line(text, "kvforge_kv_blocks{state=\"free\"} 60"));
  EXPECT_TRUE(has_line(text, "kvforge_kv_blocks{state=\"cached\"} 30"));
  EXPECT_TRUE(has_line(text, "kvforge_prefix_cache_hit_rate 0.25"));
  EXPECT_TRUE(has_line(text, "kvforge_prompt_tokens_reused_total 50"));
  EXPECT_TRUE(has_line(text, "kvforge_prompt_tokens_computed_total 160"));
  EXPECT_TRUE(has_line(text, "kvforge_generation_tokens_total 1234567"));
  EXPECT_TRUE(has_line(text, "kvforge_requests_waiting 3"));
  EXPECT_TRUE(has_line(text, "kvforge_requests_running 2"));
  EXPECT_TRUE(has_line(text, "kvforge_preemptions_total 4"));
  EXPECT_TRUE(has_line(text, "# TYPE kvforge_time_to_first_token_seconds histogram"));
  EXPECT_TRUE(has_line(text, "kvforge_time_to_first_token_seconds_bucket{le=\"0.001\"} 1"));
  EXPECT_TRUE(has_line(text, "kvforge_time_to_first_token_seconds_bucket{le=\"0.0025\"} 1"));
  EXPECT_TRUE(has_line(text, "kvforge_time_to_first_token_seconds_bucket{le=\"0.005\"} 2"));
  EXPECT_TRUE(has_line(text, "kvforge_time_to_first_token_seconds_bucket{le=\"30\"} 2"));
  EXPECT_TRUE(has_line(text, "kvforge_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE(has_line(text, "kvforge_time_to_first_token_seconds_count 3"));
  EXPECT_TRUE(has_line(text, "kvforge_time_per_output_token_seconds_count 0"));
  EXPECT_TRUE(has_line(text, "kvforge_requests_finished_total{finish_reason=\"stop\"} 2"));
  EXPECT_TRUE(has_line(text, "kvforge_requests_finished_total{finish_reason=\"cancelled\"} 1"));
  EXPECT_TRUE(has_line(text, "kvforge_requests_finished_total{finish_reason=\"length\"} 0"));
  EXPECT_TRUE(has_line(text, "kvforge_http_responses_total{status=\"400\"} 1"));
  // Every sample line belongs to a declared metric.
  std::string declared;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      declared = line.substr(7, line.find(' ', 7) - 7);
    } else if (line[0] != '#') {
      EXPECT_EQ(line.rfind(declared, 0), 0u) << line;
    }
  }
}

// Tier metrics: decisions, estimates and one labelled line per tier, the
// label escaped as Prometheus text asks (backslash, quote, newline).
TEST(MetricsTest, TierMetricsWithEscapedLabels) {
  ServingStats s;
  s.tiering.decided_load = 3;
  s.tiering.decided_recompute = 1;
  s.tiering.blocks_loaded = 256;
  s.tiering.estimated_load_seconds = 0.5;
  s.tiering.actual_load_seconds = 0.75;
  TierUsage disk;
  disk.name = "disk:/tmp/a\"b\\c:1GiB";
  disk.available = false;
  disk.hits = 7;
  disk.seconds_per_record = 0.003;
  disk.corrupt = 4;
  TierUsage redis;
  redis.name = "redis://127.0.0.1:6379";
  redis.hits = 2;
  redis.reconnects = 1;
  s.tiering.tiers = {disk, redis};
  const std::string text = render_metrics(s, ServerMetrics().snapshot());
  EXPECT_TRUE(has_line(text, "kvforge_tier_decisions_total{decision=\"load\"} 3"));
  EXPECT_TRUE(has_line(text, "kvforge_tier_decisions_total{decision=\"recompute\"} 1"));
  EXPECT_TRUE(has_line(text, "kvforge_tier_blocks_loaded_total 256"));
  EXPECT_TRUE(has_line(text, "kvforge_tier_load_seconds_total{kind=\"actual\"} 0.75"));
  EXPECT_TRUE(has_line(text, "kvforge_tier_up{tier=\"disk:/tmp/a\\\"b\\\\c:1GiB\"} 0")) << text;
  EXPECT_TRUE(has_line(text, "kvforge_tier_up{tier=\"redis://127.0.0.1:6379\"} 1"));
  EXPECT_TRUE(has_line(text, "kvforge_tier_hits_total{tier=\"redis://127.0.0.1:6379\"} 2"));
  EXPECT_TRUE(has_line(text, "kvforge_tier_reconnects_total{tier=\"redis://127.0.0.1:6379\"} 1"));
  EXPECT_TRUE(has_line(text, "kvforge_tier_corrupt_total{tier=\"disk:/tmp/a\\\"b\\\\c:1GiB\"} 4"));
  EXPECT_TRUE(
      has_line(text, "kvforge_tier_block_read_seconds{tier=\"disk:/tmp/a\\\"b\\\\c:1GiB\"} 0.003"));
}

}  // namespace
}  // namespace kvforge::server
