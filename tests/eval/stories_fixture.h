// stories260K and its tokenizer, loaded once per process for the
// evaluation tests' fixtures, and the start of the TinyStories sample as
// tokens (no BOS).
#pragma once

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kvforge/status.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kvforge::eval_test {

inline Model& stories_model() {
  static std::unique_ptr<Model> model = [] {
    ModelOptions o;
    o.n_threads = 1;
    auto m = Model::load(std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf", o);
    KVF_CHECK(m.ok());
    return std::move(m).value();
  }();
  return *model;
}

inline const tokenizer::Tokenizer& stories_tokenizer() {
  static std::unique_ptr<tokenizer::Tokenizer> tok = [] {
    auto t = tokenizer::Tokenizer::from_gguf(stories_model().file());
    KVF_CHECK(t.ok());
    return std::move(t).value();
  }();
  return *tok;
}

// The first `chars` characters of tinystories_val.txt, tokenized.
inline std::vector<int32_t> stories_text_tokens(size_t chars) {
  std::ifstream in(std::string(KVFORGE_SHARED_DIR) +
                   "/text/tinystories-valid-sample/tinystories_val.txt");
  KVF_CHECK(in.good());
  std::string text(chars, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return stories_tokenizer().encode(text, false, false);
}

}  // namespace kvforge::eval_test
