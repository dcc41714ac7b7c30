// The SVG writers: their output is well-formed XML (read back with the
// strict reader of xml_check.h) with one element per cell or point, labels
// come back exactly as given whatever characters they hold, and the colour
// scale runs from its first to its last stop.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "eval/compression_matrix.h"
#include "eval/fidelity_plot_svg.h"
#include "eval/heatmap_svg.h"
#include "eval/svg_writer.h"
#include "xml_check.h"

namespace kvforge {
namespace {

using testing::XmlNode;
using testing::XmlReader;

std::unique_ptr<XmlNode> parse_svg(const std::string& text) {
  std::string error;
  auto root = XmlReader::parse(text, &error);
  EXPECT_TRUE(root) << error;
  if (root) {
    EXPECT_EQ(root->name, "svg");
    EXPECT_EQ(root->attribute("xmlns"), "http://www.w3.org/2000/svg");
    EXPECT_FALSE(root->attribute("viewBox").empty());
  }
  return root;
}

TEST(XmlCheck, RejectsMalformedDocuments) {
  // The reader itself must fail on what a browser would refuse.
  for (const char* bad :
       {"<a><b></a></b>", "<a x=1/>", "<a>1 < 2</a>", "<a>&bogus;</a>", "<a x=\"1\" x=\"2\"/>",
        "<a/><b/>", "<a>", "text<a/>", "<a x=\"<\"/>", "<a>AT&T</a>"}) {
    std::string error;
    EXPECT_FALSE(XmlReader::parse(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
  std::string error;
  auto ok =
      XmlReader::parse("<?xml version=\"1.0\"?>\n<a k='v'><!-- c --><b>x &amp; y</b></a>", &error);
  ASSERT_TRUE(ok) << error;
  EXPECT_EQ(ok->children.at(0)->text, "x & y");
  EXPECT_EQ(ok->attribute("k"), "v");
}

TEST(SvgWriter, EscapesTextAndAttributes) {
  const std::string nasty = "k=int8,v=int4h <&> \"quoted\" 'single' \x01 end";
  SvgWriter svg(100, 50);
  svg.begin_group("g<&>", nasty);
  svg.text(10, 20, nasty);
  svg.rect(1, 2, 3, 4, "#abcdef", nasty);
  svg.end_group();
  svg.begin_group("left-open");
  const std::string doc = svg.finish();  // closes the open group
  auto root = parse_svg(doc);
  ASSERT_TRUE(root);
  // The control character becomes '?', everything else survives exactly.
  std::string expected = nasty;
  expected[expected.find('\x01')] = '?';
  bool found_text = false, found_rect = false, found_title = false;
  for (const XmlNode* n : root->all()) {
    if (n->name == "text") found_text = found_text || n->text == expected;
    if (n->name == "rect") found_rect = found_rect || n->attribute("class") == expected;
    if (n->name == "title") found_title = found_title || n->text == expected;
  }
  EXPECT_TRUE(found_text && found_rect && found_title);
  EXPECT_EQ(xml_escape("a<b&c>\"'"), "a&lt;b&amp;c&gt;&quot;&apos;");
}

TEST(Heatmap, OneCellPerValueInEveryPanel) {
  std::vector<HeatmapPanel> panels(2);
  for (HeatmapPanel& p : panels) {
    p.row_labels = {"0 %", "25 %", "50 %", "75 %", "100 %"};
    p.column_labels = {"256", "512", "1024"};
  }
  panels[0].title = "accuracy <raw>";
  panels[1].title = "agreement & more";
  for (int i = 0; i < 15; ++i) {
    panels[0].values.push_back(i / 14.0);
    panels[1].values.push_back(i == 7 ? std::numeric_limits<double>::quiet_NaN() : 1 - i / 14.0);
  }
  auto root = parse_svg(heatmap_svg(panels, "model & kv", "depth", "length"));
  ASSERT_TRUE(root);
  const auto groups = root->with_class("panel");
  ASSERT_EQ(groups.size(), 2u);
  for (size_t g = 0; g < 2; ++g) {
    const auto cells = groups[g]->with_class("cell");
    const auto labels = groups[g]->with_class("cell-label");
    ASSERT_EQ(cells.size(), 15u);
    ASSERT_EQ(labels.size(), 15u);
    // Row-major: the label of cell (r, c) is its value as a percentage.
    for (size_t i = 0; i < 15; ++i) {
      const double v = panels[g].values[i];
      EXPECT_EQ(labels[i]->text, std::isnan(v) ? "n/a" : std::to_string(std::lround(100 * v)) + "%")
          << g << " " << i;
      EXPECT_EQ(cells[i]->attribute("fill"), std::isnan(v) ? "#dddddd" : heatmap_colour(v));
    }
    // Cells of a row share y; of a column share x.
    EXPECT_EQ(cells[0]->attribute("y"), cells[2]->attribute("y"));
    EXPECT_EQ(cells[1]->attribute("x"), cells[4]->attribute("x"));
    EXPECT_NE(cells[0]->attribute("y"), cells[3]->attribute("y"));
  }
  EXPECT_EQ(groups[0]->with_class("panel-title").at(0)->text, "accuracy <raw>");
  EXPECT_EQ(root->with_class("title").at(0)->text, "model & kv");
}

TEST(Heatmap, ColourScaleEnds) {
  EXPECT_EQ(heatmap_colour(0), "#fff7bc");
  EXPECT_EQ(heatmap_colour(1), "#253494");
  EXPECT_EQ(heatmap_colour(-3), heatmap_colour(0));
  EXPECT_EQ(heatmap_colour(7), heatmap_colour(1));
  EXPECT_EQ(heatmap_colour(0.5), "#41b6c4");  // the middle stop exactly
  EXPECT_NE(heatmap_colour(0.3), heatmap_colour(0.31));
}

MatrixRow plot_row(const std::string& codec, const std::string& press, double budget, double bytes,
                   double kl, double top1) {
  MatrixRow r;
  r.model = "m.gguf";
  r.codec = codec;
  r.press = press;
  r.budget = budget;
  r.press_spec = press == "none" ? "" : press + ":ratio=" + std::to_string(budget);
  r.kv_bytes_per_token_reference = 1280;
  r.kv_bytes_per_token_context = bytes;
  r.mean_kl = kl;
  r.top1_agreement = top1;
  return r;
}

TEST(FidelityPlot, OnePointPerRowInBothPanels) {
  const std::vector<MatrixRow> rows = {
      plot_row("f32", "none", 1, 1280, 0, 1),  // KL 0: on the floor, hollow
      plot_row("f16", "none", 1, 640, 1e-6, 0.999),
      plot_row("f16", "snapkv", 0.5, 330, 1e-2, 0.97),
      plot_row("f16", "snapkv", 0.25, 170, 3e-2, 0.94),
      plot_row("k=int8,v=int4h", "h2o<&>", 0.5, 210, 2e-2, 0.95),
      plot_row("int4", "streaming", 0.25, 60, 0.4, 0.7),
  };
  const std::string doc = fidelity_plot_svg(rows, "title \"quoted\"");
  auto root = parse_svg(doc);
  ASSERT_TRUE(root);
  const auto panels = root->with_class("panel");
  ASSERT_EQ(panels.size(), 2u);
  for (const XmlNode* p : panels) {
    const auto points = p->with_class("point");
    ASSERT_EQ(points.size(), rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      // Each point's tooltip names its configuration.
      const std::string title = points[i]->children.at(0)->text;
      EXPECT_EQ(points[i]->children.at(0)->name, "title");
      EXPECT_EQ(title.find(rows[i].codec + " + "), 0u) << title;
      EXPECT_EQ(points[i]->with_class("marker").size(), 1u);
    }
    // Lines join the snapkv budgets of f16 with f16's uncompressed point.
    int polylines = 0;
    for (const XmlNode* n : p->all()) polylines += n->name == "polyline";
    EXPECT_EQ(polylines, 1);
  }
  // The KL-0 point is hollow (white fill) in the KL panel.
  const XmlNode* zero = panels[0]->with_class("point")[0]->with_class("marker").at(0);
  EXPECT_EQ(zero->attribute("fill"), "#ffffff");
  // A lower KL is drawn lower on the page (larger y) than a higher one.
  // (f16's markers are squares: the first vertex is the top-left corner.)
  auto y_of = [&](size_t i) {
    const XmlNode* m = panels[0]->with_class("point")[i]->with_class("marker").at(0);
    EXPECT_EQ(m->name, "polygon");
    const std::string points = m->attribute("points");
    return std::stod(points.substr(points.find(',') + 1));
  };
  EXPECT_GT(y_of(1), y_of(2));  // f16: 1e-6 below 1e-2
  EXPECT_GT(y_of(2), y_of(3));  // and 1e-2 below 3e-2
  EXPECT_NE(root->with_class("legend").size(), 0u);
  // An empty matrix still makes a valid document.
  EXPECT_TRUE(parse_svg(fidelity_plot_svg({}, "empty")));
}

}  // namespace
}  // namespace kvforge
