#include "eval/compression_matrix.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

namespace kvforge {
namespace {

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool has_own_budget(std::string_view press) {
  return press.find(":ratio=") != std::string_view::npos ||
         press.find(":tokens=") != std::string_view::npos;
}

// NaN-aware equality (a NaN budget equals a NaN budget).
bool same(double a, double b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

}  // namespace

Result<std::vector<std::string>> split_list(std::string_view list, std::string_view what) {
  std::vector<std::string> out;
  if (trim(list).empty()) return invalid_argument(fmt::format("{} is empty", what));
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view item = trim(list.substr(0, comma));
    if (item.empty()) {
      return invalid_argument(fmt::format("{} has an empty entry (two commas in a row?)", what));
    }
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list = list.substr(comma + 1);
  }
  return out;
}

Result<std::vector<std::string>> split_codec_list(std::string_view list) {
  KVF_ASSIGN_OR_RETURN(std::vector<std::string> items, split_list(list, "--codecs"));
  std::vector<std::string> out;
  for (size_t i = 0; i < items.size(); ++i) {
    const bool key = items[i].starts_with("k="), value = items[i].starts_with("v=");
    if ((key || value) && i + 1 < items.size() && items[i + 1].starts_with(key ? "v=" : "k=")) {
      out.push_back(items[i] + "," + items[i + 1]);
      ++i;
    } else {
      out.push_back(items[i]);
    }
  }
  return out;
}

Result<std::vector<double>> parse_budgets(std::string_view list) {
  KVF_ASSIGN_OR_RETURN(const std::vector<std::string> items, split_list(list, "--budgets"));
  std::vector<double> out;
  for (const std::string& item : items) {
    double v = 0;
    const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (error != std::errc() || end != item.data() + item.size() || !(v > 0 && v <= 1)) {
      return invalid_argument(fmt::format(
          "--budgets: '{}' is not a fraction in (0, 1] (the share of tokens kept, e.g. 0.25)",
          item));
    }
    out.push_back(v);
  }
  return out;
}

Result<std::vector<MatrixConfig>> expand_matrix(const std::vector<std::string>& codecs,
                                                const std::vector<std::string>& presses,
                                                const std::vector<double>& budgets) {
  if (codecs.empty()) return invalid_argument("--codecs: give at least one codec");
  if (presses.empty()) return invalid_argument("--presses: give at least one press (or none)");
  for (const auto* list : {&codecs, &presses}) {
    std::set<std::string> seen;
    for (const std::string& s : *list) {
      if (!seen.insert(s).second) {
        return invalid_argument(
            fmt::format("{}: '{}' is listed twice", list == &codecs ? "--codecs" : "--presses", s));
      }
    }
  }
  std::set<double> seen_budgets;
  for (double b : budgets) {
    if (!seen_budgets.insert(b).second) {
      return invalid_argument(fmt::format("--budgets: {} is listed twice", b));
    }
  }
  bool takes_budget = false;
  for (const std::string& p : presses)
    takes_budget = takes_budget || (p != "none" && !has_own_budget(p));
  if (takes_budget && budgets.empty()) {
    return invalid_argument("--budgets: give at least one budget for the presses (e.g. 0.5,0.25)");
  }
  std::vector<MatrixConfig> out;
  for (const std::string& codec : codecs) {
    for (const std::string& press : presses) {
      if (press == "none") {
        out.push_back({codec, press, 1.0, ""});
      } else if (has_own_budget(press)) {
        out.push_back({codec, press, std::numeric_limits<double>::quiet_NaN(), press});
      } else {
        for (double b : budgets) {
          out.push_back({codec, press, b, fmt::format("{}:ratio={}", press, b)});
        }
      }
    }
  }
  return out;
}

double MatrixRow::kv_fraction() const {
  return kv_bytes_per_token_reference > 0
             ? kv_bytes_per_token_context / kv_bytes_per_token_reference
             : 0;
}

bool operator==(const MatrixRow& a, const MatrixRow& b) {
  return a.model == b.model && a.codec == b.codec && a.press == b.press &&
         same(a.budget, b.budget) && a.press_spec == b.press_spec && a.protocol == b.protocol &&
         a.n_ctx == b.n_ctx && a.windows == b.windows && a.tokens == b.tokens &&
         same(a.mean_kl, b.mean_kl) && same(a.mean_kl_stderr, b.mean_kl_stderr) &&
         same(a.median_kl, b.median_kl) && same(a.p99_kl, b.p99_kl) && same(a.max_kl, b.max_kl) &&
         same(a.top1_agreement, b.top1_agreement) && same(a.ppl_reference, b.ppl_reference) &&
         same(a.ppl_candidate, b.ppl_candidate) &&
         same(a.kv_bytes_per_token_reference, b.kv_bytes_per_token_reference) &&
         same(a.kv_bytes_per_token_context, b.kv_bytes_per_token_context) &&
         same(a.kv_bytes_per_token_scored, b.kv_bytes_per_token_scored);
}

}  // namespace kvforge
