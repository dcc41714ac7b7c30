#include "engine/relay_store.h"

#include <algorithm>
#include <tuple>

#include <xxhash.h>

#include "util/fp16.h"

namespace kvforge {

RelayStore::RelayStore(int32_t n_layers, int32_t kv_dim, const RelayStoreOptions& options)
    : n_layers_(n_layers), kv_dim_(kv_dim), options_(options) {
  options_.min_tokens = std::max(options_.min_tokens, 1);
}

size_t RelayStore::Output::bytes() const {
  return tokens.size() * sizeof(int32_t) + (keys.size() + values.size()) * sizeof(uint16_t);
}

// The workflow's name and a window of tokens: equal windows of different
// workflows never meet.
uint64_t RelayStore::window_key(std::string_view workflow, const int32_t* tokens) const {
  const uint64_t seed = XXH3_64bits(workflow.data(), workflow.size());
  return XXH3_64bits_withSeed(tokens, sizeof(int32_t) * static_cast<size_t>(options_.min_tokens),
                              seed);
}

void RelayStore::index(const Output& o, bool insert) {
  const auto n = static_cast<int32_t>(o.tokens.size());
  for (int32_t at = 0; at + options_.min_tokens <= n; ++at) {
    const uint64_t key = window_key(o.workflow, o.tokens.data() + at);
    if (insert) {
      windows_.emplace(key, WindowAt{o.id, at});
      continue;
    }
    auto [first, last] = windows_.equal_range(key);
    for (auto it = first; it != last; ++it) {
      if (it->second.output == o.id && it->second.offset == at) {
        windows_.erase(it);
        break;
      }
    }
  }
}

bool RelayStore::add(std::string_view workflow, std::string_view agent, int32_t pos0,
                     std::vector<int32_t> tokens, std::vector<uint16_t> keys,
                     std::vector<uint16_t> values, int32_t next_use_steps) {
  const size_t n = tokens.size();
  if (static_cast<int64_t>(n) < options_.min_tokens) return false;
  const size_t per_side = static_cast<size_t>(n_layers_) * n * static_cast<size_t>(kv_dim_);
  if (keys.size() != per_side || values.size() != per_side) return false;
  Output o;
  o.id = next_id_++;
  o.workflow = std::string(workflow);
  o.agent = std::string(agent);
  o.pos0 = pos0;
  o.tokens = std::move(tokens);
  o.keys = std::move(keys);
  o.values = std::move(values);
  o.due = next_use_steps >= 0 ? clock_ + next_use_steps : -1;
  o.last_used = ++use_counter_;
  const size_t bytes = o.bytes();
  if (bytes > options_.max_bytes) return false;
  while (static_cast<size_t>(stats_.bytes) + bytes > options_.max_bytes && !outputs_.empty()) {
    evict_one();
  }
  index(o, true);
  stats_.bytes += static_cast<int64_t>(bytes);
  ++stats_.outputs;
  ++stats_.stored;
  outputs_.emplace(o.id, std::move(o));
  return true;
}

// Unhinted outputs first (least recently used), then the hinted one needed
// furthest in the future; an output whose next use has passed counts as
// unhinted.
void RelayStore::evict_one() {
  auto rank = [this](const Output& o) {
    const bool hinted = o.due >= clock_;
    return std::make_tuple(hinted ? 1 : 0, hinted ? -o.due : 0, o.last_used);
  };
  auto victim = outputs_.begin();
  for (auto it = outputs_.begin(); it != outputs_.end(); ++it) {
    if (rank(it->second) < rank(victim->second)) victim = it;
  }
  index(victim->second, false);
  stats_.bytes -= static_cast<int64_t>(victim->second.bytes());
  --stats_.outputs;
  ++stats_.evicted;
  outputs_.erase(victim);
}

const RelayStore::Output* RelayStore::output(uint64_t id) const {
  auto it = outputs_.find(id);
  return it == outputs_.end() ? nullptr : &it->second;
}

std::vector<RelayStore::Match> RelayStore::find(std::string_view workflow,
                                                std::span<const int32_t> prompt, int32_t begin,
                                                int32_t end) {
  std::vector<Match> matches;
  ++stats_.lookups;
  const int32_t w = options_.min_tokens;
  end = std::min(end, static_cast<int32_t>(prompt.size()));
  for (int32_t at = std::max(begin, 0); at + w <= end;) {
    Match best;
    auto [first, last] = windows_.equal_range(window_key(workflow, prompt.data() + at));
    for (auto it = first; it != last; ++it) {
      const Output& o = outputs_.at(it->second.output);
      if (o.workflow != workflow) continue;
      const auto on = static_cast<int32_t>(o.tokens.size());
      int32_t length = 0;
      while (at + length < end && it->second.offset + length < on &&
             prompt[static_cast<size_t>(at + length)] ==
                 o.tokens[static_cast<size_t>(it->second.offset + length)]) {
        ++length;
      }
      // A hash collision matches less than a window; the longest run wins,
      // ties go to the most recent output.
      if (length >= w && (length > best.length || (length == best.length && o.id > best.output))) {
        best = Match{at, length, o.id, it->second.offset};
      }
    }
    if (best.length == 0) {
      ++at;
      continue;
    }
    outputs_.at(best.output).last_used = ++use_counter_;
    matches.push_back(best);
    ++stats_.matches;
    stats_.matched_tokens += best.length;
    at += best.length;
  }
  return matches;
}

int32_t RelayStore::load(const Match& m, int32_t layer, float* k, float* v) const {
  const Output* o = output(m.output);
  if (o == nullptr) return -1;
  const size_t n = o->tokens.size();
  const auto dim = static_cast<size_t>(kv_dim_);
  const size_t from = (static_cast<size_t>(layer) * n + static_cast<size_t>(m.output_begin)) * dim;
  const size_t count = static_cast<size_t>(m.length) * dim;
  for (size_t i = 0; i < count; ++i) {
    k[i] = fp16_to_fp32(o->keys[from + i]);
    v[i] = fp16_to_fp32(o->values[from + i]);
  }
  return o->pos0 + m.output_begin;
}

}  // namespace kvforge
