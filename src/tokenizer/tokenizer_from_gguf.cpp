// Tokenizer::from_gguf, apart from tokenizer.cpp so that code building
// tokenizers from a Vocabulary does not link the GGUF reader.
#include "tokenizer/tokenizer.h"

namespace kvforge::tokenizer {

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const gguf::GgufFile& file) {
  KVF_ASSIGN_OR_RETURN(Vocabulary vocabulary, load_vocabulary(file));
  return from_vocabulary(std::move(vocabulary));
}

}  // namespace kvforge::tokenizer
