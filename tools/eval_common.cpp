#include "eval_common.h"

#include <unistd.h>

#include <cstdio>

namespace kvforge::cli {

std::string compression_label(const ModelArgs& m) {
  std::string label;
  auto add = [&](const std::string& part) { label += (label.empty() ? "" : " ") + part; };
  if (!m.press.empty() && m.press != "none") add(m.press);
  if (!m.press_layers.empty()) add("layers " + m.press_layers);
  if (!m.select.empty()) add("select " + m.select);
  return label;
}

std::string codec_label(const ModelArgs& m) {
  return m.kv_codec_layers.empty() ? m.kv_codec : m.kv_codec + " layers " + m.kv_codec_layers;
}

std::string kv_label(const ModelArgs& m) {
  const std::string compression = compression_label(m);
  return compression.empty() ? codec_label(m) : codec_label(m) + " + " + compression;
}

Result<std::unique_ptr<KvCache>> make_reference_eval_cache(const Model& model, int32_t n_ctx) {
  ModelArgs args;
  args.kv_codec = kEvalReferenceCodec;
  args.prefix_sharing = false;
  return make_kv_cache(model, args, n_ctx);
}

Result<std::unique_ptr<KvCache>> make_eval_cache(const Model& model, const ModelArgs& args,
                                                 int32_t n_ctx) {
  ModelArgs a = args;
  a.prefix_sharing = false;
  return make_kv_cache(model, a, n_ctx);
}

ProgressBar::ProgressBar() : tty_(isatty(fileno(stderr)) != 0) {}

void ProgressBar::update(int32_t done, int32_t total, const std::string& unit,
                         const std::string& detail) {
  constexpr int kWidth = 30;
  const int filled = total > 0 ? kWidth * done / total : kWidth;
  std::fprintf(stderr, "%s[%.*s%*s] %d/%d %s  %s%s", tty_ ? "\r" : "", filled,
               "##############################", kWidth - filled, "", done, total, unit.c_str(),
               detail.c_str(), tty_ ? "" : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish() const {
  if (tty_) std::fputs("\n", stderr);
}

}  // namespace kvforge::cli
