// SvgWriter: builds a small, standalone SVG 1.1 document (the charts of
// `kvforge eval`) as text. Elements are written in call order; groups nest.
// Every attribute value and text node is XML-escaped, so labels may hold any
// text (codec specs, file names). Coordinates are user units (= px at 100 %),
// written with two decimals.
//
// Ownership: the writer owns the text it builds. Thread-safety: none.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kvforge {

// XML-escapes & < > " ' for text nodes and attribute values.
[[nodiscard]] std::string xml_escape(std::string_view text);

class SvgWriter {
 public:
  // Opens the document: width x height user units, white background.
  SvgWriter(double width, double height);

  // <g class=...> ... </g>; `title` (optional) becomes a <title> child, which
  // browsers show as a tooltip over the group.
  void begin_group(std::string_view css_class, std::string_view title = {});
  void end_group();

  void rect(double x, double y, double w, double h, std::string_view fill,
            std::string_view css_class = {}, std::string_view stroke = {});
  void line(double x1, double y1, double x2, double y2, std::string_view stroke,
            double stroke_width = 1, std::string_view dash = {});
  void circle(double cx, double cy, double r, std::string_view fill,
              std::string_view css_class = {}, std::string_view stroke = {});
  // A closed polygon through the points {x0, y0, x1, y1, ...}.
  void polygon(const std::vector<double>& xy, std::string_view fill,
               std::string_view css_class = {}, std::string_view stroke = {});
  // An open polyline through the points {x0, y0, x1, y1, ...}.
  void polyline(const std::vector<double>& xy, std::string_view stroke, double stroke_width = 1);
  // anchor: "start", "middle" or "end"; rotate: degrees about (x, y).
  void text(double x, double y, std::string_view content, double font_size = 12,
            std::string_view anchor = "start", std::string_view css_class = {}, double rotate = 0,
            std::string_view fill = "#222");

  // Closes every open group and the document; returns the text.
  [[nodiscard]] std::string finish();

 private:
  void open(std::string_view tag);
  void attr(std::string_view name, std::string_view value);
  void attr(std::string_view name, double value);
  void optional_attr(std::string_view name, std::string_view value);

  std::string out_;
  int open_groups_ = 0;
};

}  // namespace kvforge
