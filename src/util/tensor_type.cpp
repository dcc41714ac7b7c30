#include "util/tensor_type.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "kvforge/status.h"

namespace kvforge {
namespace {

struct Entry {
  uint32_t id;
  TensorTypeTraits traits;
};

// Block geometry from the GGUF specification's type table.
constexpr std::array kTypes = {
    Entry{0, {"f32", 1, 4, true}},          Entry{1, {"f16", 1, 2, true}},
    Entry{2, {"q4_0", 32, 18, true}},       Entry{3, {"q4_1", 32, 20, true}},
    Entry{6, {"q5_0", 32, 22, false}},      Entry{7, {"q5_1", 32, 24, false}},
    Entry{8, {"q8_0", 32, 34, true}},       Entry{9, {"q8_1", 32, 36, false}},
    Entry{10, {"q2_K", 256, 84, false}},    Entry{11, {"q3_K", 256, 110, false}},
    Entry{12, {"q4_K", 256, 144, true}},    Entry{13, {"q5_K", 256, 176, true}},
    Entry{14, {"q6_K", 256, 210, true}},    Entry{15, {"q8_K", 256, 292, false}},
    Entry{16, {"iq2_xxs", 256, 66, false}}, Entry{17, {"iq2_xs", 256, 74, false}},
    Entry{18, {"iq3_xxs", 256, 98, false}}, Entry{19, {"iq1_s", 256, 50, false}},
    Entry{20, {"iq4_nl", 32, 18, false}},   Entry{21, {"iq3_s", 256, 110, false}},
    Entry{22, {"iq2_s", 256, 82, false}},   Entry{23, {"iq4_xs", 256, 136, false}},
    Entry{24, {"i8", 1, 1, false}},         Entry{25, {"i16", 1, 2, false}},
    Entry{26, {"i32", 1, 4, false}},        Entry{27, {"i64", 1, 8, false}},
    Entry{28, {"f64", 1, 8, false}},        Entry{29, {"iq1_m", 256, 56, false}},
    Entry{30, {"bf16", 1, 2, true}},
};

}  // namespace

std::optional<TensorTypeTraits> tensor_type_traits(uint32_t type_id) {
  for (const Entry& e : kTypes) {
    if (e.id == type_id) return e.traits;
  }
  return std::nullopt;
}

std::string_view tensor_type_name(TensorType type) {
  auto t = tensor_type_traits(static_cast<uint32_t>(type));
  return t ? t->name : std::string_view("unknown");
}

std::optional<TensorType> parse_tensor_type(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const Entry& e : kTypes) {
    std::string n(e.traits.name);
    std::transform(n.begin(), n.end(), n.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (n == lower && e.traits.supported) return static_cast<TensorType>(e.id);
  }
  return std::nullopt;
}

size_t tensor_row_bytes(TensorType type, uint64_t n_elems) {
  auto t = tensor_type_traits(static_cast<uint32_t>(type));
  KVF_CHECK(t.has_value());
  KVF_CHECK(n_elems % t->block_elems == 0);
  return static_cast<size_t>(n_elems / t->block_elems) * t->block_bytes;
}

}  // namespace kvforge
