#include "eval/matrix_report.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <variant>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kvforge {
namespace {

using Field = std::variant<std::string MatrixRow::*, int32_t MatrixRow::*, int64_t MatrixRow::*,
                           double MatrixRow::*>;

struct Column {
  const char* name;
  Field field;
};

// The columns, in CSV order.
const std::vector<Column>& columns() {
  static const std::vector<Column> kColumns = {
      {"model", &MatrixRow::model},
      {"codec", &MatrixRow::codec},
      {"press", &MatrixRow::press},
      {"budget", &MatrixRow::budget},
      {"press_spec", &MatrixRow::press_spec},
      {"protocol", &MatrixRow::protocol},
      {"n_ctx", &MatrixRow::n_ctx},
      {"windows", &MatrixRow::windows},
      {"tokens", &MatrixRow::tokens},
      {"mean_kl", &MatrixRow::mean_kl},
      {"mean_kl_stderr", &MatrixRow::mean_kl_stderr},
      {"median_kl", &MatrixRow::median_kl},
      {"p99_kl", &MatrixRow::p99_kl},
      {"max_kl", &MatrixRow::max_kl},
      {"top1_agreement", &MatrixRow::top1_agreement},
      {"ppl_reference", &MatrixRow::ppl_reference},
      {"ppl_candidate", &MatrixRow::ppl_candidate},
      {"kv_bytes_per_token_reference", &MatrixRow::kv_bytes_per_token_reference},
      {"kv_bytes_per_token_context", &MatrixRow::kv_bytes_per_token_context},
      {"kv_bytes_per_token_scored", &MatrixRow::kv_bytes_per_token_scored},
  };
  return kColumns;
}

std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// Shortest text that reads back to the same double; NaN as empty.
std::string number_text(double v) {
  return std::isnan(v) ? std::string() : fmt::format("{}", v);
}

Result<double> parse_double(std::string_view text, std::string_view column) {
  if (text.empty()) return std::numeric_limits<double>::quiet_NaN();
  double v = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (error != std::errc() || end != text.data() + text.size()) {
    return invalid_argument(fmt::format("matrix: '{}' in column {} is not a number", text, column));
  }
  return v;
}

template <class Int>
Result<Int> parse_int(std::string_view text, std::string_view column) {
  Int v = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return invalid_argument(
        fmt::format("matrix: '{}' in column {} is not an integer", text, column));
  }
  return v;
}

Status set_field(MatrixRow& row, const Column& c, std::string_view text) {
  if (auto* s = std::get_if<std::string MatrixRow::*>(&c.field)) {
    row.*(*s) = std::string(text);
  } else if (auto* i32 = std::get_if<int32_t MatrixRow::*>(&c.field)) {
    KVF_ASSIGN_OR_RETURN(row.*(*i32), parse_int<int32_t>(text, c.name));
  } else if (auto* i64 = std::get_if<int64_t MatrixRow::*>(&c.field)) {
    KVF_ASSIGN_OR_RETURN(row.*(*i64), parse_int<int64_t>(text, c.name));
  } else {
    KVF_ASSIGN_OR_RETURN(row.*std::get<double MatrixRow::*>(c.field), parse_double(text, c.name));
  }
  return Status();
}

std::string field_text(const MatrixRow& row, const Column& c) {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& v = row.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return v;
        } else if constexpr (std::is_same_v<T, double>) {
          return number_text(v);
        } else {
          return fmt::format("{}", v);
        }
      },
      c.field);
}

// Splits CSV text into records of fields (RFC 4180: quoted fields may hold
// commas, doubled quotes and line breaks). Blank lines are skipped.
Result<std::vector<std::vector<std::string>>> read_csv(std::string_view text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, field_started = false;
  auto end_record = [&] {
    if (field_started || !record.empty()) {
      record.push_back(std::move(field));
      records.push_back(std::move(record));
    }
    record.clear();
    field.clear();
    field_started = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      if (!field.empty()) return invalid_argument("matrix CSV: a quote in the middle of a field");
      quoted = field_started = true;
    } else if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
      field_started = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
    } else {
      field += c;
      field_started = true;
    }
  }
  if (quoted) return invalid_argument("matrix CSV: a quoted field is not closed");
  end_record();
  return records;
}

}  // namespace

const std::vector<std::string>& matrix_csv_columns() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const Column& c : columns()) names.emplace_back(c.name);
    return names;
  }();
  return kNames;
}

std::string matrix_to_csv(const std::vector<MatrixRow>& rows) {
  std::string out;
  for (const Column& c : columns()) out += fmt::format("{}{}", out.empty() ? "" : ",", c.name);
  out += '\n';
  for (const MatrixRow& row : rows) {
    bool first = true;
    for (const Column& c : columns()) {
      if (!first) out += ',';
      first = false;
      out += csv_field(field_text(row, c));
    }
    out += '\n';
  }
  return out;
}

Result<std::vector<MatrixRow>> matrix_from_csv(std::string_view text) {
  KVF_ASSIGN_OR_RETURN(const auto records, read_csv(text));
  if (records.empty() || records[0] != matrix_csv_columns()) {
    return invalid_argument(
        "matrix CSV: the header is not that of `kvforge eval matrix` (model,codec,press,...)");
  }
  std::vector<MatrixRow> rows;
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() != columns().size()) {
      return invalid_argument(fmt::format("matrix CSV: line {} has {} fields, expected {}", r + 1,
                                          records[r].size(), columns().size()));
    }
    MatrixRow row;
    for (size_t c = 0; c < columns().size(); ++c) {
      KVF_RETURN_IF_ERROR(set_field(row, columns()[c], records[r][c]));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string matrix_to_json(const std::vector<MatrixRow>& rows, std::string_view version,
                           std::string_view commit) {
  nlohmann::ordered_json j;
  j["kvforge_version"] = version;
  j["kvforge_commit"] = commit;
  j["rows"] = nlohmann::ordered_json::array();
  for (const MatrixRow& row : rows) {
    nlohmann::ordered_json o;
    for (const Column& c : columns()) {
      std::visit([&](auto member) { o[c.name] = row.*member; }, c.field);
    }
    j["rows"].push_back(std::move(o));
  }
  // NaN is written as null; doubles print with enough digits to read back.
  return j.dump(2) + "\n";
}

Result<std::vector<MatrixRow>> matrix_from_json(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("rows") || !j["rows"].is_array()) {
    return invalid_argument("matrix JSON: not the output of `kvforge eval matrix` (no \"rows\")");
  }
  std::vector<MatrixRow> rows;
  for (const nlohmann::json& o : j["rows"]) {
    MatrixRow row;
    for (const Column& c : columns()) {
      if (!o.is_object() || !o.contains(c.name)) {
        return invalid_argument(fmt::format("matrix JSON: a row has no \"{}\"", c.name));
      }
      const nlohmann::json& v = o[c.name];
      const bool ok = std::visit(
          [&](auto member) {
            using T = std::decay_t<decltype(row.*member)>;
            if constexpr (std::is_same_v<T, std::string>) {
              if (!v.is_string()) return false;
              row.*member = v.get<std::string>();
            } else if constexpr (std::is_same_v<T, double>) {
              if (v.is_null()) {
                row.*member = std::numeric_limits<double>::quiet_NaN();
              } else if (v.is_number()) {
                row.*member = v.get<double>();
              } else {
                return false;
              }
            } else {
              if (!v.is_number_integer()) return false;
              row.*member = v.get<T>();
            }
            return true;
          },
          c.field);
      if (!ok)
        return invalid_argument(fmt::format("matrix JSON: \"{}\" has the wrong type", c.name));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string matrix_to_markdown(const std::vector<MatrixRow>& rows) {
  std::string out =
      "| codec | press | budget | KV B/token | of f32 | mean KL | p99 KL | top-1 | ppl |\n"
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const MatrixRow& r : rows) {
    const std::string budget = std::isnan(r.budget) ? "-" : fmt::format("{}", r.budget);
    out += fmt::format(
        "| `{}` | `{}` | {} | {:.1f} | {:.1f} % | {:.3e} ± {:.1e} | {:.3e} | {:.2f} % | {:.4f} |\n",
        r.codec, r.press_spec.empty() ? r.press : r.press_spec, budget,
        r.kv_bytes_per_token_context, 100 * r.kv_fraction(), r.mean_kl, r.mean_kl_stderr, r.p99_kl,
        100 * r.top1_agreement, r.ppl_candidate);
  }
  return out;
}

}  // namespace kvforge
