// kvforge info: what a GGUF file holds — metadata, tensors, types, sizes,
// and for models the hyperparameters and KV bytes per token.
#include <cstdio>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "command.h"
#include "common.h"
#include "gguf/gguf.h"
#include "model/model_config.h"

namespace kvforge::cli {
namespace {

std::string describe_value(const gguf::Value& v, size_t max_items) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          std::string s = x.size() > 80 ? x.substr(0, 77) + "..." : x;
          return fmt::format("\"{}\"", s);
        } else if constexpr (std::is_same_v<T, gguf::Array>) {
          std::string s =
              fmt::format("[{} x {}]", x.items.size(), gguf::value_type_name(x.elem_type));
          if (max_items > 0 && !x.items.empty()) {
            s += " ";
            for (size_t i = 0; i < x.items.size() && i < max_items; ++i) {
              s += (i ? ", " : "") + describe_value(x.items[i], 0);
            }
            if (x.items.size() > max_items) s += ", ...";
          }
          return s;
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else {
          return fmt::format("{}", x);
        }
      },
      v.data);
}

std::string describe_id(std::optional<tokenizer::TokenId> id) {
  return id ? std::to_string(*id) : "none";
}

// The tokenizer as the engine reads it, with what it ignored in the file.
void print_tokenizer(const gguf::GgufFile& f) {
  auto tok = Tokenizer::from_gguf(f);
  if (!tok.ok()) {
    std::printf("\ntokenizer not usable: %s\n", tok.status().to_string().c_str());
    return;
  }
  const Tokenizer& t = **tok;
  const tokenizer::Vocabulary& v = t.vocabulary();
  std::printf("\ntokenizer: %s (pre-tokenizer %s), %d tokens, BOS %s, EOS %s, unknown %s%s\n",
              v.model.c_str(), v.pre.empty() ? "default" : v.pre.c_str(), t.n_vocab(),
              describe_id(t.bos_id()).c_str(), describe_id(t.eos_id()).c_str(),
              describe_id(t.unknown_id()).c_str(), t.add_bos() ? ", BOS added" : "");
  for (const std::string& note : v.notes) std::printf("  note: %s\n", note.c_str());
}

int info(const std::string& path, bool all_tensors) {
  auto file = gguf::GgufFile::open(path);
  if (!file.ok()) return fail(file.status().to_string());
  const gguf::GgufFile& f = **file;
  std::printf("file: %s\nGGUF version %u, alignment %llu, %zu metadata keys, %zu tensors, %s\n\n",
              path.c_str(), f.version(), static_cast<unsigned long long>(f.alignment()),
              f.metadata().size(), f.tensors().size(),
              format_bytes(double(f.file_bytes())).c_str());
  std::printf("metadata:\n");
  for (const auto& [key, value] : f.metadata()) {
    std::printf("  %-44s %s\n", key.c_str(), describe_value(value, 4).c_str());
  }
  if (!f.tensors().empty()) {
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // count, bytes
    uint64_t total_bytes = 0, total_elems = 0;
    std::printf("\ntensors:\n");
    size_t shown = 0;
    for (const gguf::TensorInfo& t : f.tensors()) {
      auto& e = by_type[std::string(tensor_type_name(t.type))];
      ++e.first;
      e.second += t.n_bytes;
      total_bytes += t.n_bytes;
      total_elems += t.n_elements();
      if (all_tensors || shown < 24) {
        std::printf("  %-36s %-6s %-22s %s\n", t.name.c_str(),
                    std::string(tensor_type_name(t.type)).c_str(),
                    fmt::format("{}", t.dims).c_str(), format_bytes(double(t.n_bytes)).c_str());
        ++shown;
      }
    }
    if (shown < f.tensors().size()) {
      std::printf("  ... %zu more (use --all-tensors)\n", f.tensors().size() - shown);
    }
    std::printf("\nby type:\n");
    for (const auto& [name, e] : by_type) {
      std::printf("  %-6s %5llu tensors  %s\n", name.c_str(),
                  static_cast<unsigned long long>(e.first), format_bytes(double(e.second)).c_str());
    }
    std::printf("  total  %.3f M parameters, %s, %.2f bits/weight\n", total_elems / 1e6,
                format_bytes(double(total_bytes)).c_str(),
                total_elems ? 8.0 * double(total_bytes) / double(total_elems) : 0.0);
  }
  auto config = read_model_config(f);
  if (config.ok()) {
    const ModelConfig& c = *config;
    std::printf(
        "\nmodel: %s (architecture %s)\n  vocab %d, width %d, layers %d, heads %d, KV heads %d, "
        "head size %d, FFN %d, trained context %d, RoPE base %g over %d dims\n",
        c.name.c_str(), std::string(c.arch->name).c_str(), c.n_vocab, c.n_embd, c.n_layers,
        c.n_heads, c.n_kv_heads, c.head_dim, c.n_ff, c.n_ctx_train, double(c.rope_freq_base),
        c.rope_dim);
    const double per_token_f16 = 2.0 * c.n_layers * c.kv_dim() * 2;
    std::printf("  KV cache per token: %s (f16), %s (f32); at the trained context: %s (f16)\n",
                format_bytes(per_token_f16).c_str(), format_bytes(2 * per_token_f16).c_str(),
                format_bytes(per_token_f16 * c.n_ctx_train).c_str());
  } else if (f.find("general.architecture") != nullptr) {
    std::printf("\nnot loadable as a model: %s\n", config.status().to_string().c_str());
  }
  if (f.find("tokenizer.ggml.model") != nullptr) print_tokenizer(f);
  return 0;
}

KVFORGE_REGISTER_COMMAND(info_command, "info",
                         "Show a GGUF file's metadata, tensors, sizes and KV bytes per token",
                         [](CLI::App& app) -> std::function<int()> {
                           auto path = std::make_shared<std::string>();
                           auto all = std::make_shared<bool>(false);
                           app.add_option("model", *path, "GGUF file")->required();
                           app.add_flag("--all-tensors", *all, "List every tensor");
                           return [path, all] { return info(*path, *all); };
                         });

}  // namespace
}  // namespace kvforge::cli
