// The compression matrix as a picture: fidelity against memory, so that a
// configuration can be chosen by looking. Two panels share the x axis, the
// KV bytes per token of the compressed context (log scale): mean KL
// divergence (log scale, lower is better) and top-1 agreement (%, higher is
// better). Colour is the press, marker shape the codec; the points of one
// (codec, press) pair are joined in order of their bytes. A mean KL of 0
// cannot be drawn on a log axis: such points sit on the panel's floor, drawn
// hollow.
//
// Structure of the output (what tests and readers may rely on): one
// <g class="panel"> per panel, and in each one <g class="point"> per row,
// whose <title> names the configuration and its numbers.
#pragma once

#include <string>
#include <vector>

#include "eval/compression_matrix.h"

namespace kvforge {

[[nodiscard]] std::string fidelity_plot_svg(const std::vector<MatrixRow>& rows,
                                            const std::string& title);

}  // namespace kvforge
