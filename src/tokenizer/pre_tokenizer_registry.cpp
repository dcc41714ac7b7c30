#include "tokenizer/pre_tokenizer_registry.h"

#include <array>

#include <fmt/format.h>

namespace kvforge::tokenizer {
namespace {

// GPT-2 (OpenAI encoder.py; the ByteLevel pre-tokenizer of Hugging Face
// tokenizers). Also used by MPT, OLMo and GPT-NeoX vocabularies.
constexpr std::string_view kGpt2Word =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::array<std::string_view, 1> kGpt2 = {kGpt2Word};

// StarCoder and Refact: every digit is its own word, then GPT-2.
constexpr std::array<std::string_view, 2> kStarCoder = {R"(\p{N})", kGpt2Word};

// Llama 3 (Meta's tokenizer.json / tiktoken cl100k-style pattern).
constexpr std::array<std::string_view, 1> kLlama3 = {
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};

// Qwen2: as Llama 3 but single digits.
constexpr std::array<std::string_view, 1> kQwen2 = {
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};

// Falcon: runs of punctuation first, then GPT-2, then groups of three
// digits, as llama.cpp approximates Falcon's Punctuation + ByteLevel + Digits
// pre-tokenizer sequence.
constexpr std::array<std::string_view, 3> kFalcon = {
    R"([\p{P}\$\+<=>\^~\|`]+)",
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
    R"([0-9][0-9][0-9])"};

// DeepSeek LLM (deepseek-llm-7b-base tokenizer.json, Split pre-tokenizers).
// The long class lists the cased letters of several scripts.
constexpr std::array<std::string_view, 6> kDeepSeekLlm = {
    R"([\r\n])",
    R"(\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+)",
    R"(\s?[!-/:-~！-／：-～‘-‟　-。]+)",
    R"(\s+$)",
    R"([一-龥ࠀ-一가-퟿]+)",
    R"(\p{N}+)"};

// DeepSeek Coder (deepseek-coder tokenizer.json, Split pre-tokenizers).
constexpr std::array<std::string_view, 5> kDeepSeekCoder = {
    R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", R"([一-龥ࠀ-一가-퟿]+)", R"(\p{N})"};

const std::array<PreTokenizerSpec, 14> kPreTokenizers = {{
    {"default", kGpt2},
    {"gpt-2", kGpt2},
    {"mpt", kGpt2},
    {"olmo", kGpt2},
    {"starcoder", kStarCoder},
    {"refact", kStarCoder},
    {"llama-bpe", kLlama3, true},
    {"llama3", kLlama3, true},
    {"smaug-bpe", kLlama3, true},
    {"dbrx", kLlama3, true},
    {"qwen2", kQwen2},
    {"falcon", kFalcon},
    {"deepseek-llm", kDeepSeekLlm},
    {"deepseek-coder", kDeepSeekCoder},
}};

}  // namespace

Result<PreTokenizerSpec> find_pre_tokenizer(std::string_view name) {
  if (name.empty()) name = "default";
  for (const PreTokenizerSpec& spec : kPreTokenizers) {
    if (spec.name == name) return spec;
  }
  return unsupported(fmt::format("unsupported pre-tokenizer '{}' (tokenizer.ggml.pre); known: {}",
                                 name, fmt::join(pre_tokenizer_names(), ", ")));
}

std::vector<std::string_view> pre_tokenizer_names() {
  std::vector<std::string_view> names;
  for (const PreTokenizerSpec& spec : kPreTokenizers) names.push_back(spec.name);
  return names;
}

}  // namespace kvforge::tokenizer
