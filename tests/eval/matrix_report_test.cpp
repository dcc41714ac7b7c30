// The compression matrix's grid and reports: list parsing (codec pairs stay
// whole), grid expansion (order, budgets, entries with their own budget,
// errors), and CSV and JSON that read back to exactly the rows written,
// with awkward strings (commas, quotes, line breaks) and NaN budgets.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "eval/compression_matrix.h"
#include "eval/matrix_report.h"

namespace kvforge {
namespace {

TEST(MatrixLists, CodecPairsStayWhole) {
  auto codecs = split_codec_list("f16, k=int8,v=int4h ,int4,v=int4,k=f16,kivi2:r=0");
  ASSERT_TRUE(codecs.ok()) << codecs.status().to_string();
  EXPECT_EQ(*codecs, (std::vector<std::string>{"f16", "k=int8,v=int4h", "int4", "v=int4,k=f16",
                                               "kivi2:r=0"}));
  // A lone k= entry is left for the codec parser to judge.
  auto lone = split_codec_list("k=int8,f16");
  ASSERT_TRUE(lone.ok());
  EXPECT_EQ(*lone, (std::vector<std::string>{"k=int8", "f16"}));
  EXPECT_FALSE(split_codec_list("f16,,int8").ok());
  EXPECT_FALSE(split_codec_list(" ").ok());
  EXPECT_FALSE(split_list("a,", "--presses").ok());
}

TEST(MatrixLists, Budgets) {
  auto b = parse_budgets("0.5, 0.25,0.125,1");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<double>{0.5, 0.25, 0.125, 1}));
  for (const char* bad : {"0", "1.5", "-0.5", "half", "0.5x", "nan", ""}) {
    auto r = parse_budgets(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(parse_budgets("2").status().message().find("(0, 1]"), std::string::npos);
}

TEST(MatrixGrid, CodecMajorWithEveryBudget) {
  auto grid =
      expand_matrix({"f16", "int8"}, {"none", "snapkv", "h2o:tokens=64", "tova:w=8"}, {0.5, 0.25});
  ASSERT_TRUE(grid.ok()) << grid.status().to_string();
  ASSERT_EQ(grid->size(), 2u * (1 + 2 + 1 + 2));
  const MatrixConfig& none = (*grid)[0];
  EXPECT_EQ(none.codec, "f16");
  EXPECT_EQ(none.press, "none");
  EXPECT_EQ(none.budget, 1.0);
  EXPECT_EQ(none.press_spec, "");
  EXPECT_EQ((*grid)[1].press_spec, "snapkv:ratio=0.5");
  EXPECT_EQ((*grid)[2].press_spec, "snapkv:ratio=0.25");
  EXPECT_EQ((*grid)[2].budget, 0.25);
  // Its own budget: measured as given, budget NaN.
  EXPECT_EQ((*grid)[3].press_spec, "h2o:tokens=64");
  EXPECT_TRUE(std::isnan((*grid)[3].budget));
  // Unknown press names pass here (new presses need no change); keys are kept.
  EXPECT_EQ((*grid)[4].press_spec, "tova:w=8:ratio=0.5");
  EXPECT_EQ((*grid)[6].codec, "int8");
}

TEST(MatrixGrid, Errors) {
  EXPECT_FALSE(expand_matrix({}, {"none"}, {}).ok());
  EXPECT_FALSE(expand_matrix({"f16"}, {}, {0.5}).ok());
  EXPECT_FALSE(expand_matrix({"f16", "f16"}, {"none"}, {}).ok());
  EXPECT_FALSE(expand_matrix({"f16"}, {"snapkv", "snapkv"}, {0.5}).ok());
  EXPECT_FALSE(expand_matrix({"f16"}, {"snapkv"}, {0.5, 0.5}).ok());
  auto no_budget = expand_matrix({"f16"}, {"none", "snapkv"}, {});
  EXPECT_NE(no_budget.status().message().find("--budgets"), std::string::npos);
  // Without presses that take one, no budget is needed.
  EXPECT_TRUE(expand_matrix({"f16"}, {"none", "h2o:ratio=0.3"}, {}).ok());
}

std::vector<MatrixRow> sample_rows() {
  MatrixRow a;
  a.model = "stories260K.gguf";
  a.codec = "k=int8,v=int4h";
  a.press = "snapkv:window=16";
  a.budget = 0.125;
  a.press_spec = "snapkv:window=16:ratio=0.125";
  a.n_ctx = 512;
  a.windows = 8;
  a.tokens = 2040;
  a.mean_kl = 0.1 + 1e-17;  // not a short decimal
  a.mean_kl_stderr = 1.0 / 3;
  a.median_kl = 2.2250738585072014e-308;
  a.p99_kl = 12345.678901234567;
  a.max_kl = std::numeric_limits<double>::infinity();
  a.top1_agreement = 0.9712643678160919;
  a.ppl_reference = 4.8724;
  a.ppl_candidate = 5.0 / 7;
  a.kv_bytes_per_token_reference = 1280;
  a.kv_bytes_per_token_context = 171.33333333333334;
  a.kv_bytes_per_token_scored = 401.5;
  MatrixRow b = a;
  b.codec = "odd \"name\", with\nnewline";
  b.press = "h2o:tokens=64";
  b.budget = std::numeric_limits<double>::quiet_NaN();
  b.press_spec = "h2o:tokens=64";
  b.max_kl = 3.5;
  MatrixRow c;
  c.model = "m";
  c.codec = "f16";
  c.press = "none";
  return {a, b, c};
}

TEST(MatrixReport, CsvRoundTrip) {
  const std::vector<MatrixRow> rows = sample_rows();
  const std::string csv = matrix_to_csv(rows);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "model,codec,press,budget,press_spec,protocol,n_ctx,windows,tokens,mean_kl,"
            "mean_kl_stderr,median_kl,p99_kl,max_kl,top1_agreement,ppl_reference,ppl_candidate,"
            "kv_bytes_per_token_reference,kv_bytes_per_token_context,kv_bytes_per_token_scored");
  // The comma-holding codec is quoted; the quote in b's name doubled.
  EXPECT_NE(csv.find(",\"k=int8,v=int4h\","), std::string::npos);
  EXPECT_NE(csv.find("\"odd \"\"name\"\", with\nnewline\""), std::string::npos);
  auto back = matrix_from_csv(csv);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_EQ(back->size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_TRUE((*back)[i] == rows[i]) << i;
  EXPECT_TRUE(std::isnan((*back)[1].budget));
  EXPECT_EQ((*back)[0].mean_kl, rows[0].mean_kl);  // bit for bit
  // CRLF line ends read the same.
  std::string crlf;
  for (char ch : csv) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
  // (the newline inside the quoted name becomes CRLF too)
  auto back_crlf = matrix_from_csv(crlf);
  ASSERT_TRUE(back_crlf.ok());
  EXPECT_EQ((*back_crlf)[0], rows[0]);
}

TEST(MatrixReport, CsvErrors) {
  const std::string csv = matrix_to_csv(sample_rows());
  EXPECT_FALSE(matrix_from_csv("").ok());
  EXPECT_FALSE(matrix_from_csv("a,b,c\n1,2,3\n").ok());
  const std::string header = csv.substr(0, csv.find('\n') + 1);
  EXPECT_FALSE(matrix_from_csv(header + "x,y\n").ok());  // too few fields
  std::string bad_number = csv;
  bad_number.replace(bad_number.find(",512,"), 5, ",5x2,");
  auto r = matrix_from_csv(bad_number);
  EXPECT_NE(r.status().message().find("n_ctx"), std::string::npos);
  EXPECT_FALSE(matrix_from_csv(header + "\"unclosed,").ok());
}

TEST(MatrixReport, JsonRoundTrip) {
  const std::vector<MatrixRow> rows = sample_rows();
  const std::string json = matrix_to_json(rows, "0.1.0", "abc1234");
  EXPECT_NE(json.find("\"kvforge_commit\": \"abc1234\""), std::string::npos);
  EXPECT_NE(json.find("\"budget\": null"), std::string::npos);
  auto back = matrix_from_json(json);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_EQ(back->size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    MatrixRow expected = rows[i];
    // JSON has no infinity: it is written as null and reads back as NaN.
    if (std::isinf(expected.max_kl)) expected.max_kl = std::numeric_limits<double>::quiet_NaN();
    EXPECT_TRUE((*back)[i] == expected) << i;
  }
  EXPECT_FALSE(matrix_from_json("{").ok());
  EXPECT_FALSE(matrix_from_json("{\"rows\": 3}").ok());
  EXPECT_FALSE(matrix_from_json("{\"rows\": [{\"model\": \"m\"}]}").ok());
  std::string wrong_type = json;
  wrong_type.replace(wrong_type.find("\"n_ctx\": 512"), 12, "\"n_ctx\": \"512\"");
  EXPECT_NE(matrix_from_json(wrong_type).status().message().find("n_ctx"), std::string::npos);
}

TEST(MatrixReport, MarkdownLines) {
  const std::string md = matrix_to_markdown(sample_rows());
  EXPECT_EQ(md.substr(0, md.find('\n')),
            "| codec | press | budget | KV B/token | of f32 | mean KL | p99 KL | top-1 | ppl |");
  EXPECT_NE(md.find("| `k=int8,v=int4h` | `snapkv:window=16:ratio=0.125` | 0.125 | 171.3 | 13.4 % "
                    "| 1.000e-01 ± 3.3e-01 | 1.235e+04 | 97.13 % | 0.7143 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| `h2o:tokens=64` | - |"), std::string::npos);
  EXPECT_NE(md.find("| `f16` | `none` | 1 |"), std::string::npos);
}

}  // namespace
}  // namespace kvforge
