// Heatmaps as SVG: one or more panels side by side, each a grid of cells
// coloured by a value in [0, 1] (pass-key accuracy, agreement), with the
// value printed in the cell as a percentage. Used by `kvforge eval passkey`.
//
// Structure of the output (what tests and readers may rely on): one
// <g class="panel"> per panel, holding one <rect class="cell"> per grid cell
// (row-major), each followed by its <text class="cell-label">; a cell whose
// value is NaN is grey and labelled "n/a".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kvforge {

struct HeatmapPanel {
  std::string title;
  std::vector<std::string> row_labels;     // top to bottom
  std::vector<std::string> column_labels;  // left to right
  std::vector<double> values;              // [rows][columns], each in [0, 1] or NaN
};

// The colour of value v in [0, 1] (clamped): a sequential scale from a pale
// yellow (0) through green to a dark blue (1), "#rrggbb".
[[nodiscard]] std::string heatmap_colour(double v);

// The document. `title` heads it; `row_axis` (short: it stands above the
// row labels, e.g. "depth") and `column_axis` (below the grid, e.g.
// "prompt length (tokens)") name the axes. Every panel must have
// values.size() == rows × columns (a programmer error otherwise).
[[nodiscard]] std::string heatmap_svg(std::span<const HeatmapPanel> panels,
                                      const std::string& title, const std::string& row_axis,
                                      const std::string& column_axis);

}  // namespace kvforge
