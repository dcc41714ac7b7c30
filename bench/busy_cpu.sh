#!/usr/bin/env bash
# Decode speed when another process wants a core: runs `kvforge bench`
# decode on the bundled stories260K model and on a synthetic
# Llama-3.2-1B-shaped model, for each thread count, first on a quiet machine
# and then with one competing CPU-bound process (a shell busy loop), and
# prints a Markdown table with each speed relative to 1 thread in the same
# setting.
#
# Usage: bench/busy_cpu.sh [reps=5] [threads="1 2"]
# Environment: KVFORGE_BENCH_DIR (default build/bench-models) caches the
#              synthetic model; KVFORGE_BUSY_TYPE (default f32) is its matrix
#              type; KVFORGE_BUSY_TOKENS (default "256 16") the decode lengths
#              for stories260K and the 1B model; KVFORGE_BIN (default
#              build/kvforge, built by this script) the binary to measure,
#              e.g. a build of another commit for an A/B comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
threads=${2:-"1 2"}
models=${KVFORGE_BENCH_DIR:-build/bench-models}
type=${KVFORGE_BUSY_TYPE:-f32}
read -r tokens_small tokens_1b <<<"${KVFORGE_BUSY_TOKENS:-256 16}"

bin=${KVFORGE_BIN:-}
if [[ -z "$bin" ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build --target kvforge -j"$(nproc)" >/dev/null
  bin=./build/kvforge
fi
mkdir -p "$models"
synth="$models/llama3.2-1b-$type.gguf"
if [[ ! -f "$synth" ]]; then
  "$bin" synth --arch llama --preset llama3.2-1b --type "$type" --seed 1 -o "$synth" >&2
fi

competitor=""
stop_competitor() {
  if [[ -n "$competitor" ]]; then
    kill "$competitor" 2>/dev/null || true
    wait "$competitor" 2>/dev/null || true
    competitor=""
  fi
}
trap stop_competitor EXIT
start_competitor() {
  (while :; do :; done) &
  competitor=$!
}

# Prints "mean sd min max" decode tokens/s of MODEL with N tokens on T threads.
decode() {
  "$bin" bench -m "$1" -p 0 -n "$2" -r "$reps" -t "$3" -o json 2>/dev/null | python3 -c '
import json, statistics, sys
r = json.load(sys.stdin)
s = [x for t in r["tests"] if t["test"].startswith("tg") for x in t["samples"]]
sd = statistics.stdev(s) if len(s) > 1 else 0.0
print(f"{statistics.mean(s):.2f} {sd:.2f} {min(s):.2f} {max(s):.2f}")'
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; commit $(git rev-parse --short HEAD); binary $bin"
echo "decode tokens/s, $reps repetitions each; competitor: one shell busy loop"
echo
echo "| model | competitor | threads | mean ± sd | min | max | mean / 1 thread |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
for setting in none busy; do
  [[ "$setting" == busy ]] && start_competitor
  for spec in "models/stories260K.gguf:$tokens_small" "$synth:$tokens_1b"; do
    model=${spec%:*}
    n=${spec##*:}
    base=""
    for t in $threads; do
      read -r mean sd lo hi <<<"$(decode "$model" "$n" "$t")"
      [[ -z "$base" ]] && base=$mean
      ratio=$(python3 -c "print(f'{$mean / $base:.2f}')")
      echo "| $(basename "$model" .gguf) (tg$n) | $setting | $t | $mean ± $sd | $lo | $hi | $ratio |"
    done
  done
  stop_competitor
done
