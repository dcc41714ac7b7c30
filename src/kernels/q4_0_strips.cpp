#include "kernels/q4_0_strips.h"

#include <atomic>
#include <cstring>

#include "kvforge/status.h"
#include "util/fp16.h"

namespace kvforge::kernels {
namespace {

constexpr size_t kQ4_0BlockBytes = 18;  // f16 scale + 16 code bytes

uint32_t word_at(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

// The 4 bytes of one row in unit p (columns 8p..8p+7) of a Q4_0 block, 4
// at a time: the block's low nibbles hold columns 0..15 (units 0 and 1),
// its high nibbles columns 16..31 (units 2 and 3).
uint32_t unit_word(const uint8_t* block, int p) {
  const uint8_t* qs = block + 2 + 8 * (p % 2);
  const uint32_t first = word_at(qs), second = word_at(qs + 4);  // columns +0..3, +4..7
  constexpr uint32_t kLow = 0x0f0f0f0f;
  return p < 2 ? (first & kLow) | (second & kLow) << 4 : (first >> 4 & kLow) | (second & ~kLow);
}

}  // namespace

size_t q4_0_strip_bytes(int64_t n_cols) {
  const int64_t n_blocks = n_cols / 32;
  return static_cast<size_t>((n_blocks + 1) / 2) * kStripPairBytes;
}

size_t q4_0_strips_bytes(int64_t n_rows, int64_t n_cols) {
  return static_cast<size_t>((n_rows + kStripRows - 1) / kStripRows) * q4_0_strip_bytes(n_cols);
}

void repack_q4_0_strips(const MatrixView& w, int64_t strip_begin, int64_t strip_end,
                        uint8_t* strips) {
  KVF_CHECK(w.type == TensorType::kQ4_0 && w.n_cols % 32 == 0);
  const int64_t n_blocks = w.n_cols / 32;
  const size_t strip_bytes = q4_0_strip_bytes(w.n_cols);
  const auto* data = static_cast<const uint8_t*>(w.data);
  for (int64_t s = strip_begin; s < strip_end; ++s) {
    uint8_t* strip = strips + static_cast<size_t>(s) * strip_bytes;
    std::memset(strip, 0, strip_bytes);
    for (int64_t i = 0; i < kStripRows; ++i) {
      const int64_t row = s * kStripRows + i;
      if (row >= w.n_rows) break;
      const uint8_t* src = data + static_cast<size_t>(row) * w.row_bytes;
      for (int64_t b = 0; b < n_blocks; ++b) {
        const uint8_t* block = src + static_cast<size_t>(b) * kQ4_0BlockBytes;
        uint8_t* pair = strip + static_cast<size_t>(b / 2) * kStripPairBytes;
        const size_t odd = static_cast<size_t>(b & 1);
        std::memcpy(pair + 32 * odd + 2 * i, block, 2);
        uint8_t* codes = pair + 64 + 256 * odd;
        for (int p = 0; p < 4; ++p) {
          const uint32_t word = unit_word(block, p);
          std::memcpy(codes + 64 * p + 4 * i, &word, sizeof word);
        }
      }
    }
  }
}

void dequantize_q4_0_strip_row(const MatrixView& w, int64_t row, float* out) {
  KVF_CHECK(w.strips != nullptr && row >= 0 && row < w.n_rows);
  const uint8_t* strip =
      w.strips + static_cast<size_t>(row / kStripRows) * q4_0_strip_bytes(w.n_cols);
  const auto i = static_cast<size_t>(row % kStripRows);
  for (int64_t b = 0; b < w.n_cols / 32; ++b, out += 32) {
    const uint8_t* pair = strip + static_cast<size_t>(b / 2) * kStripPairBytes;
    const auto odd = static_cast<size_t>(b & 1);
    uint16_t half;
    std::memcpy(&half, pair + 32 * odd + 2 * i, sizeof half);
    const float d = fp16_to_fp32(half);
    const uint8_t* codes = pair + 64 + 256 * odd + 4 * i;
    for (int p = 0; p < 4; ++p) {
      for (int j = 0; j < 4; ++j) {
        const uint8_t byte = codes[64 * p + j];
        out[8 * p + j] = d * static_cast<float>((byte & 0x0f) - 8);
        out[8 * p + 4 + j] = d * static_cast<float>((byte >> 4) - 8);
      }
    }
  }
}

namespace {
std::atomic<bool> g_strip_gfni_allowed{true};
}  // namespace

void allow_strip_gfni(bool allowed) {
  g_strip_gfni_allowed.store(allowed, std::memory_order_relaxed);
}

bool strip_gfni_allowed() {
  return g_strip_gfni_allowed.load(std::memory_order_relaxed);
}

}  // namespace kvforge::kernels
