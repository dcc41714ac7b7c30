// The default filler text of pass-key prompts (eval/passkey.h): an excerpt
// of TinyStories compiled into the binary from data/passkey_filler.txt (see
// data/README.md for its source and license).
#pragma once

#include <string_view>

namespace kvforge {

[[nodiscard]] std::string_view default_passkey_filler();

}  // namespace kvforge
