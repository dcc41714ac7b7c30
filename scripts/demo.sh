#!/usr/bin/env bash
# Installs what is missing, builds kvforge (Release) and generates a story
# with the bundled model. Extra arguments go to `kvforge run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKVFORGE_BUILD_TESTS=OFF -DKVFORGE_BUILD_BENCH=OFF >/dev/null
cmake --build build --target kvforge -j"$(nproc)"
./build/kvforge run -m models/stories260K.gguf -p "Once upon a time" -n 200 --temp 0.8 --seed 42 "$@"
