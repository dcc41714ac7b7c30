#include "tokenizer/pre_tokenizer_registry.h"

#include <array>

#include <fmt/format.h>

namespace kvforge::tokenizer {
namespace {

// GPT-2 (OpenAI encoder.py; the ByteLevel pre-tokenizer of Hugging Face
// tokenizers). Also used by MPT, OLMo and GPT-NeoX vocabularies converted
// with a pre-tokenizer name (llama.cpp's converter names GPT-NeoX's "mpt").
constexpr std::string_view kGpt2Word =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::array<std::string_view, 1> kGpt2 = {kGpt2Word};

// No tokenizer.ggml.pre (older conversions, e.g. llama.cpp's
// ggml-vocab-gpt-neox.gguf) or "default": the list llama.cpp falls back to
// (llama-vocab.cpp, llm_tokenizer_bpe, the default case): runs of
// punctuation and the ASCII symbols $ + < = > ^ ~ | apart, then GPT-2 words,
// then runs of digits, then groups of three ASCII digits. So "Order
// #1234567 costs $89.99" becomes "Order" " " "#" "123" "456" "7" " costs" " "
// "$" "89" "." "99", where the GPT-2 expression alone gives "Order" " #"
// "1234567" " costs" " $" "89" "." "99". We follow llama.cpp so that ids
// agree with it on the same file.
constexpr std::array<std::string_view, 4> kDefault = {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Word,
                                                      R"(\p{N}+)", R"([0-9][0-9][0-9])"};

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
// The long class lists the cased letters of several scripts. Classes are
// written with \x{..} escapes because some of these code points (U+1F7D,
// U+1FD3, U+2126, U+212A, ...) are silently replaced by their canonical
// equivalents when source text is Unicode-normalized, which breaks ranges.
constexpr std::array<std::string_view, 6> kDeepSeekLlm = {
    R"([\r\n])",
    R"(\s?[)"
    R"(A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF})"
    R"(\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D})"
    R"(\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5})"
    R"(\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B})"
    R"(\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D})"
    R"(\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D})"
    R"(\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
    R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC})"
    R"(\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115})"
    R"(\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184})"
    R"(\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3})"
    R"(\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})"
    R"(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3})"
    R"(\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF})"
    R"(\x{1E900}-\x{1E943})"
    R"(]+)",
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",
    R"(\s+$)",
    R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)",
    R"(\p{N}+)"};

// DeepSeek Coder (deepseek-coder tokenizer.json, Split pre-tokenizers).
constexpr std::array<std::string_view, 5> kDeepSeekCoder = {
    R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)",
    R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)", R"(\p{N})"};

const std::array<PreTokenizerSpec, 14> kPreTokenizers = {{
    {"default", kDefault},
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
