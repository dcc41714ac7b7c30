#!/usr/bin/env bash
# Builds kvforge for 64-bit Arm (its kernels compiled for NEON; see
# src/kernels/simd_targets.h) with Debian's cross compiler and runs its tests
# under qemu-user, so that the Arm kernels are exercised on an x86 machine.
# Correctness only: emulated timings mean nothing. Not part of scripts/test.sh
# (the emulated suite takes far longer than the native one).
#
# Usage: scripts/test-arm64.sh [CTEST_REGEX]
#   CTEST_REGEX  run only the tests whose names match (ctest -R), e.g.
#                'Matmul|Unpack|Quant|Codecs/|Hadamard|KvCodec'
#   KVFORGE_TEST_TIMEOUT  seconds per test (default 120 here)
# Installs what is missing (scripts/install-deps.sh --with-arm64: qemu-user,
# g++-aarch64-linux-gnu and the arm64 packages of the libraries; adds the
# arm64 architecture to dpkg).
#
# Tool scripts (cli_test, server_openai_client, ...) start kvforge through a
# wrapper that runs it under the emulator. docs/kernels.md ("Tests") gives
# the last full run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --with-arm64

cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
  -DCMAKE_BUILD_TYPE=Release -DKVFORGE_BUILD_TESTS=ON -DKVFORGE_BUILD_BENCH=OFF \
  -DKVFORGE_SANITIZE=OFF -DKVFORGE_SIMD_NATIVE_ONLY=OFF -DKVFORGE_FUZZ=OFF \
  -DKVFORGE_TEST_TIMEOUT="${KVFORGE_TEST_TIMEOUT:-120}" >/dev/null
cmake --build build-arm64 -j"$(nproc)"
ctest_args=(--test-dir build-arm64 --output-on-failure --no-tests=error -j"$(nproc)")
[[ $# -ge 1 ]] && ctest_args+=(-R "$1")
ctest "${ctest_args[@]}"
