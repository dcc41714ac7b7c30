// AMX tile loop shared by the integer kernels on AVX3_DL (amx.h), included
// inside their HWY_NAMESPACE where the target enables amx-tile and
// amx-int8. No include guard: each Highway target compiles it once.
//
// A call multiplies, block by block, a tile of up to 16 tokens' activation
// codes (one row of K bytes per token) by a tile of one block's codes of
// 16 weight rows (K / 4 rows of 64 bytes: row k holds columns 4k..4k+3 of
// the 16 rows, 4 bytes per weight row), giving 16 x 16 exact int32 sums,
// which the caller's `scale` turns into the canonical f32 step of that
// block (matmul_internal.h). The tiles:
//   0-3  the sums of four blocks in flight
//   4-5  two sets of activations, 6-7 two sets of codes (block i of four
//        uses set i % 2).
// Block i + 4 starts in block i's tiles as soon as block i's sums are
// stored, so the matrix unit's latency (tens of cycles) is covered by the
// scaling of the three blocks in between.

// Macros, not constants: GCC's tile intrinsics paste the register number
// into their assembly text.
#define KVF_TILE_SUMS0 0
#define KVF_TILE_SUMS1 1
#define KVF_TILE_SUMS2 2
#define KVF_TILE_SUMS3 3
#define KVF_TILE_ACTS0 4
#define KVF_TILE_ACTS1 5
#define KVF_TILE_CODES0 6
#define KVF_TILE_CODES1 7

// Rows of an activation tile.
constexpr int kAmxTileTokens = 16;

// The LDTILECFG operand (palette 1): bytes per row and rows of each tile.
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t row_bytes[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(AmxTileConfig) == 64);

// Tiles for n_tokens tokens and blocks of block_cols columns (16 or 32).
HWY_INLINE void amx_configure_tiles(int n_tokens, int block_cols) {
  AmxTileConfig config;
  for (const int t : {KVF_TILE_SUMS0, KVF_TILE_SUMS1, KVF_TILE_SUMS2, KVF_TILE_SUMS3}) {
    config.rows[t] = static_cast<uint8_t>(n_tokens);
    config.row_bytes[t] = 64;
  }
  for (const int t : {KVF_TILE_ACTS0, KVF_TILE_ACTS1}) {
    config.rows[t] = static_cast<uint8_t>(n_tokens);
    config.row_bytes[t] = static_cast<uint16_t>(block_cols);
  }
  for (const int t : {KVF_TILE_CODES0, KVF_TILE_CODES1}) {
    config.rows[t] = static_cast<uint8_t>(block_cols / 4);
    config.row_bytes[t] = 64;
  }
  _tile_loadconfig(&config);
}

// Lines requested into L2 while a panel is multiplied: those of the panels
// that follow it in memory, which the next tasks unpack from cold weights
// (whichever thread takes them). The blocks' `scale` steps it once
// per block, kLinesPerBlock lines at a time so that the requests never fill
// the line-fill buffers at once. At 64 tokens the unpacking of Q4_0 strips
// fell from a quarter of the server's time to a tenth (docs/kernels.md).
struct AmxLinesAhead {
  const uint8_t* at;
  const uint8_t* end;

  // [first, first + bytes), cut at `limit` (the matrix's end).
  static AmxLinesAhead span(const uint8_t* first, size_t bytes, const uint8_t* limit) {
    return {first, first + std::min<size_t>(bytes, static_cast<size_t>(limit - first))};
  }
  HWY_INLINE void step() {
    constexpr int kLinesPerBlock = 2;
    if (at >= end) return;
#pragma GCC unroll 2
    for (int i = 0; i < kLinesPerBlock; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(at + 64 * i), _MM_HINT_T1);
    }
    at += 64 * kLinesPerBlock;
  }
};

// f(t0, n) for each tile of n <= 16 tokens from t0 of [token_begin,
// token_end), with the tiles configured for n tokens and blocks of
// block_cols columns; the tiles are released at the end (their state is
// then not saved on context switches).
template <class F>
HWY_INLINE void amx_for_token_tiles(int64_t token_begin, int64_t token_end, int block_cols,
                                    const F& f) {
  int configured = 0;
  for (int64_t t0 = token_begin; t0 < token_end; t0 += kAmxTileTokens) {
    const int n = static_cast<int>(std::min<int64_t>(kAmxTileTokens, token_end - t0));
    if (n != configured) {
      amx_configure_tiles(n, block_cols);
      configured = n;
    }
    f(t0, n);
  }
  _tile_release();
}

// Starts block b's products into sums tile `sums` from tile set `set`.
#define KVF_AMX_ISSUE(sums, set, b)                                               \
  do {                                                                            \
    _tile_loadd(KVF_TILE_ACTS##set, blocks.acts(b), blocks.act_stride);           \
    _tile_loadd(KVF_TILE_CODES##set, blocks.codes(b), blocks.code_stride);        \
    _tile_zero(KVF_TILE_SUMS##sums);                                              \
    if constexpr (kSignedActs) {                                                  \
      _tile_dpbssd(KVF_TILE_SUMS##sums, KVF_TILE_ACTS##set, KVF_TILE_CODES##set); \
    } else {                                                                      \
      _tile_dpbusd(KVF_TILE_SUMS##sums, KVF_TILE_ACTS##set, KVF_TILE_CODES##set); \
    }                                                                             \
  } while (false)

// Block b + i of a group of four: stored, scaled, and block b + i + 4
// started in its tiles.
#define KVF_AMX_FINISH(i, set, b)                                         \
  do {                                                                    \
    if ((b) + (i) < n_blocks) {                                           \
      _tile_stored(KVF_TILE_SUMS##i, sums[i], 64);                        \
      blocks.scale(sums[i], (b) + (i), out);                              \
      if ((b) + (i) + 4 < n_blocks) KVF_AMX_ISSUE(i, set, (b) + (i) + 4); \
    }                                                                     \
  } while (false)

// Blocks [0, n_blocks) of `blocks`, which provides acts(b) and act_stride
// (the first token's codes of block b; tokens act_stride bytes apart),
// codes(b) and code_stride (block b's code rows), and scale(sums, b, out)
// (out[t] += what sums[16 t .. 16 t + 16) of block b amount to). Signed
// activations use TDPBSSD, unsigned ones TDPBUSD; the codes are signed.
// The tiles must be configured for the call's tokens and block width.
template <bool kSignedActs, class Blocks>
HWY_INLINE void amx_blocks(const Blocks& blocks, int64_t n_blocks, __m512* out) {
  alignas(64) int32_t sums[4][kAmxTileTokens * 16];
  if (n_blocks > 0) KVF_AMX_ISSUE(0, 0, 0);
  if (n_blocks > 1) KVF_AMX_ISSUE(1, 1, 1);
  if (n_blocks > 2) KVF_AMX_ISSUE(2, 0, 2);
  if (n_blocks > 3) KVF_AMX_ISSUE(3, 1, 3);
  for (int64_t b = 0; b < n_blocks; b += 4) {
    KVF_AMX_FINISH(0, 0, b);
    KVF_AMX_FINISH(1, 1, b);
    KVF_AMX_FINISH(2, 0, b);
    KVF_AMX_FINISH(3, 1, b);
  }
}

#undef KVF_AMX_FINISH
#undef KVF_AMX_ISSUE
#undef KVF_TILE_SUMS0
#undef KVF_TILE_SUMS1
#undef KVF_TILE_SUMS2
#undef KVF_TILE_SUMS3
#undef KVF_TILE_ACTS0
#undef KVF_TILE_ACTS1
#undef KVF_TILE_CODES0
#undef KVF_TILE_CODES1
