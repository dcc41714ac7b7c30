// Writing and reading the rows of a compression matrix
// (eval/compression_matrix.h) as Markdown, CSV and JSON.
//
// CSV: a header line with the column names of kMatrixCsvColumns and one line
// per row; fields holding a comma, quote or line break are quoted (RFC 4180,
// quotes doubled); numbers are written in the shortest form that reads back
// to the same double; a NaN budget is an empty field. JSON: an object with
// "kvforge_version", "kvforge_commit" and "rows", an array of objects with
// the same keys as the CSV columns (NaN as null). Reading either gives back
// the rows that were written, exactly.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "eval/compression_matrix.h"
#include "kvforge/status.h"

namespace kvforge {

// The CSV header, in order.
[[nodiscard]] const std::vector<std::string>& matrix_csv_columns();

[[nodiscard]] std::string matrix_to_csv(const std::vector<MatrixRow>& rows);
[[nodiscard]] Result<std::vector<MatrixRow>> matrix_from_csv(std::string_view text);

[[nodiscard]] std::string matrix_to_json(const std::vector<MatrixRow>& rows,
                                         std::string_view version, std::string_view commit);
[[nodiscard]] Result<std::vector<MatrixRow>> matrix_from_json(std::string_view text);

// A Markdown table, one line per row: codec, press, budget, KV bytes per
// token (context) and its share of f32, mean KL ± stderr, p99 KL, top-1
// agreement, perplexity.
[[nodiscard]] std::string matrix_to_markdown(const std::vector<MatrixRow>& rows);

}  // namespace kvforge
