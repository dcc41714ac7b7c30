// Reads a whole input file into memory, with errors that name the file.
// The converters' inputs (llama2.c checkpoints, tokenizers) are read once and
// completely, so a plain read is simpler than a mapping.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvforge/status.h"

namespace kvforge::convert {

[[nodiscard]] Result<std::vector<uint8_t>> read_file_bytes(const std::string& path);

}  // namespace kvforge::convert
