// Paths of the models the model tests run on.
#pragma once

#include <string>

namespace kvforge::testing {

// The bundled default model (converted from llama2.c's stories260K).
inline std::string stories260k_gguf() {
  return std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf";
}

// A small trained model with 64-dimensional heads (../shared/models/kvtest-1k).
inline std::string kvtest_1k_gguf() {
  return std::string(KVFORGE_SHARED_DIR) + "/models/kvtest-1k/kvtest-1k.gguf";
}

inline std::string stories260k_reference_json() {
  return std::string(KVFORGE_SHARED_DIR) + "/models/stories260K/reference_outputs.json";
}

}  // namespace kvforge::testing
