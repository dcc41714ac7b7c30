#include "model/architecture.h"

namespace kvforge {
namespace {

std::vector<Architecture>& registry() {
  static std::vector<Architecture> archs;
  return archs;
}

}  // namespace

ArchitectureRegistrar::ArchitectureRegistrar(Architecture arch) {
  registry().push_back(arch);
}

// Registration happens in the arch_*.cpp files. Static libraries drop object
// files nothing refers to, so each registers through a function called here.
void register_llama();
void register_qwen2();
void register_qwen3();

const std::vector<Architecture>& architectures() {
  static const bool registered = [] {
    register_llama();
    register_qwen2();
    register_qwen3();
    return true;
  }();
  (void)registered;
  return registry();
}

const Architecture* find_architecture(std::string_view name) {
  for (const Architecture& a : architectures()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace kvforge
