// Pass-key retrieval ("needle in a haystack"): a random number hidden at a
// chosen depth of filler text, which the model is asked to repeat at the end
// (after Mohtashami and Jaggi 2023, "Landmark Attention", arXiv 2305.16300,
// whose prompt this follows in spirit; the wording here is our own).
//
// A prompt of exactly `length` tokens:
//
//   [BOS] instruction | filler ... | needle | filler ... | question
//                     '---- F filler tokens in all ----'
//
// with round(depth/100 × F) filler tokens before the needle: depth 0 puts the
// needle right after the instruction, depth 100 right before the question.
// The needle says the key twice; the question ends with "The pass key is",
// and the answer is the next n_answer tokens, generated greedily.
// The filler is a token stream read cyclically from an offset, so trials
// differ in their filler as well as in their key.
//
// Every trial runs twice: with the reference cache (f32, nothing pressed)
// and with the candidate cache. It counts as retrieved when the generated
// text, leading white space removed, begins with the key; the two runs
// agree when they generate the same answer tokens. Agreement measures what
// the candidate changes even on a model that cannot retrieve.
//
// The candidate sees the prompt through its hooks (begin_prompt, end_prompt:
// a press compresses the whole prompt, question included, the query-aware
// setting) and each answer token after the first as a decode step
// (end_decode_step).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv_cache.h"
#include "kvforge/status.h"

namespace kvforge {

class Model;
namespace tokenizer {
class Tokenizer;
}

// The fixed pieces of a prompt, in token ids, and the filler stream.
struct PasskeyPieces {
  std::span<const int32_t> head;      // [BOS] + the instruction
  std::span<const int32_t> needle;    // the sentence with the key
  std::span<const int32_t> question;  // ends with "The pass key is"
  std::span<const int32_t> filler;    // read cyclically
};

// Where the parts of an assembled prompt lie.
struct PasskeyLayout {
  int32_t needle_begin = 0;   // index of the needle's first token
  int32_t filler_tokens = 0;  // F
  int32_t filler_before = 0;  // filler tokens before the needle
};

// The prompt of exactly `length` tokens with the needle at `depth_percent`
// (in [0, 100]) of the filler, taken from `filler_offset` onwards.
// kInvalidArgument when the fixed pieces leave no room for filler, for an
// empty filler stream, or a depth outside [0, 100].
[[nodiscard]] Result<std::vector<int32_t>> assemble_passkey_prompt(const PasskeyPieces& pieces,
                                                                   int32_t length,
                                                                   double depth_percent,
                                                                   int64_t filler_offset,
                                                                   PasskeyLayout* layout = nullptr);

// The texts of the pieces (for tests and documentation). The needle and
// the question are tokenized as text that follows other text (with the
// space before them that a SentencePiece tokenizer adds by itself).
[[nodiscard]] std::string passkey_instruction();
[[nodiscard]] std::string passkey_needle(std::string_view key);
[[nodiscard]] std::string passkey_question();

// One tokenized prompt.
struct PasskeyPrompt {
  std::vector<int32_t> tokens;
  PasskeyLayout layout;
  int32_t needle_tokens = 0;  // length of the needle
  int32_t n_answer = 0;       // tokens the answer takes after the question
  std::string key;
};

// Tokenizes the pieces with `tok` (BOS first when it adds one) and
// assembles the prompt; n_answer is the number of tokens " KEY" adds after
// the question (at least 1). The filler is used as it is (token ids).
[[nodiscard]] Result<PasskeyPrompt> make_passkey_prompt(const tokenizer::Tokenizer& tok,
                                                        std::span<const int32_t> filler,
                                                        std::string_view key, int32_t length,
                                                        double depth_percent,
                                                        int64_t filler_offset);

// The key and filler offset of one trial: `digits` decimal digits (the
// first not 0) and an offset below filler_size, both functions of the seed
// and the trial's coordinates only (the same on every machine).
struct PasskeyDraw {
  std::string key;
  int64_t filler_offset = 0;
};
[[nodiscard]] PasskeyDraw draw_passkey(uint64_t seed, int32_t length, double depth_percent,
                                       int32_t trial, int32_t digits, int64_t filler_size);

// True when `generated`, leading white space removed, begins with `key`.
[[nodiscard]] bool passkey_retrieved(std::string_view generated, std::string_view key);

struct PasskeyOptions {
  std::vector<int32_t> lengths;  // prompt lengths in tokens
  std::vector<double> depths;    // percent of the filler
  int32_t trials = 10;           // per (length, depth)
  int32_t key_digits = 5;
  uint64_t seed = 1;
};

struct PasskeyCell {
  int32_t length = 0;
  double depth = 0;
  int32_t trials = 0;
  int32_t reference_retrieved = 0;
  int32_t candidate_retrieved = 0;
  int32_t agree = 0;               // same answer tokens as the reference
  double sum_bytes_per_token = 0;  // candidate, after the prompt (and its press)

  [[nodiscard]] double reference_accuracy() const;
  [[nodiscard]] double candidate_accuracy() const;
  [[nodiscard]] double agreement() const;
  [[nodiscard]] double bytes_per_token() const;
};

struct PasskeyResult {
  // Length-major: cells[l * depths.size() + d].
  std::vector<PasskeyCell> cells;
  // The first trial's answers of every cell, for the record:
  // (reference text, candidate text), same order as cells.
  std::vector<std::pair<std::string, std::string>> first_answers;
};

// progress(cells_done, n_cells) after every cell.
using PasskeyProgress = std::function<void(int32_t, int32_t)>;

// Runs every (length, depth, trial). Both caches must hold the longest
// prompt plus its answer for SeqId{0}; they are emptied after each trial.
// kInvalidArgument for empty lengths or depths, trials < 1, digits outside
// [1, 18], or a length too short for the fixed pieces.
[[nodiscard]] Result<PasskeyResult> run_passkey(Model& model, const tokenizer::Tokenizer& tok,
                                                KvCache& reference, KvCache& candidate,
                                                std::span<const int32_t> filler,
                                                const PasskeyOptions& options,
                                                const PasskeyProgress& progress = {});

}  // namespace kvforge
