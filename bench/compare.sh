#!/usr/bin/env bash
# kvforge against llama.cpp on the same GGUF file: prompt processing (pp512)
# and decode at context depths 0, 4096 and 16384, with an f16 KV cache and a
# 4-bit one (kvforge --kv-codec int4 against llama.cpp -ctk q4_0 -ctv q4_0;
# llama.cpp runs with flash attention, -fa 1, in both cases, which its
# quantized V cache requires).
#
# The two engines run in turns, ROUNDS times, one repetition per test each
# time (the order alternates between rounds), so that load from other work on
# a shared machine falls on both; the table gives each engine's best run, the
# spread of its runs (min-max) and the ratio of the bests.
#
# Usage:
#   LLAMA_CPP_BIN=path/to/llama.cpp/build/bin bench/compare.sh [options]
# Options:
#   -m FILE    GGUF model to run (default: synthesize one, see -s)
#   -s TYPE    synthesize a Llama-3.2-1B-shaped model of weight type TYPE with
#              `kvforge synth --preset llama3.2-1b --seed 1` (default q4_0;
#              kept in $KVFORGE_BENCH_DIR, default build/bench-models)
#   -t N       threads (default 2)
#   -r N       rounds (default 3)
#   -d LIST    decode depths, comma-separated (default 0,4096,16384)
#   -k LIST    KV caches, comma-separated from f16, int4 (default f16,int4)
#   -n N       tokens per decode test (default 32)
#   -p N       prompt tokens (default 512; 0 skips prompt processing)
#
# kvforge fills the context at depth with random keys and values (kvforge
# bench --depth-fill random); llama-bench prefills it. A decode step's cost
# depends on the KV bytes it reads, not on their values. The raw JSON of
# every run is kept in $KVFORGE_BENCH_DIR/compare-<model>/.
set -euo pipefail
cd "$(dirname "$0")/.."

model=""
synth_type=q4_0
threads=2
rounds=3
depths=0,4096,16384
caches=f16,int4
n_gen=32
n_prompt=512
while getopts "m:s:t:r:d:k:n:p:h" opt; do
  case $opt in
    m) model=$OPTARG ;;
    s) synth_type=$OPTARG ;;
    t) threads=$OPTARG ;;
    r) rounds=$OPTARG ;;
    d) depths=$OPTARG ;;
    k) caches=$OPTARG ;;
    n) n_gen=$OPTARG ;;
    p) n_prompt=$OPTARG ;;
    *)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
done
if [[ -z "${LLAMA_CPP_BIN:-}" || ! -x "$LLAMA_CPP_BIN/llama-bench" ]]; then
  echo "compare.sh: set LLAMA_CPP_BIN to llama.cpp's build/bin (with llama-bench)" >&2
  exit 2
fi
for c in ${caches//,/ }; do
  if [[ $c != f16 && $c != int4 ]]; then
    echo "compare.sh: -k takes f16 and/or int4, not '$c'" >&2
    exit 2
  fi
done

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target kvforge kvforge_machine_limits -j"$(nproc)" >/dev/null
models=${KVFORGE_BENCH_DIR:-build/bench-models}
mkdir -p "$models"
if [[ -z "$model" ]]; then
  model="$models/llama3.2-1b-$synth_type.gguf"
  if [[ ! -f "$model" ]]; then
    ./build/kvforge synth --arch llama --preset llama3.2-1b --type "$synth_type" --seed 1 \
      -o "$model" >&2
  fi
fi
[[ -f "$model" ]] || { echo "compare.sh: no model file '$model'" >&2; exit 2; }
out="$models/compare-$(basename "$model" .gguf)"
rm -rf "$out"
mkdir -p "$out"

max_depth=0
for d in ${depths//,/ }; do ((d > max_depth)) && max_depth=$d; done
ctx=$((max_depth + n_gen + 64))

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; kvforge $(git rev-parse --short HEAD)" >&2
echo "model: $model, $threads threads, $rounds rounds" >&2
./build/bench/kvforge_machine_limits "$threads" >"$out/limits.json"
echo "limits: $(cat "$out/limits.json")" >&2

run_kvforge() {  # round
  local r=$1
  if ((n_prompt > 0)); then
    ./build/kvforge bench -m "$model" -t "$threads" -p "$n_prompt" -n 0 -r 1 -o json \
      >"$out/kvforge-pp-$r.json" 2>/dev/null
  fi
  for c in ${caches//,/ }; do
    ./build/kvforge bench -m "$model" -t "$threads" -c "$ctx" -p 0 -n "$n_gen" -d "$depths" -r 1 \
      --depth-fill random --kv-codec "$c" -o json >"$out/kvforge-tg-$c-$r.json" 2>/dev/null
  done
}

run_llama() {  # round
  local r=$1
  if ((n_prompt > 0)); then
    "$LLAMA_CPP_BIN/llama-bench" -m "$model" -t "$threads" -p "$n_prompt" -n 0 -r 1 -fa 1 -o json \
      >"$out/llama-pp-$r.json" 2>/dev/null
  fi
  for c in ${caches//,/ }; do
    local kv=f16
    [[ $c == int4 ]] && kv=q4_0
    "$LLAMA_CPP_BIN/llama-bench" -m "$model" -t "$threads" -p 0 -n "$n_gen" -d "$depths" -r 1 \
      -fa 1 -ctk "$kv" -ctv "$kv" -o json >"$out/llama-tg-$c-$r.json" 2>/dev/null
  done
}

for ((r = 1; r <= rounds; ++r)); do
  echo "round $r of $rounds" >&2
  if ((r % 2)); then
    run_kvforge "$r"
    run_llama "$r"
  else
    run_llama "$r"
    run_kvforge "$r"
  fi
done
python3 bench/compare_report.py "$out"
