#include "server/metrics.h"

#include <iterator>

#include <fmt/format.h>

namespace kvforge::server {
namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Counts print as integers, ratios as decimals.
template <class T>
void single(std::string& out, const char* name, const char* type, const char* help, T value) {
  header(out, name, type, help);
  out += fmt::format("{} {}\n", name, value);
}

// Histogram keeps a count per bucket; Prometheus wants cumulative counts.
void histogram(std::string& out, const char* name, const char* help, const Histogram& h) {
  header(out, name, "histogram", help);
  int64_t cumulative = 0;
  for (size_t i = 0; i < std::size(Histogram::kBounds); ++i) {
    cumulative += h.counts[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, Histogram::kBounds[i], cumulative);
  }
  cumulative += h.counts[std::size(Histogram::kBounds)];
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, h.sum, name, h.total);
}

// A Prometheus label value: backslash, double quote and newline escaped.
std::string label_value(const std::string& text) {
  std::string out;
  for (const char ch : text) {
    if (ch == '\\' || ch == '"') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

void tiering_metrics(std::string& out, const TieringStats& t) {
  single(out, "kvforge_tier_lookups_total", "counter",
         "Prompts with blocks beyond the pool's prefix hit, looked up in the tiers",
         int64_t{t.lookups});
  header(out, "kvforge_tier_decisions_total", "counter",
         "Cost-model decisions per looked-up prompt: load its blocks or recompute them");
  out += fmt::format("kvforge_tier_decisions_total{{decision=\"load\"}} {}\n", t.decided_load);
  out += fmt::format("kvforge_tier_decisions_total{{decision=\"recompute\"}} {}\n",
                     t.decided_recompute);
  single(out, "kvforge_tier_gave_up_waiting_total", "counter",
         "Fetches still running when recomputing would have been faster (the rest prefilled)",
         int64_t{t.gave_up_waiting});
  single(out, "kvforge_tier_blocks_loaded_total", "counter",
         "Prefix blocks loaded from the tiers into the pool", int64_t{t.blocks_loaded});
  single(out, "kvforge_tier_records_refused_total", "counter",
         "Tier records that failed verification (treated as misses)", int64_t{t.records_refused});
  single(out, "kvforge_tier_records_spilled_total", "counter",
         "Prefix blocks handed to the tiers (write-behind)", int64_t{t.records_spilled});
  header(out, "kvforge_tier_load_seconds_total", "counter",
         "Completed fetches: the cost model's estimate and the measured time of loading, and "
         "the estimated time of recomputing the same tokens");
  out += fmt::format("kvforge_tier_load_seconds_total{{kind=\"estimated\"}} {}\n",
                     t.estimated_load_seconds);
  out +=
      fmt::format("kvforge_tier_load_seconds_total{{kind=\"actual\"}} {}\n", t.actual_load_seconds);
  out += fmt::format("kvforge_tier_load_seconds_total{{kind=\"recompute_estimated\"}} {}\n",
                     t.estimated_recompute_seconds);
  if (t.tiers.empty()) return;
  struct Column {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const TierUsage&);
  };
  const Column columns[] = {
      {"kvforge_tier_up", "gauge", "1 while the tier is reachable and writable",
       [](const TierUsage& u) { return u.available ? 1.0 : 0.0; }},
      {"kvforge_tier_puts_total", "counter", "Records written",
       [](const TierUsage& u) { return static_cast<double>(u.puts); }},
      {"kvforge_tier_put_rejected_total", "counter",
       "Writes not attempted (queue full, tier read-only or full)",
       [](const TierUsage& u) { return static_cast<double>(u.put_rejected); }},
      {"kvforge_tier_put_errors_total", "counter", "Writes that failed",
       [](const TierUsage& u) { return static_cast<double>(u.put_errors); }},
      {"kvforge_tier_hits_total", "counter", "Reads that found the record",
       [](const TierUsage& u) { return static_cast<double>(u.hits); }},
      {"kvforge_tier_misses_total", "counter", "Reads that did not",
       [](const TierUsage& u) { return static_cast<double>(u.misses); }},
      {"kvforge_tier_get_errors_total", "counter", "Reads that failed (counted as misses)",
       [](const TierUsage& u) { return static_cast<double>(u.get_errors); }},
      {"kvforge_tier_evictions_total", "counter", "Records the tier dropped for room",
       [](const TierUsage& u) { return static_cast<double>(u.evictions); }},
      {"kvforge_tier_corrupt_total", "counter", "Stored records found damaged and dropped",
       [](const TierUsage& u) { return static_cast<double>(u.corrupt); }},
      {"kvforge_tier_reconnects_total", "counter", "Times a down server answered again",
       [](const TierUsage& u) { return static_cast<double>(u.reconnects); }},
      {"kvforge_tier_connection_failures_total", "counter",
       "Failed connects and connections dropped after a timeout or an I/O error",
       [](const TierUsage& u) { return static_cast<double>(u.connection_failures); }},
      {"kvforge_tier_stored_bytes", "gauge", "Bytes stored (-1: unknown)",
       [](const TierUsage& u) { return static_cast<double>(u.stored_bytes); }},
      {"kvforge_tier_queued", "gauge", "Operations queued or running",
       [](const TierUsage& u) { return static_cast<double>(u.queued); }},
      {"kvforge_tier_block_read_seconds", "gauge",
       "The cost model's estimate of reading one block record",
       [](const TierUsage& u) { return u.seconds_per_record; }},
  };
  for (const Column& c : columns) {
    header(out, c.name, c.type, c.help);
    for (const TierUsage& u : t.tiers) {
      out += fmt::format("{}{{tier=\"{}\"}} {}\n", c.name, label_value(u.name), c.value(u));
    }
  }
}

}  // namespace

void ServerMetrics::count_finish(const std::string& reason) {
  std::lock_guard lock(mutex_);
  ++counters_.finished_by_reason[reason];
}

void ServerMetrics::count_response(int status) {
  std::lock_guard lock(mutex_);
  ++counters_.responses_by_status[status];
}

ServerCounters ServerMetrics::snapshot() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

std::string render_metrics(const ServingStats& s, const ServerCounters& server) {
  std::string out;
  const CacheStats& c = s.cache;
  // Blocks held by sequences and not (also) by the prefix cache.
  const int64_t used = c.blocks_total - c.blocks_free - c.blocks_cached;
  header(out, "kvforge_kv_blocks", "gauge",
         "KV cache blocks by state: used (held by running sequences only), free, cached (held "
         "by the prefix cache, maybe shared with running sequences)");
  out += fmt::format("kvforge_kv_blocks{{state=\"used\"}} {}\n", used);
  out += fmt::format("kvforge_kv_blocks{{state=\"free\"}} {}\n", c.blocks_free);
  out += fmt::format("kvforge_kv_blocks{{state=\"cached\"}} {}\n", c.blocks_cached);
  single(out, "kvforge_kv_blocks_capacity", "gauge", "KV cache blocks in the pool",
         int64_t{c.blocks_total});
  single(out, "kvforge_kv_bytes_capacity", "gauge", "Bytes of the KV block pool",
         int64_t{c.bytes_capacity});
  single(out, "kvforge_kv_bytes_used", "gauge", "Bytes of KV the sequences hold",
         int64_t{c.bytes_used});
  single(out, "kvforge_prefix_cache_lookups_total", "counter",
         "Prompts looked up in the prefix cache", int64_t{c.prefix_lookups});
  single(out, "kvforge_prefix_cache_hits_total", "counter",
         "Prefix-cache lookups that reused at least one block", int64_t{c.prefix_hits});
  single(out, "kvforge_prefix_cache_lookup_tokens_total", "counter",
         "Prompt tokens offered to the prefix cache", int64_t{c.prefix_lookup_tokens});
  single(out, "kvforge_prefix_cache_hit_tokens_total", "counter",
         "Prompt tokens served from the prefix cache", int64_t{c.prefix_hit_tokens});
  single(out, "kvforge_prefix_cache_hit_rate", "gauge",
         "Fraction of the prompt tokens offered to the prefix cache that it served",
         c.prefix_lookup_tokens > 0 ? static_cast<double>(c.prefix_hit_tokens) /
                                          static_cast<double>(c.prefix_lookup_tokens)
                                    : 0.0);
  single(out, "kvforge_prefix_cache_evicted_blocks_total", "counter",
         "Cached blocks evicted to make room", int64_t{c.prefix_evicted_blocks});
  single(out, "kvforge_prompt_tokens_total", "counter", "Prompt tokens of admitted requests",
         int64_t{s.prompt_tokens});
  single(out, "kvforge_prompt_tokens_reused_total", "counter",
         "Prompt tokens whose KV came from the prefix cache", int64_t{s.reused_tokens});
  single(out, "kvforge_prompt_tokens_computed_total", "counter",
         "Tokens prefilled: prompts and recomputation after preemption",
         int64_t{s.computed_tokens});
  single(out, "kvforge_prompt_tokens_relayed_total", "counter",
         "Prompt tokens whose KV came from an earlier output of their workflow (relay)",
         int64_t{s.relay_tokens});
  single(out, "kvforge_prompt_tokens_relay_recomputed_total", "counter",
         "Of the relayed prompt tokens, those recomputed through every layer",
         int64_t{s.relay_recomputed_tokens});
  single(out, "kvforge_relay_outputs", "gauge", "Workflow outputs kept with their KV for relay",
         int64_t{s.relay.outputs});
  single(out, "kvforge_relay_bytes", "gauge", "Bytes of KV kept for relay", int64_t{s.relay.bytes});
  single(out, "kvforge_relay_evicted_outputs_total", "counter",
         "Workflow outputs evicted from the relay store for room", int64_t{s.relay.evicted});
  tiering_metrics(out, s.tiering);
  single(out, "kvforge_generation_tokens_total", "counter", "Tokens generated",
         int64_t{s.generated_tokens});
  histogram(out, "kvforge_time_to_first_token_seconds", "Seconds from submission to first token",
            s.time_to_first_token);
  histogram(out, "kvforge_time_per_output_token_seconds",
            "Seconds between consecutive tokens of a request", s.time_per_output_token);
  single(out, "kvforge_requests_waiting", "gauge", "Requests queued for admission",
         int64_t{s.waiting});
  single(out, "kvforge_requests_running", "gauge", "Requests holding a sequence",
         int64_t{s.running});
  single(out, "kvforge_preemptions_total", "counter",
         "Requests preempted for memory (recomputed later)", int64_t{s.preemptions});
  single(out, "kvforge_scheduler_steps_total", "counter", "Scheduler steps run", int64_t{s.steps});
  single(out, "kvforge_requests_submitted_total", "counter",
         "Generation requests submitted to the engine (one per choice)", int64_t{s.submitted});
  header(out, "kvforge_requests_finished_total", "counter",
         "Generation requests finished, by OpenAI finish reason (cancelled: the client left)");
  for (const char* reason : {"stop", "length", "cancelled", "error"}) {
    const auto it = server.finished_by_reason.find(reason);
    out += fmt::format("kvforge_requests_finished_total{{finish_reason=\"{}\"}} {}\n", reason,
                       it == server.finished_by_reason.end() ? 0 : it->second);
  }
  header(out, "kvforge_http_responses_total", "counter", "HTTP responses by status code");
  for (const auto& [status, count] : server.responses_by_status) {
    out += fmt::format("kvforge_http_responses_total{{status=\"{}\"}} {}\n", status, count);
  }
  return out;
}

}  // namespace kvforge::server
