#include "eval/passkey.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kvforge {
namespace {

// SplitMix64 (Steele, Lea and Flood 2014): a fixed, portable mixing of the
// trial's coordinates into random bits.
uint64_t split_mix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Index of the largest logit, the lowest index among equal maxima.
int32_t greedy_token(const float* logits, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

std::vector<int32_t> encode_text(const tokenizer::Tokenizer& tok, std::string_view text) {
  return tok.encode(text, /*add_special=*/false, /*parse_special=*/false);
}

// A piece that follows other text: SentencePiece-style tokenizers put a
// space before the first word themselves (their "dummy prefix"); for the
// others the space is written.
std::vector<int32_t> encode_following(const tokenizer::Tokenizer& tok, std::string_view text) {
  const std::vector<int32_t> probe = encode_text(tok, "x");
  const bool adds_space = !probe.empty() && tok.token_to_piece(probe[0]).starts_with(' ');
  return encode_text(tok, adds_space ? std::string(text) : " " + std::string(text));
}

// Prefills `prompt` into SeqId{0} of an empty `kv` through the prompt hooks,
// then generates n tokens greedily (each after the first is a decode step).
Status greedy_answer(Model& model, KvCache& kv, std::span<const int32_t> prompt, int32_t n,
                     std::vector<float>& logits, std::vector<int32_t>& answer,
                     double* bytes_per_token) {
  const SeqId seq{0};
  answer.clear();
  KVF_RETURN_IF_ERROR(kv.truncate(seq, 0));
  const auto prompt_end = static_cast<int32_t>(prompt.size());
  kv.begin_prompt(seq, prompt_end);
  KVF_RETURN_IF_ERROR(model.forward(prompt, 0, kv, seq, LogitsFor::kLastToken, logits.data()));
  KVF_RETURN_IF_ERROR(kv.end_prompt(seq));
  if (bytes_per_token) {
    *bytes_per_token = static_cast<double>(kv.sequence_bytes(seq)) / prompt_end;
  }
  const int32_t n_vocab = model.config().n_vocab;
  for (int32_t i = 0; i < n; ++i) {
    const int32_t id = greedy_token(logits.data(), n_vocab);
    answer.push_back(id);
    if (i + 1 == n) break;
    const int32_t next[1] = {id};
    KVF_RETURN_IF_ERROR(
        model.forward(next, prompt_end + i, kv, seq, LogitsFor::kLastToken, logits.data()));
    KVF_RETURN_IF_ERROR(kv.end_decode_step(seq));
  }
  return kv.truncate(seq, 0);
}

}  // namespace

std::string passkey_instruction() {
  return "A pass key is hidden in this text. Find it and remember it.";
}

std::string passkey_needle(std::string_view key) {
  return fmt::format("The pass key is {0}. Remember it. {0} is the pass key.", key);
}

std::string passkey_question() {
  return "What is the pass key? The pass key is";
}

Result<std::vector<int32_t>> assemble_passkey_prompt(const PasskeyPieces& p, int32_t length,
                                                     double depth_percent, int64_t filler_offset,
                                                     PasskeyLayout* layout) {
  if (!(depth_percent >= 0 && depth_percent <= 100)) {
    return invalid_argument(fmt::format("depth {} is outside [0, 100] percent", depth_percent));
  }
  if (p.filler.empty()) return invalid_argument("the filler text has no tokens");
  const int64_t fixed = static_cast<int64_t>(p.head.size() + p.needle.size() + p.question.size());
  if (length <= fixed) {
    return invalid_argument(fmt::format(
        "a pass-key prompt of {} tokens leaves no room for filler: the instruction, needle and "
        "question take {} (use longer --lengths)",
        length, fixed));
  }
  PasskeyLayout l;
  l.filler_tokens = static_cast<int32_t>(length - fixed);
  l.filler_before = static_cast<int32_t>(
      std::lround(depth_percent / 100.0 * static_cast<double>(l.filler_tokens)));
  l.needle_begin = static_cast<int32_t>(p.head.size()) + l.filler_before;
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(length));
  const auto filler_size = static_cast<int64_t>(p.filler.size());
  int64_t at = ((filler_offset % filler_size) + filler_size) % filler_size;
  auto add_filler = [&](int32_t n) {
    for (int32_t i = 0; i < n; ++i) {
      out.push_back(p.filler[static_cast<size_t>(at)]);
      at = at + 1 == filler_size ? 0 : at + 1;
    }
  };
  out.insert(out.end(), p.head.begin(), p.head.end());
  add_filler(l.filler_before);
  out.insert(out.end(), p.needle.begin(), p.needle.end());
  add_filler(l.filler_tokens - l.filler_before);
  out.insert(out.end(), p.question.begin(), p.question.end());
  KVF_CHECK(static_cast<int32_t>(out.size()) == length);
  if (layout) *layout = l;
  return out;
}

Result<PasskeyPrompt> make_passkey_prompt(const tokenizer::Tokenizer& tok,
                                          std::span<const int32_t> filler, std::string_view key,
                                          int32_t length, double depth_percent,
                                          int64_t filler_offset) {
  std::vector<int32_t> head;
  if (tok.add_bos() && tok.bos_id()) head.push_back(*tok.bos_id());
  const std::vector<int32_t> instruction = encode_text(tok, passkey_instruction());
  head.insert(head.end(), instruction.begin(), instruction.end());
  const std::vector<int32_t> needle = encode_following(tok, passkey_needle(key));
  const std::string question_text = passkey_question();
  const std::vector<int32_t> question = encode_following(tok, question_text);
  const std::vector<int32_t> answered =
      encode_following(tok, question_text + " " + std::string(key));
  PasskeyPieces pieces{head, needle, question, filler};
  PasskeyPrompt prompt;
  KVF_ASSIGN_OR_RETURN(prompt.tokens, assemble_passkey_prompt(pieces, length, depth_percent,
                                                              filler_offset, &prompt.layout));
  prompt.needle_tokens = static_cast<int32_t>(needle.size());
  prompt.n_answer = std::max<int32_t>(1, static_cast<int32_t>(answered.size() - question.size()));
  prompt.key = std::string(key);
  return prompt;
}

PasskeyDraw draw_passkey(uint64_t seed, int32_t length, double depth_percent, int32_t trial,
                         int32_t digits, int64_t filler_size) {
  // The coordinates mixed in one at a time; the depth in hundredths of a percent.
  uint64_t state = seed;
  for (const uint64_t x :
       {static_cast<uint64_t>(length), static_cast<uint64_t>(std::llround(depth_percent * 100)),
        static_cast<uint64_t>(trial)}) {
    state = split_mix(state) ^ x;
  }
  PasskeyDraw d;
  for (int32_t i = 0; i < digits; ++i) {
    const uint64_t r = split_mix(state);
    d.key += static_cast<char>(i == 0 ? '1' + r % 9 : '0' + r % 10);
  }
  d.filler_offset =
      filler_size > 0 ? static_cast<int64_t>(split_mix(state) % static_cast<uint64_t>(filler_size))
                      : 0;
  return d;
}

bool passkey_retrieved(std::string_view generated, std::string_view key) {
  const size_t first = generated.find_first_not_of(" \t\n\r");
  if (first == std::string_view::npos || key.empty()) return false;
  return generated.substr(first).starts_with(key);
}

double PasskeyCell::reference_accuracy() const {
  return trials ? double(reference_retrieved) / trials : 0;
}
double PasskeyCell::candidate_accuracy() const {
  return trials ? double(candidate_retrieved) / trials : 0;
}
double PasskeyCell::agreement() const {
  return trials ? double(agree) / trials : 0;
}
double PasskeyCell::bytes_per_token() const {
  return trials ? sum_bytes_per_token / trials : 0;
}

Result<PasskeyResult> run_passkey(Model& model, const tokenizer::Tokenizer& tok, KvCache& reference,
                                  KvCache& candidate, std::span<const int32_t> filler,
                                  const PasskeyOptions& o, const PasskeyProgress& progress) {
  if (&reference == &candidate) {
    return invalid_argument("the reference and the candidate must be two different KV caches");
  }
  if (o.lengths.empty() || o.depths.empty()) {
    return invalid_argument("pass key: give at least one length and one depth");
  }
  if (o.trials < 1) return invalid_argument("pass key: trials must be at least 1");
  if (o.key_digits < 1 || o.key_digits > 18) {
    return invalid_argument("pass key: the key must have 1 to 18 digits");
  }
  if (filler.empty()) return invalid_argument("the filler text has no tokens");
  std::vector<float> logits(static_cast<size_t>(model.config().n_vocab));
  std::vector<int32_t> ref_answer, cand_answer;
  PasskeyResult result;
  const auto n_cells = static_cast<int32_t>(o.lengths.size() * o.depths.size());
  for (const int32_t length : o.lengths) {
    for (const double depth : o.depths) {
      PasskeyCell cell;
      cell.length = length;
      cell.depth = depth;
      for (int32_t t = 0; t < o.trials; ++t) {
        const PasskeyDraw draw = draw_passkey(o.seed, length, depth, t, o.key_digits,
                                              static_cast<int64_t>(filler.size()));
        KVF_ASSIGN_OR_RETURN(
            const PasskeyPrompt prompt,
            make_passkey_prompt(tok, filler, draw.key, length, depth, draw.filler_offset));
        double bytes = 0;
        KVF_RETURN_IF_ERROR(greedy_answer(model, reference, prompt.tokens, prompt.n_answer, logits,
                                          ref_answer, nullptr));
        KVF_RETURN_IF_ERROR(greedy_answer(model, candidate, prompt.tokens, prompt.n_answer, logits,
                                          cand_answer, &bytes));
        const std::string ref_text = tok.decode(ref_answer, /*skip_special=*/false);
        const std::string cand_text = tok.decode(cand_answer, /*skip_special=*/false);
        ++cell.trials;
        cell.reference_retrieved += passkey_retrieved(ref_text, draw.key) ? 1 : 0;
        cell.candidate_retrieved += passkey_retrieved(cand_text, draw.key) ? 1 : 0;
        cell.agree += ref_answer == cand_answer ? 1 : 0;
        cell.sum_bytes_per_token += bytes;
        if (t == 0) result.first_answers.emplace_back(ref_text, cand_text);
      }
      result.cells.push_back(cell);
      if (progress) progress(static_cast<int32_t>(result.cells.size()), n_cells);
    }
  }
  return result;
}

}  // namespace kvforge
