// SnapKV's pooled observation-window scores, shared by snapkv and pyramidkv.
// Internal to src/kv/press.
#pragma once

#include <vector>

#include "kv/press/kv_press.h"
#include "kv/press/press_options.h"

namespace kvforge::press {

struct SnapKvParams {
  int32_t window = 32;  // w: prompt queries observed
  int32_t kernel = 5;   // pooling width (odd)
  bool max_pool = false;
};

// Reads w, kernel and pool.
[[nodiscard]] Result<SnapKvParams> take_snapkv_params(PressOptions& options);

// scores[h][r]: the window's attention to candidate r of head h, pooled over
// the `kernel` neighbouring candidates (average with zero padding, or max).
void snapkv_scores(const PressLayer& layer, const SnapKvParams& params,
                   std::vector<std::vector<float>>& scores);

}  // namespace kvforge::press
