#!/usr/bin/env bash
# Decode speed at depth with and without query-aware selection (--select),
# on a synthetic Llama-3.2-1B-shaped model in Q4_0, for f16 and int4 KV.
#
# The context is filled with random keys and values stored through the
# cache's own store path (kvforge bench --depth-fill random), which also
# computes the selection's key bounds; what a decode step costs depends on
# how many bytes it reads, not on their values. Random keys make every
# block's bound alike, so the choice itself is arbitrary here: this measures
# speed only (fidelity: docs/kv-compression.md).
#
# Runs alternate between the configurations, `rounds` times, and the table
# gives each configuration's best round (the machine is shared; the least
# disturbed run is the closest to what the code costs).
#
# Usage: bench/select_depth.sh [threads=2] [codecs="f16 int4"] [selects="quest:tokens=2048"] [rounds=2]
# Environment: KVFORGE_BENCH_DIR (default build/bench-models),
#              KVFORGE_BENCH_DEPTHS (default "4096,16384,32768").
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
codecs=${2:-"f16 int4"}
selects=${3:-"quest:tokens=2048"}
rounds=${4:-2}
depths=${KVFORGE_BENCH_DEPTHS:-4096,16384,32768}
models=${KVFORGE_BENCH_DIR:-build/bench-models}
max_depth=${depths##*,}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target kvforge -j"$(nproc)" >/dev/null
mkdir -p "$models"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; commit $(git rev-parse --short HEAD)" >&2

model="$models/llama3.2-1b-q4_0.gguf"
if [[ ! -f "$model" ]]; then
  ./build/kvforge synth --arch llama --preset llama3.2-1b --type q4_0 --seed 1 -o "$model" >&2
fi
results=()
for round in $(seq 1 "$rounds"); do
  for codec in $codecs; do
    for select in none $selects; do
      out="$models/select-$codec-${select//[:=]/_}-$round.json"
      args=()
      [[ "$select" != none ]] && args=(--select "$select")
      ./build/kvforge bench -m "$model" -t "$threads" -c $((max_depth + 64)) -p 0 -n 32 \
        -d "$depths" -r 1 --depth-fill random --kv-codec "$codec" "${args[@]}" -o json >"$out"
      results+=("$out")
    done
  done
done
python3 - "${results[@]}" <<'PY'
import json, sys
best = {}
for path in sys.argv[1:]:
    run = json.load(open(path))
    key = (run["kv_codec"], run["kv_select"] or "none")
    for t in run["tests"]:
        b = best.setdefault(key, {})
        b[t["depth"]] = max(b.get(t["depth"], 0), max(t["samples"]))
codecs = sorted({c for c, _ in best}, key=lambda c: list(dict.fromkeys(c for c, _ in best)).index(c))
depths = sorted({d for b in best.values() for d in b})
print("| codec | select | " + " | ".join(f"d{d} t/s" for d in depths) + " |")
print("| --- | --- | " + " | ".join("---:" for _ in depths) + " |")
for codec in codecs:
    base = best.get((codec, "none"), {})
    for (c, sel), b in best.items():
        if c != codec:
            continue
        cells = []
        for d in depths:
            x = b.get(d, 0)
            cells.append(f"{x:.2f}" if sel == "none" or not base.get(d) else f"{x:.2f} ({x / base[d]:.2f}x)")
        print(f"| {codec} | {sel} | " + " | ".join(cells) + " |")
PY
