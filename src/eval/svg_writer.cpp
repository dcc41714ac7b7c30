#include "eval/svg_writer.h"

#include <fmt/format.h>

#include "kvforge/status.h"

namespace kvforge {

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters other than tab and newline are not allowed in
        // XML 1.0 at all; write them as a visible '?'.
        out += (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') ? '?' : c;
    }
  }
  return out;
}

SvgWriter::SvgWriter(double width, double height) {
  out_ = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out_ += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0:.0f}\" "
      "height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
      width, height);
  rect(0, 0, width, height, "#ffffff", "background");
}

void SvgWriter::open(std::string_view tag) {
  out_ += std::string(static_cast<size_t>(2 * (open_groups_ + 1)), ' ');
  out_ += '<';
  out_ += tag;
}

void SvgWriter::attr(std::string_view name, std::string_view value) {
  out_ += fmt::format(" {}=\"{}\"", name, xml_escape(value));
}

void SvgWriter::attr(std::string_view name, double value) {
  out_ += fmt::format(" {}=\"{:.2f}\"", name, value);
}

void SvgWriter::optional_attr(std::string_view name, std::string_view value) {
  if (!value.empty()) attr(name, value);
}

void SvgWriter::begin_group(std::string_view css_class, std::string_view title) {
  open("g");
  optional_attr("class", css_class);
  out_ += ">\n";
  ++open_groups_;
  if (!title.empty()) {
    open("title");
    out_ += '>';
    out_ += xml_escape(title);
    out_ += "</title>\n";
  }
}

void SvgWriter::end_group() {
  KVF_CHECK(open_groups_ > 0);
  --open_groups_;
  out_ += std::string(static_cast<size_t>(2 * (open_groups_ + 1)), ' ');
  out_ += "</g>\n";
}

void SvgWriter::rect(double x, double y, double w, double h, std::string_view fill,
                     std::string_view css_class, std::string_view stroke) {
  open("rect");
  optional_attr("class", css_class);
  attr("x", x);
  attr("y", y);
  attr("width", w);
  attr("height", h);
  attr("fill", fill);
  optional_attr("stroke", stroke);
  out_ += "/>\n";
}

void SvgWriter::line(double x1, double y1, double x2, double y2, std::string_view stroke,
                     double stroke_width, std::string_view dash) {
  open("line");
  attr("x1", x1);
  attr("y1", y1);
  attr("x2", x2);
  attr("y2", y2);
  attr("stroke", stroke);
  attr("stroke-width", stroke_width);
  optional_attr("stroke-dasharray", dash);
  out_ += "/>\n";
}

void SvgWriter::circle(double cx, double cy, double r, std::string_view fill,
                       std::string_view css_class, std::string_view stroke) {
  open("circle");
  optional_attr("class", css_class);
  attr("cx", cx);
  attr("cy", cy);
  attr("r", r);
  attr("fill", fill);
  optional_attr("stroke", stroke);
  out_ += "/>\n";
}

namespace {

std::string point_list(const std::vector<double>& xy) {
  KVF_CHECK(xy.size() % 2 == 0);
  std::string points;
  for (size_t i = 0; i < xy.size(); i += 2) {
    points += fmt::format("{}{:.2f},{:.2f}", i ? " " : "", xy[i], xy[i + 1]);
  }
  return points;
}

}  // namespace

void SvgWriter::polygon(const std::vector<double>& xy, std::string_view fill,
                        std::string_view css_class, std::string_view stroke) {
  open("polygon");
  optional_attr("class", css_class);
  attr("points", point_list(xy));
  attr("fill", fill);
  optional_attr("stroke", stroke);
  out_ += "/>\n";
}

void SvgWriter::polyline(const std::vector<double>& xy, std::string_view stroke,
                         double stroke_width) {
  open("polyline");
  attr("points", point_list(xy));
  attr("fill", "none");
  attr("stroke", stroke);
  attr("stroke-width", stroke_width);
  out_ += "/>\n";
}

void SvgWriter::text(double x, double y, std::string_view content, double font_size,
                     std::string_view anchor, std::string_view css_class, double rotate,
                     std::string_view fill) {
  open("text");
  optional_attr("class", css_class);
  attr("x", x);
  attr("y", y);
  attr("font-size", font_size);
  if (anchor != "start") attr("text-anchor", anchor);
  if (rotate != 0) attr("transform", fmt::format("rotate({:.0f} {:.2f} {:.2f})", rotate, x, y));
  attr("fill", fill);
  out_ += '>';
  out_ += xml_escape(content);
  out_ += "</text>\n";
}

std::string SvgWriter::finish() {
  while (open_groups_ > 0) end_group();
  out_ += "</svg>\n";
  return std::move(out_);
}

}  // namespace kvforge
