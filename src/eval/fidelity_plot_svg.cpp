#include "eval/fidelity_plot_svg.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "eval/svg_writer.h"

namespace kvforge {
namespace {

// Press colours in order of first appearance ("none" is black).
constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
enum class Shape { kCircle, kSquare, kTriangleUp, kDiamond, kTriangleDown, kPentagon };
constexpr int kShapes = 6;

constexpr double kWidth = 1040, kPanelWidth = 400, kPanelHeight = 300;
constexpr double kTop = 56, kLeftMargin = 80, kPanelGap = 120;

// A log or linear axis mapping [lo, hi] onto [pixel_lo, pixel_hi].
struct Axis {
  double lo, hi;
  bool log;
  double pixel_lo, pixel_hi;

  [[nodiscard]] double at(double v) const {
    const double t =
        log ? (std::log(v) - std::log(lo)) / (std::log(hi) - std::log(lo)) : (v - lo) / (hi - lo);
    return pixel_lo + std::clamp(t, 0.0, 1.0) * (pixel_hi - pixel_lo);
  }
};

std::string bytes_label(double b) {
  if (b >= 1024 * 1024) return fmt::format("{:g} MiB", b / (1024 * 1024));
  if (b >= 1024) return fmt::format("{:g} KiB", b / 1024);
  return fmt::format("{:g} B", b);
}

void draw_marker(SvgWriter& svg, Shape shape, double x, double y, const std::string& colour,
                 bool hollow) {
  const double r = 5;
  const std::string fill = hollow ? "#ffffff" : colour;
  switch (shape) {
    case Shape::kCircle:
      svg.circle(x, y, r, fill, "marker", colour);
      return;
    case Shape::kSquare:
      svg.polygon({x - r, y - r, x + r, y - r, x + r, y + r, x - r, y + r}, fill, "marker", colour);
      return;
    case Shape::kTriangleUp:
      svg.polygon({x, y - r * 1.2, x + r * 1.1, y + r * 0.8, x - r * 1.1, y + r * 0.8}, fill,
                  "marker", colour);
      return;
    case Shape::kDiamond:
      svg.polygon({x, y - r * 1.3, x + r, y, x, y + r * 1.3, x - r, y}, fill, "marker", colour);
      return;
    case Shape::kTriangleDown:
      svg.polygon({x, y + r * 1.2, x + r * 1.1, y - r * 0.8, x - r * 1.1, y - r * 0.8}, fill,
                  "marker", colour);
      return;
    case Shape::kPentagon: {
      std::vector<double> xy;
      for (int k = 0; k < 5; ++k) {
        const double a = -M_PI / 2 + 2 * M_PI * k / 5;
        xy.push_back(x + r * 1.15 * std::cos(a));
        xy.push_back(y + r * 1.15 * std::sin(a));
      }
      svg.polygon(xy, fill, "marker", colour);
      return;
    }
  }
}

// Ticks of a log axis: powers of `base` in [lo, hi], thinned to at most 8.
std::vector<double> log_ticks(double lo, double hi, double base) {
  std::vector<double> ticks;
  for (double v = lo; v <= hi * (1 + 1e-9); v *= base) ticks.push_back(v);
  size_t step = 1;
  while (ticks.size() / step > 8) ++step;
  std::vector<double> thinned;
  for (size_t i = 0; i < ticks.size(); i += step) thinned.push_back(ticks[i]);
  return thinned;
}

}  // namespace

std::string fidelity_plot_svg(const std::vector<MatrixRow>& rows, const std::string& title) {
  // Styles: colour by press, shape by codec.
  std::map<std::string, std::string> colour;
  std::map<std::string, Shape> shape;
  std::vector<std::string> press_order, codec_order;
  for (const MatrixRow& r : rows) {
    if (!colour.contains(r.press)) {
      const size_t n = colour.size() - (colour.contains("none") ? 1 : 0);
      colour[r.press] = r.press == "none" ? "#000000" : kPalette[n % std::size(kPalette)];
      press_order.push_back(r.press);
    }
    if (!shape.contains(r.codec)) {
      shape[r.codec] = static_cast<Shape>(shape.size() % kShapes);
      codec_order.push_back(r.codec);
    }
  }

  // Ranges. x: bytes per token, powers of two around the data.
  double x_min = std::numeric_limits<double>::infinity(), x_max = 0;
  double kl_min = std::numeric_limits<double>::infinity(), kl_max = 0;
  double top1_min = 1;
  for (const MatrixRow& r : rows) {
    if (r.kv_bytes_per_token_context > 0) {
      x_min = std::min(x_min, r.kv_bytes_per_token_context);
      x_max = std::max(x_max, r.kv_bytes_per_token_context);
    }
    if (r.mean_kl > 0 && std::isfinite(r.mean_kl)) {
      kl_min = std::min(kl_min, r.mean_kl);
      kl_max = std::max(kl_max, r.mean_kl);
    }
    if (std::isfinite(r.top1_agreement)) top1_min = std::min(top1_min, r.top1_agreement);
  }
  if (!(x_max > 0)) x_min = x_max = 1;
  double x_lo = std::exp2(std::floor(std::log2(x_min)));
  double x_hi = std::exp2(std::ceil(std::log2(x_max)));
  if (x_hi <= x_lo) x_hi = 2 * x_lo;
  if (!(kl_max > 0)) kl_min = kl_max = 1e-3;
  const double kl_lo = std::pow(10.0, std::floor(std::log10(kl_min)));
  double kl_hi = std::pow(10.0, std::ceil(std::log10(kl_max)));
  if (kl_hi <= kl_lo) kl_hi = 10 * kl_lo;
  const double top1_lo = std::max(0.0, std::floor(top1_min * 10 - 1e-9) / 10);

  const double legend_top = kTop + kPanelHeight + 64;
  const double height =
      legend_top + 22 * static_cast<double>(std::max(press_order.size(), codec_order.size())) + 30;
  SvgWriter svg(kWidth, height);
  svg.text(kLeftMargin, 24, title, 15, "start", "title");

  struct Panel {
    std::string name;
    Axis y;
    std::function<double(const MatrixRow&)> value;
    std::function<bool(const MatrixRow&)> on_floor;  // KL 0: hollow at the floor
    std::vector<double> ticks;
    std::function<std::string(double)> tick_label;
  };
  const double y_top = kTop, y_bottom = kTop + kPanelHeight;
  std::vector<Panel> panels;
  panels.push_back(
      {"mean KL divergence (nats, lower is better)", Axis{kl_lo, kl_hi, true, y_bottom, y_top},
       [](const MatrixRow& r) { return r.mean_kl; },
       [](const MatrixRow& r) { return !(r.mean_kl > 0) || !std::isfinite(r.mean_kl); },
       log_ticks(kl_lo, kl_hi, 10), [](double v) { return fmt::format("{:.0e}", v); }});
  // Ticks every 1, 2, 5, 10 or 20 points, whichever gives at most 10.
  double top1_step = 0.2;
  for (const double step : {0.01, 0.02, 0.05, 0.1}) {
    if ((1 - top1_lo) / step <= 10) {
      top1_step = step;
      break;
    }
  }
  std::vector<double> top1_ticks;
  for (int k = 0; top1_lo + k * top1_step <= 1 + 1e-9; ++k) {
    top1_ticks.push_back(top1_lo + k * top1_step);
  }
  panels.push_back({"top-1 agreement with f32 (%, higher is better)",
                    Axis{top1_lo, 1, false, y_bottom, y_top},
                    [](const MatrixRow& r) { return r.top1_agreement; },
                    [](const MatrixRow& r) { return !std::isfinite(r.top1_agreement); }, top1_ticks,
                    [](double v) { return fmt::format("{:.0f}", 100 * v); }});

  for (size_t p = 0; p < panels.size(); ++p) {
    const Panel& panel = panels[p];
    const double left = kLeftMargin + static_cast<double>(p) * (kPanelWidth + kPanelGap);
    const Axis x{x_lo, x_hi, true, left, left + kPanelWidth};
    svg.begin_group("panel", panel.name);
    svg.rect(left, y_top, kPanelWidth, kPanelHeight, "#fbfbfb", "plot-area", "#999999");
    svg.text(left + kPanelWidth / 2, y_top - 10, panel.name, 12, "middle", "panel-title");
    for (const double t : log_ticks(x_lo, x_hi, 2)) {
      svg.line(x.at(t), y_top, x.at(t), y_bottom, "#e2e2e2");
      svg.text(x.at(t), y_bottom + 16, bytes_label(t), 10, "middle", "tick-label");
    }
    for (const double t : panel.ticks) {
      svg.line(left, panel.y.at(t), left + kPanelWidth, panel.y.at(t), "#e2e2e2");
      svg.text(left - 6, panel.y.at(t) + 4, panel.tick_label(t), 10, "end", "tick-label");
    }
    svg.text(left + kPanelWidth / 2, y_bottom + 36, "KV bytes per token of the compressed context",
             11, "middle", "axis-label");
    // Lines: each (codec, press) through its budgets and the codec's
    // uncompressed point, in order of bytes.
    for (const std::string& codec : codec_order) {
      const MatrixRow* full = nullptr;
      for (const MatrixRow& r : rows) {
        if (r.codec == codec && r.press == "none") full = &r;
      }
      for (const std::string& press : press_order) {
        if (press == "none") continue;
        std::vector<const MatrixRow*> line;
        for (const MatrixRow& r : rows) {
          if (r.codec == codec && r.press == press && r.kv_bytes_per_token_context > 0) {
            line.push_back(&r);
          }
        }
        if (full && full->kv_bytes_per_token_context > 0 && !line.empty()) line.push_back(full);
        if (line.size() < 2) continue;
        std::sort(line.begin(), line.end(), [](const MatrixRow* a, const MatrixRow* b) {
          return a->kv_bytes_per_token_context < b->kv_bytes_per_token_context;
        });
        std::vector<double> xy;
        for (const MatrixRow* r : line) {
          xy.push_back(x.at(r->kv_bytes_per_token_context));
          xy.push_back(panel.on_floor(*r) ? panel.y.pixel_lo : panel.y.at(panel.value(*r)));
        }
        svg.polyline(xy, colour[press], 1.2);
      }
    }
    for (const MatrixRow& r : rows) {
      const std::string label = fmt::format(
          "{} + {}: {:.1f} B/token ({:.1f} % of f32), mean KL {:.3e}, top-1 {:.2f} %", r.codec,
          r.press_spec.empty() ? r.press : r.press_spec, r.kv_bytes_per_token_context,
          100 * r.kv_fraction(), r.mean_kl, 100 * r.top1_agreement);
      svg.begin_group("point", label);
      const bool floor = panel.on_floor(r);
      const double px =
          x.at(r.kv_bytes_per_token_context > 0 ? r.kv_bytes_per_token_context : x_lo);
      const double py = floor ? panel.y.pixel_lo : panel.y.at(panel.value(r));
      draw_marker(svg, shape[r.codec], px, py, colour[r.press], floor);
      svg.end_group();
    }
    svg.end_group();
  }

  // Legend: presses by colour, codecs by shape.
  svg.begin_group("legend");
  svg.text(kLeftMargin, legend_top - 8, "press (colour)", 12, "start", "legend-title");
  for (size_t i = 0; i < press_order.size(); ++i) {
    const double y = legend_top + 22 * static_cast<double>(i);
    svg.line(kLeftMargin, y + 8, kLeftMargin + 24, y + 8, colour[press_order[i]], 2.5);
    svg.text(kLeftMargin + 32, y + 12, press_order[i], 11, "start", "legend-label");
  }
  const double codec_x = kLeftMargin + kPanelWidth + kPanelGap;
  svg.text(codec_x, legend_top - 8, "codec (marker); hollow: KL 0, drawn on the floor", 12, "start",
           "legend-title");
  for (size_t i = 0; i < codec_order.size(); ++i) {
    const double y = legend_top + 22 * static_cast<double>(i);
    draw_marker(svg, shape[codec_order[i]], codec_x + 10, y + 8, "#444444", false);
    svg.text(codec_x + 28, y + 12, codec_order[i], 11, "start", "legend-label");
  }
  svg.end_group();
  return svg.finish();
}

}  // namespace kvforge
