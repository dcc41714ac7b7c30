#include "kernels/matmul.h"

#include <algorithm>
#include <array>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "kernels/matmul_internal.h"
#include "kernels/q4_0_strips.h"
#include "kernels/weight_format.h"
#include "kvforge/status.h"
#include "util/thread_pool.h"

namespace kvforge::kernels {

struct MatmulScratch::Impl {
  int n_threads = 0;
  int64_t max_tokens = 0;
  int64_t max_cols = 0;
  // One ThreadScratch region (kThreadScratchFloats + max_tokens *
  // kMaxPanelRows floats) per thread, 64-byte aligned.
  hwy::AlignedFreeUniquePtr<float[]> buffer;
  // One int8_scratch_layout(max_cols) region per thread, 64-byte aligned.
  hwy::AlignedFreeUniquePtr<uint8_t[]> int8_buffer;
  // Activations rounded to int8 (QuantizedActivations), shared by all
  // threads: up to max_tokens rows of max_cols.
  hwy::AlignedFreeUniquePtr<int8_t[]> act_q;
  hwy::AlignedFreeUniquePtr<float[]> act_d, act_sum;
  // Sums of every 16 codes and Q4_0's zero-point terms
  // (QuantizedActivations::qsum16, q4_0_term) for up to max_tokens rows
  // (decode, and Q4_0 strips at any token count).
  hwy::AlignedFreeUniquePtr<int32_t[]> act_qsum16, act_q4_0_term;
  // Activations in the f32 prefill kernel's tile order
  // (packed_activation_floats), shared by all threads. Its pages are touched
  // only by calls that take that path.
  hwy::AlignedFreeUniquePtr<float[]> act_tiles;

  size_t thread_floats() const {
    return kThreadScratchFloats + static_cast<size_t>(max_tokens * kMaxPanelRows);
  }
  size_t int8_bytes() const { return (int8_scratch_layout(max_cols).bytes + 63) / 64 * 64; }
  ThreadScratch for_thread(int thread) {
    float* base = buffer.get() + static_cast<size_t>(thread) * thread_floats();
    return {base, base + kMaxPanelRows * kColumnChunk, base + 2 * kMaxPanelRows * kColumnChunk,
            base + kThreadScratchFloats,
            int8_buffer.get() + static_cast<size_t>(thread) * int8_bytes()};
  }
};

MatmulScratch::MatmulScratch(int n_threads, int64_t max_tokens, int64_t max_cols)
    : impl_(std::make_unique<Impl>()) {
  KVF_CHECK(n_threads >= 1 && max_tokens >= 1 && max_cols >= 1);
  impl_->n_threads = n_threads;
  impl_->max_tokens = max_tokens;
  impl_->max_cols = max_cols;
  impl_->buffer =
      hwy::AllocateAligned<float>(static_cast<size_t>(n_threads) * impl_->thread_floats());
  KVF_CHECK(impl_->buffer != nullptr);
  impl_->int8_buffer =
      hwy::AllocateAligned<uint8_t>(static_cast<size_t>(n_threads) * impl_->int8_bytes());
  KVF_CHECK(impl_->int8_buffer != nullptr);
  const auto act_rows = static_cast<size_t>(max_tokens);
  const auto act_blocks = static_cast<size_t>((max_cols + kActivationBlock - 1) / kActivationBlock);
  impl_->act_q = hwy::AllocateAligned<int8_t>(act_rows * act_blocks * kActivationBlock);
  impl_->act_d = hwy::AllocateAligned<float>(act_rows * act_blocks);
  impl_->act_sum = hwy::AllocateAligned<float>(act_rows * act_blocks);
  KVF_CHECK(impl_->act_q != nullptr && impl_->act_d != nullptr && impl_->act_sum != nullptr);
  impl_->act_qsum16 = hwy::AllocateAligned<int32_t>(act_rows * act_blocks * 2);
  impl_->act_q4_0_term = hwy::AllocateAligned<int32_t>(act_rows * act_blocks);
  KVF_CHECK(impl_->act_qsum16 != nullptr && impl_->act_q4_0_term != nullptr);
  impl_->act_tiles = hwy::AllocateAligned<float>(packed_activation_floats(max_tokens, max_cols));
  KVF_CHECK(impl_->act_tiles != nullptr);
}

MatmulScratch::~MatmulScratch() = default;

namespace {

const WeightFormat& checked_format(const MatrixView& w) {
  const WeightFormat* format = find_weight_format(w.type);
  KVF_CHECK(format != nullptr);
  KVF_CHECK(w.n_cols % format->block_elems == 0);
  KVF_CHECK(w.row_bytes ==
            static_cast<size_t>(w.n_cols / format->block_elems) * format->block_bytes);
  return *format;
}

}  // namespace

// Decode tasks are contiguous row ranges, so each thread streams its part of
// the weights front to back. A few tasks per thread let a thread whose core
// is busy with other work fall behind without stalling the call, but a task
// never covers fewer than kMinDecodeTaskBytes of weights: waking a worker
// costs more than multiplying a small matrix on the calling thread.
constexpr int64_t kDecodeTasksPerThread = 4;
constexpr int64_t kMinDecodeTaskBytes = int64_t{64} << 10;

// Prefill tasks are panels of rows, each over all tokens, or over a share of
// them when the panels do not divide evenly enough among the threads (k and
// v projections: 512 rows are 11 panels; with 2 threads one would run 6 and
// the other 5, 9% more than an even share). Splitting tokens repeats the
// panel's unpacking (about a tenth of its products' time), so it is done
// only where the last round of tasks would leave a thread idle for more
// than kMaxIdleShare of the call, and each share keeps at least
// kMinSplitTokens tokens.
constexpr double kMaxIdleShare = 0.04;
constexpr int64_t kMinSplitTokens = 32;

int64_t prefill_token_splits(int64_t n_panels, int64_t n_tokens, int n_threads) {
  const int64_t max_splits = std::max<int64_t>(1, n_tokens / kMinSplitTokens);
  for (int64_t splits = 1;; ++splits) {
    const int64_t n_tasks = n_panels * splits;
    const int64_t rounds = (n_tasks + n_threads - 1) / n_threads;
    const double idle = double(rounds * n_threads - n_tasks) / double(rounds * n_threads);
    if (idle <= kMaxIdleShare || splits == max_splits) return splits;
  }
}

namespace {

// How many tasks a decode-sized call over n_units units (row groups,
// panels) of total_bytes of weights gets: about kDecodeTasksPerThread per
// thread, none under kMinDecodeTaskBytes.
int64_t decode_task_count(int64_t total_bytes, int64_t n_units, int n_threads) {
  const int64_t max_tasks = std::min<int64_t>(n_units, kDecodeTasksPerThread * n_threads);
  return std::clamp<int64_t>(total_bytes / kMinDecodeTaskBytes, 1, max_tasks);
}

// Rounds every token's activations to int8 blocks into the scratch and
// points args.xq at them: the decode layout (signed codes, qsum16 and
// q4_0_term) or the prefill one (biased codes). Calls for more than
// kMaxDecodeTokens tokens split the tokens over the threads.
void quantize_tokens(MatmulArgs& args, ThreadPool& pool, MatmulScratch::Impl& s,
                     bool decode_layout) {
  const int64_t n_cols = args.w->n_cols, n_tokens = args.n_tokens;
  const int64_t n_blocks = n_cols / kActivationBlock;
  int32_t* qsum16 = decode_layout ? s.act_qsum16.get() : nullptr;
  int32_t* q4_0_term = decode_layout ? s.act_q4_0_term.get() : nullptr;
  auto quantize = [&](int64_t begin, int64_t end) {
    quantize_activations(args.x + begin * n_cols, (end - begin) * n_cols,
                         s.act_q.get() + begin * n_cols, s.act_d.get() + begin * n_blocks,
                         s.act_sum.get() + begin * n_blocks,
                         qsum16 ? qsum16 + 2 * begin * n_blocks : nullptr,
                         q4_0_term ? q4_0_term + begin * n_blocks : nullptr, !decode_layout);
  };
  if (n_tokens <= kMaxDecodeTokens) {
    quantize(0, n_tokens);
  } else {
    const int64_t n_tasks = std::min<int64_t>(n_tokens, pool.n_threads());
    pool.parallel_for(n_tasks, [&](int64_t task, int) {
      quantize(n_tokens * task / n_tasks, n_tokens * (task + 1) / n_tasks);
    });
  }
  args.xq = {s.act_q.get(), s.act_d.get(), s.act_sum.get(), qsum16, q4_0_term};
}

// How one matrix's panels are divided into tasks: decode-sized calls (up
// to kMaxDecodeTokens tokens, with `decode_tasks`) give each task a
// contiguous run of panels, sized like the decode kernels' tasks, so that
// each thread streams its share of the weights front to back rather than a
// few KiB at a time; other calls give each task one panel over all tokens,
// or over a share of them where prefill_token_splits says (judged on all
// `region_panels` panels that run in the same parallel region).
struct PanelTasks {
  int64_t n_panels = 0;
  int64_t panels_per_task = 1;
  int64_t n_splits = 1;
  int64_t n_tasks = 0;
};

int64_t panel_count(const MatrixView& w, int64_t panel_rows) {
  return (w.n_rows + panel_rows - 1) / panel_rows;
}

PanelTasks plan_panel_tasks(const MatmulArgs& args, int n_threads, int64_t panel_rows,
                            bool decode_tasks, int64_t region_panels) {
  PanelTasks plan;
  plan.n_panels = panel_count(*args.w, panel_rows);
  if (decode_tasks && args.n_tokens <= kMaxDecodeTokens) {
    const int64_t total_bytes = args.w->n_rows * static_cast<int64_t>(args.w->row_bytes);
    const int64_t wanted = decode_task_count(total_bytes, plan.n_panels, n_threads);
    plan.panels_per_task = (plan.n_panels + wanted - 1) / wanted;
    plan.n_tasks = (plan.n_panels + plan.panels_per_task - 1) / plan.panels_per_task;
  } else {
    plan.n_splits = prefill_token_splits(region_panels, args.n_tokens, n_threads);
    plan.n_tasks = plan.n_panels * plan.n_splits;
  }
  return plan;
}

// Task `task` of `plan`: panel(args, row_begin, token_begin, token_end,
// scratch) over its panels and tokens.
template <class PanelFn>
void run_panel_task(const PanelTasks& plan, const MatmulArgs& args, int64_t panel_rows,
                    PanelFn panel_fn, int64_t task, ThreadScratch scratch) {
  const int64_t first = task / plan.n_splits * plan.panels_per_task;
  const int64_t last = std::min(plan.n_panels, first + plan.panels_per_task);
  const int64_t split = task % plan.n_splits;
  const int64_t token_begin = args.n_tokens * split / plan.n_splits;
  const int64_t token_end = args.n_tokens * (split + 1) / plan.n_splits;
  for (int64_t p = first; p < last; ++p) {
    panel_fn(args, p * panel_rows, token_begin, token_end, scratch);
  }
}

// Every panel of args' matrix in one parallel region (plan_panel_tasks,
// prefill-sized tasks).
template <class PanelFn>
void run_panels(const MatmulArgs& args, ThreadPool& pool, MatmulScratch::Impl& s,
                int64_t panel_rows, PanelFn panel_fn) {
  const PanelTasks plan =
      plan_panel_tasks(args, pool.n_threads(), panel_rows,
                       /*decode_tasks=*/false, panel_count(*args.w, panel_rows));
  pool.parallel_for(plan.n_tasks, [&](int64_t task, int thread) {
    run_panel_task(plan, args, panel_rows, panel_fn, task, s.for_thread(thread));
  });
}

void check_fits(const ThreadPool& pool, const MatmulScratch::Impl& s, int64_t n_tokens,
                int64_t n_cols) {
  KVF_CHECK(pool.n_threads() <= s.n_threads);
  KVF_CHECK(n_tokens <= s.max_tokens && n_cols <= s.max_cols);
}

// Q4_0 in strips: one kernel for every token count. x is rounded to int8
// once for all the outputs (1 to kMaxSharedInputOutputs matrices in strips,
// all n_cols wide) and every panel of every matrix is a task of one
// parallel region: decode-sized calls give each task a run of panels of one
// matrix, larger ones split panels and tokens as prefill, judged on all the
// region's panels.
void strip_products(std::span<const MatmulOutput> outputs, const float* x, int64_t n_tokens,
                    ThreadPool& pool, MatmulScratch::Impl& s) {
  const size_t n = outputs.size();
  KVF_CHECK(n >= 1 && n <= kMaxSharedInputOutputs);
  // Fixed-size arrays: the decode path allocates nothing.
  std::array<MatmulArgs, kMaxSharedInputOutputs> args;
  std::array<PanelTasks, kMaxSharedInputOutputs> plans;
  std::array<int64_t, kMaxSharedInputOutputs + 1> first_task{};
  const int64_t panel_rows = q4_0_strip_panel_rows();
  int64_t region_panels = 0;
  for (size_t i = 0; i < n; ++i) {
    const MatrixView& w = *outputs[i].w;
    args[i] = MatmulArgs{&w, &checked_format(w), x, n_tokens, outputs[i].y, {}};
    region_panels += panel_count(w, panel_rows);
  }
  quantize_tokens(args[0], pool, s, /*decode_layout=*/true);
  for (size_t i = 1; i < n; ++i) args[i].xq = args[0].xq;
  for (size_t i = 0; i < n; ++i) {
    plans[i] = plan_panel_tasks(args[i], pool.n_threads(), panel_rows, /*decode_tasks=*/true,
                                region_panels);
    first_task[i + 1] = first_task[i] + plans[i].n_tasks;
  }
  pool.parallel_for(first_task[n], [&](int64_t task, int thread) {
    size_t i = 0;
    while (task >= first_task[i + 1]) ++i;
    run_panel_task(plans[i], args[i], panel_rows, q4_0_strip_panel, task - first_task[i],
                   s.for_thread(thread));
  });
}

// Copies x into the tile order of packed_activation_floats and points
// args.x_tiles at it; one task per column chunk.
void pack_activation_tiles(MatmulArgs& args, ThreadPool& pool, float* tiles) {
  const int64_t n_cols = args.w->n_cols, n_tokens = args.n_tokens;
  const int64_t n_chunks = (n_cols + kColumnChunk - 1) / kColumnChunk;
  const auto pack_chunk = [&](int64_t chunk) {
    const int64_t col = chunk * kColumnChunk;
    const int64_t len = std::min(kColumnChunk, n_cols - col);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kMaxTileTokens) {
      float* dst = tiles + packed_tile_offset(col, t0, n_tokens);
      const int64_t n_tile_tokens = std::min(kMaxTileTokens, n_tokens - t0);
      for (int64_t t = 0; t < n_tile_tokens; ++t) {
        const float* src = args.x + (t0 + t) * n_cols + col;
        for (int64_t k = 0; k < len; ++k) dst[k * kMaxTileTokens + t] = src[k];
      }
    }
  };
  if (n_tokens <= kMaxDecodeTokens) {
    for (int64_t chunk = 0; chunk < n_chunks; ++chunk) pack_chunk(chunk);
  } else {
    pool.parallel_for(n_chunks, [&](int64_t chunk, int) { pack_chunk(chunk); });
  }
  args.x_tiles = tiles;
}

// Whether w's products run the Q4_0 strip kernel.
bool uses_strips(const MatrixView& w) {
  return w.strips != nullptr && q4_0_strips_supported();
}

// What a call prepares from x before its products, by kernel path (Q4_0
// strips aside: strip_products rounds x itself).
enum class Activations { kNone, kInt8Decode, kInt8Prefill, kTiles };

Activations activations_for(const MatrixView& w, int64_t n_tokens) {
  const bool integer = decode_uses_quantized_activations(w.type);
  if (n_tokens <= kMaxDecodeTokens && decode_has_kernel(w.type)) {
    return integer ? Activations::kInt8Decode : Activations::kNone;
  }
  return integer ? Activations::kInt8Prefill : Activations::kTiles;
}

// Rounds or packs x as `form` needs into the scratch and points args at it.
void prepare_activations(MatmulArgs& args, Activations form, ThreadPool& pool,
                         MatmulScratch::Impl& s) {
  switch (form) {
    case Activations::kNone:
      break;
    case Activations::kInt8Decode:
      quantize_tokens(args, pool, s, /*decode_layout=*/true);
      break;
    case Activations::kInt8Prefill:
      quantize_tokens(args, pool, s, /*decode_layout=*/false);
      break;
    case Activations::kTiles:
      pack_activation_tiles(args, pool, s.act_tiles.get());
      break;
  }
}

// The products of one matrix not in strips, its activations prepared for
// `form`. Decode and prefill kernels compute each output with the same
// operations (matmul_internal.h), so a row's result does not depend on
// n_tokens or on the other rows of x.
void run_products(const MatmulArgs& args, Activations form, ThreadPool& pool,
                  MatmulScratch::Impl& s) {
  const MatrixView& w = *args.w;
  if (form == Activations::kNone || form == Activations::kInt8Decode) {
    const int64_t group = decode_group_rows();
    const int64_t total_bytes = w.n_rows * static_cast<int64_t>(w.row_bytes);
    const int64_t n_groups = (w.n_rows + group - 1) / group;
    const int64_t wanted = decode_task_count(total_bytes, n_groups, pool.n_threads());
    const int64_t rows_per_task = (n_groups + wanted - 1) / wanted * group;
    const int64_t n_tasks = (w.n_rows + rows_per_task - 1) / rows_per_task;
    pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
      const int64_t begin = task * rows_per_task;
      decode_rows(args, begin, std::min(begin + rows_per_task, w.n_rows), s.for_thread(thread));
    });
  } else if (form == Activations::kInt8Prefill) {
    run_panels(args, pool, s, prefill_int8_panel_rows(), prefill_int8_panel);
  } else {
    // f32 activations (prefill, and decode without a decode kernel): one FMA
    // chain per output.
    const int64_t panel_rows = prefill_panel_rows();
    pool.parallel_for(panel_count(w, panel_rows), [&](int64_t panel, int thread) {
      prefill_panel(args, panel * panel_rows, s.for_thread(thread));
    });
  }
}

}  // namespace

void matmul(const MatrixView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            MatmulScratch& scratch) {
  const WeightFormat& format = checked_format(w);
  MatmulScratch::Impl& s = *scratch.impl();
  check_fits(pool, s, n_tokens, w.n_cols);
  if (n_tokens <= 0 || w.n_rows <= 0) return;
  if (uses_strips(w)) {
    const MatmulOutput only{&w, y};
    strip_products({&only, 1}, x, n_tokens, pool, s);
    return;
  }
  MatmulArgs args{&w, &format, x, n_tokens, y, {}};
  const Activations form = activations_for(w, n_tokens);
  prepare_activations(args, form, pool, s);
  run_products(args, form, pool, s);
}

void matmul_shared_input(std::span<const MatmulOutput> outputs, const float* x, int64_t n_tokens,
                         ThreadPool& pool, MatmulScratch& scratch) {
  if (outputs.empty()) return;
  const MatrixView& first = *outputs.front().w;
  const bool strips = uses_strips(first);
  const Activations form = activations_for(first, n_tokens);
  // One preparation of x serves the group when every matrix is n_cols wide
  // and takes the same path: all in strips, or none and the same
  // activations. Otherwise each matrix prepares its own.
  const auto same_path = [&](const MatmulOutput& o) {
    return o.w->n_cols == first.n_cols && uses_strips(*o.w) == strips &&
           activations_for(*o.w, n_tokens) == form;
  };
  if (outputs.size() > kMaxSharedInputOutputs ||
      !std::all_of(outputs.begin(), outputs.end(), same_path)) {
    for (const MatmulOutput& o : outputs) matmul(*o.w, x, n_tokens, o.y, pool, scratch);
    return;
  }
  MatmulScratch::Impl& s = *scratch.impl();
  check_fits(pool, s, n_tokens, first.n_cols);
  if (n_tokens <= 0) return;
  if (strips) {
    strip_products(outputs, x, n_tokens, pool, s);
    return;
  }
  MatmulArgs args{&first, &checked_format(first), x, n_tokens, nullptr, {}};
  prepare_activations(args, form, pool, s);
  for (const MatmulOutput& o : outputs) {
    if (o.w->n_rows <= 0) continue;
    args.w = o.w;
    args.format = &checked_format(*o.w);
    args.y = o.y;
    run_products(args, form, pool, s);
  }
}

void matmul_reference(const MatrixView& w, const float* x, int64_t n_tokens, float* y) {
  const WeightFormat& format = checked_format(w);
  const auto* base = static_cast<const uint8_t*>(w.data);
  std::vector<float> row(static_cast<size_t>(w.n_cols));
  for (int64_t r = 0; r < w.n_rows; ++r) {
    format.dequantize_blocks(base + static_cast<size_t>(r) * w.row_bytes, row.data(),
                             w.n_cols / format.block_elems);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * w.n_cols;
      double sum = 0.0;
      for (int64_t c = 0; c < w.n_cols; ++c) sum += static_cast<double>(row[c]) * xt[c];
      y[t * w.n_rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace kvforge::kernels
