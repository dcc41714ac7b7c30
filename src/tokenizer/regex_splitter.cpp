#include "tokenizer/regex_splitter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/format.h>

namespace kvforge::tokenizer {

struct RegexSplitter::CompiledPattern {
  pcre2_code* code = nullptr;
  ~CompiledPattern() { pcre2_code_free(code); }
};

namespace {

// Match data sized for the patterns' capture groups, owned by one call.
struct MatchData {
  pcre2_match_data* data;
  explicit MatchData(const pcre2_code* code)
      : data(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(data); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
};

}  // namespace

RegexSplitter::~RegexSplitter() = default;

Result<std::unique_ptr<RegexSplitter>> RegexSplitter::create(
    std::span<const std::string_view> patterns) {
  std::unique_ptr<RegexSplitter> splitter(new RegexSplitter());
  for (std::string_view pattern : patterns) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    // UCP makes \s, \d, \w Unicode-aware like the Python and Rust engines the
    // patterns were written for; MATCH_INVALID_UTF lets any bytes through.
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error_code,
                                     &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      return invalid_argument(fmt::format("pre-tokenizer pattern '{}' does not compile at {}: {}",
                                          pattern, error_offset,
                                          reinterpret_cast<const char*>(message)));
    }
    // JIT is an optimisation only; without it pcre2_match interprets.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    auto compiled = std::make_unique<CompiledPattern>();
    compiled->code = code;
    splitter->patterns_.push_back(std::move(compiled));
  }
  return splitter;
}

void RegexSplitter::split_with(const CompiledPattern& pattern, std::string_view text,
                               std::vector<std::string_view>& pieces) const {
  MatchData match(pattern.code);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t gap_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(pattern.code, subject, text.size(), pos, 0, match.data, nullptr);
    // No match, or a matcher failure (e.g. a resource limit): keep the rest
    // as one piece rather than lose text.
    if (rc < 0) break;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.data);
    const size_t start = ovector[0];
    const size_t end = ovector[1];
    if (end <= start) {
      // An empty match splits nothing; step over one unit and retry.
      pos = start + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > gap_start) pieces.push_back(text.substr(gap_start, start - gap_start));
    pieces.push_back(text.substr(start, end - start));
    gap_start = end;
    pos = end;
  }
  if (gap_start < text.size()) pieces.push_back(text.substr(gap_start));
}

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  if (text.empty()) return;
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (const auto& pattern : patterns_) {
    next.clear();
    for (std::string_view piece : current) split_with(*pattern, piece, next);
    current.swap(next);
  }
  pieces.insert(pieces.end(), current.begin(), current.end());
}

}  // namespace kvforge::tokenizer
