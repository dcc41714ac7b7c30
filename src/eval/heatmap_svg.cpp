#include "eval/heatmap_svg.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "eval/svg_writer.h"
#include "kvforge/status.h"

namespace kvforge {
namespace {

struct Rgb {
  double r, g, b;
};

// Stops of the colour scale, evenly spaced over [0, 1].
constexpr Rgb kScale[] = {
    {255, 247, 188}, {161, 218, 180}, {65, 182, 196}, {44, 127, 184}, {37, 52, 148}};

constexpr double kCellWidth = 64, kCellHeight = 30, kRowLabelWidth = 90, kPanelGap = 40;
constexpr double kTop = 64, kBottom = 40, kLeft = 30;

}  // namespace

std::string heatmap_colour(double v) {
  v = std::clamp(std::isnan(v) ? 0.0 : v, 0.0, 1.0);
  constexpr int kStops = static_cast<int>(std::size(kScale));
  const double at = v * (kStops - 1);
  const int i = std::min(static_cast<int>(at), kStops - 2);
  const double f = at - i;
  const Rgb& a = kScale[i];
  const Rgb& b = kScale[i + 1];
  auto mix = [f](double x, double y) { return static_cast<int>(std::lround(x + f * (y - x))); };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b));
}

std::string heatmap_svg(std::span<const HeatmapPanel> panels, const std::string& title,
                        const std::string& row_axis, const std::string& column_axis) {
  double width = kLeft;
  double height = kTop + kBottom;
  for (const HeatmapPanel& p : panels) {
    KVF_CHECK(p.values.size() == p.row_labels.size() * p.column_labels.size());
    width += kRowLabelWidth + kCellWidth * static_cast<double>(p.column_labels.size()) + kPanelGap;
    height =
        std::max(height, kTop + kBottom + kCellHeight * static_cast<double>(p.row_labels.size()));
  }
  // Room for the title at about 0.6 em per character.
  width = std::max(width, 2 * kLeft + 0.6 * 15 * static_cast<double>(title.size()));
  SvgWriter svg(width, height);
  svg.text(kLeft, 22, title, 15, "start", "title");
  double x0 = kLeft;
  for (const HeatmapPanel& p : panels) {
    svg.begin_group("panel", p.title);
    const double grid_x = x0 + kRowLabelWidth;
    const auto columns = static_cast<double>(p.column_labels.size());
    svg.text(grid_x + kCellWidth * columns / 2, kTop - 26, p.title, 13, "middle", "panel-title");
    for (size_t c = 0; c < p.column_labels.size(); ++c) {
      svg.text(grid_x + kCellWidth * (static_cast<double>(c) + 0.5), kTop - 8, p.column_labels[c],
               11, "middle", "column-label");
    }
    for (size_t r = 0; r < p.row_labels.size(); ++r) {
      const double y = kTop + kCellHeight * static_cast<double>(r);
      svg.text(grid_x - 8, y + kCellHeight / 2 + 4, p.row_labels[r], 11, "end", "row-label");
      for (size_t c = 0; c < p.column_labels.size(); ++c) {
        const double v = p.values[r * p.column_labels.size() + c];
        const double x = grid_x + kCellWidth * static_cast<double>(c);
        const bool missing = std::isnan(v);
        svg.rect(x, y, kCellWidth, kCellHeight, missing ? "#dddddd" : heatmap_colour(v), "cell",
                 "#ffffff");
        // Dark cells get white figures.
        const std::string label = missing ? "n/a" : fmt::format("{:.0f}%", 100 * v);
        svg.text(x + kCellWidth / 2, y + kCellHeight / 2 + 4, label, 11, "middle", "cell-label", 0,
                 !missing && v > 0.55 ? "#ffffff" : "#222222");
      }
    }
    const double grid_bottom = kTop + kCellHeight * static_cast<double>(p.row_labels.size());
    svg.text(grid_x + kCellWidth * columns / 2, grid_bottom + 24, column_axis, 11, "middle",
             "axis-label");
    svg.text(grid_x - 8, kTop - 8, row_axis, 11, "end", "axis-label");
    svg.end_group();
    x0 = grid_x + kCellWidth * columns + kPanelGap;
  }
  return svg.finish();
}

}  // namespace kvforge
