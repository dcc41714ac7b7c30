#!/usr/bin/env bash
# Installs what is missing, builds kvforge with its tests, and runs the whole
# suite twice: a Release build, then an AddressSanitizer + UndefinedBehavior-
# Sanitizer build. Set KVFORGE_SKIP_SANITIZE=1 to run only the first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs="$(nproc)"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

if [[ "${KVFORGE_SKIP_SANITIZE:-0}" != 1 ]]; then
  # The sanitizer build compiles the SIMD kernels for this machine's target
  # only (the Release run above covers every dispatched target).
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVFORGE_SANITIZE=ON \
    -DKVFORGE_SIMD_NATIVE_ONLY=ON -DKVFORGE_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
fi
