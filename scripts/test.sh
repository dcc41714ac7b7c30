#!/usr/bin/env bash
# Installs what is missing, builds kvforge with its tests, and runs the whole
# suite twice: a Release build, then an AddressSanitizer + UndefinedBehavior-
# Sanitizer build. Set KVFORGE_SKIP_SANITIZE=1 to run only the first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs="$(nproc)"

# Every option is given explicitly: build/ may hold a CMake cache from
# scripts/demo.sh (tests and benchmarks off) or from a hand-made build, and
# cached options outlive the command line that set them. ctest fails when it
# finds no tests instead of passing vacuously.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKVFORGE_BUILD_TESTS=ON -DKVFORGE_BUILD_BENCH=ON \
  -DKVFORGE_SANITIZE=OFF -DKVFORGE_SIMD_NATIVE_ONLY=OFF -DKVFORGE_FUZZ=OFF >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure --no-tests=error -j"$jobs"

if [[ "${KVFORGE_SKIP_SANITIZE:-0}" != 1 ]]; then
  # The sanitizer build compiles the SIMD kernels for this machine's target
  # only (the Release run above covers every dispatched target).
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVFORGE_BUILD_TESTS=ON \
    -DKVFORGE_SANITIZE=ON -DKVFORGE_SIMD_NATIVE_ONLY=ON -DKVFORGE_BUILD_BENCH=OFF \
    -DKVFORGE_FUZZ=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure --no-tests=error -j"$jobs"
fi
