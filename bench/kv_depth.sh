#!/usr/bin/env bash
# Decode speed against context depth for every KV codec, on a synthetic
# Llama-3.2-1B-shaped model in Q4_0, next to the bandwidth limit for the
# weights plus the KV bytes one decode step reads at that depth, and next to
# a roofline that also counts the attention's arithmetic (speed_report.py).
#
# The context is filled with random keys and values stored through each
# codec (kvforge bench --depth-fill random): a decode step's cost depends on
# how many KV bytes it reads, not on their values, and a real 16k-token
# prefill takes minutes on a small machine.
#
# Usage: bench/kv_depth.sh [threads=2] [codecs="f16 f32 bf16 int8 int4 int4h kivi4 kivi2"] [reps=2]
# Environment: KVFORGE_BENCH_DIR (default build/bench-models),
#              KVFORGE_BENCH_DEPTHS (default "0,4096,16384").
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
codecs=${2:-"f16 f32 bf16 int8 int4 int4h kivi4 kivi2"}
reps=${3:-2}
depths=${KVFORGE_BENCH_DEPTHS:-0,4096,16384}
models=${KVFORGE_BENCH_DIR:-build/bench-models}
max_depth=${depths##*,}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target kvforge kvforge_machine_limits -j"$(nproc)" >/dev/null
mkdir -p "$models"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; commit $(git rev-parse --short HEAD)" >&2
limits=$(./build/bench/kvforge_machine_limits "$threads")
echo "limits: $limits" >&2

model="$models/llama3.2-1b-q4_0.gguf"
if [[ ! -f "$model" ]]; then
  ./build/kvforge synth --arch llama --preset llama3.2-1b --type q4_0 --seed 1 -o "$model" >&2
fi
results=()
for codec in $codecs; do
  out="$models/depth-$codec.json"
  ./build/kvforge bench -m "$model" -t "$threads" -c $((max_depth + 64)) -p 0 -n 32 \
    -d "$depths" -r "$reps" --depth-fill random --kv-codec "$codec" -o json >"$out"
  results+=("$out")
done
python3 bench/speed_report.py "$limits" "${results[@]}"
