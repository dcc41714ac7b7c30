#!/usr/bin/env bash
# Measures kvforge's prompt-processing and decode speed on a synthetic
# Llama-3.2-1B-shaped model in several weight types, and prints each figure
# next to this machine's limits (measured here too):
#   decode:  bytes one decode step must read (weights + KV at that depth)
#            / measured streaming read bandwidth
#   prefill: matmul FLOPs per token (2 x weight parameters) / measured FMA peak
#
# Usage: bench/speed.sh [threads=2] [types="f16 q8_0 q4_0"] [reps=3]
# Environment: KVFORGE_BENCH_DIR (default build/bench-models) caches models;
#              KVFORGE_BENCH_DEPTHS (default "1024,4096": decode depths).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
types=${2:-"f16 q8_0 q4_0"}
reps=${3:-3}
depths=${KVFORGE_BENCH_DEPTHS:-1024,4096}
models=${KVFORGE_BENCH_DIR:-build/bench-models}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target kvforge kvforge_machine_limits -j"$(nproc)" >/dev/null
mkdir -p "$models"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; commit $(git rev-parse --short HEAD)" >&2
limits=$(./build/bench/kvforge_machine_limits "$threads")
echo "limits: $limits" >&2

results=()
for type in $types; do
  model="$models/llama3.2-1b-$type.gguf"
  if [[ ! -f "$model" ]]; then
    ./build/kvforge synth --arch llama --preset llama3.2-1b --type "$type" --seed 1 -o "$model" >&2
  fi
  out="$models/bench-$type.json"
  ./build/kvforge bench -m "$model" -t "$threads" -p 512 -n 128 -r "$reps" -o json >"$out"
  results+=("$out")
  # Decode at depth: the context is random KV stored through the f16 codec
  # (a real 4096-token prefill per repetition would dominate the run time).
  out="$models/bench-$type-depth.json"
  ./build/kvforge bench -m "$model" -t "$threads" -p 0 -n 64 -d "$depths" -r "$reps" \
    --depth-fill random -o json >"$out"
  results+=("$out")
done
python3 bench/speed_report.py "$limits" "${results[@]}"
