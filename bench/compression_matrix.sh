#!/usr/bin/env bash
# The measurements of docs/compression.md, in one command: the compression
# matrix (codec x press x budget against the f32 cache, `kvforge eval matrix`)
# on stories260K, on kvtest-1k and on a synthetic Llama-3.2-1B-shaped model,
# and pass-key tables (`kvforge eval passkey`) on kvtest-1k and stories260K.
# Every press the binary knows is measured (the default of eval matrix), so
# new presses appear without a change here.
#
# Usage: bench/compression_matrix.sh [OUT_DIR=build/compression] [threads=1]
# (One thread: these models are small, and on a shared 2-core machine two
# threads that wait for each other ran up to 75 times slower.)
# Environment:
#   KVFORGE_MATRIX_PARTS   which parts to run (default "stories260K kvtest-1k synth-1b passkey")
#   KVFORGE_BENCH_DIR      where the synthetic model is kept (default build/bench-models)
#   KVFORGE_SHARED         the shared assets (default ../shared)
#   KVFORGE_PASSKEY_TRIALS trials per pass-key cell (default 5)
#
# Writes OUT_DIR/<model>/{matrix.md,matrix.csv,matrix.json,fidelity.svg},
# OUT_DIR/passkey/<model>-<press>.{md,svg} and OUT_DIR/machine.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/compression}
threads=${2:-1}
parts=${KVFORGE_MATRIX_PARTS:-"stories260K kvtest-1k synth-1b passkey"}
models=${KVFORGE_BENCH_DIR:-build/bench-models}
shared=${KVFORGE_SHARED:-../shared}
trials=${KVFORGE_PASSKEY_TRIALS:-5}
stories_text="$shared/text/tinystories-valid-sample/tinystories_val.txt"
kvtest="$shared/models/kvtest-1k/kvtest-1k.gguf"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target kvforge -j"$(nproc)" >/dev/null
kvforge=./build/kvforge
mkdir -p "$out/passkey"
{
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, threads $threads"
  echo "commit: $(git rev-parse --short HEAD)"
  date -u
} >"$out/machine.txt"
cat "$out/machine.txt" >&2

has() { [[ " $parts " == *" $1 "* ]]; }
run() { echo "+ $*" >&2; "$@"; }

# kvtest-1k's held-out text: the last 5 % of the TinyStories sample (its
# README: it was trained on the rest).
heldout="$out/tinystories-heldout.txt"
size=$(wc -c <"$stories_text")
tail -c $((size / 20)) "$stories_text" >"$heldout"

if has stories260K; then
  # The model's trained context (512): a 256-token pressed prompt, 255 scored.
  run "$kvforge" eval matrix -m models/stories260K.gguf -f "$stories_text" -c 512 --chunks 8 \
    -t "$threads" --codecs f16,int8,int4 --budgets 0.5,0.25,0.125 -o "$out/stories260K" >/dev/null
fi
if has kvtest-1k; then
  run "$kvforge" eval matrix -m "$kvtest" -f "$heldout" -c 1024 --chunks 8 \
    -t "$threads" --codecs f16,int8,int4 --budgets 0.5,0.25,0.125 -o "$out/kvtest-1k" >/dev/null
fi
if has synth-1b; then
  synth="$models/llama3.2-1b-q4_0.gguf"
  mkdir -p "$models"
  if [[ ! -f "$synth" ]]; then
    run "$kvforge" synth --arch llama --preset llama3.2-1b --type q4_0 --seed 1 -o "$synth" >&2
  fi
  # One window of 1024 (a 512-token prompt: 12.5 % of it is still above the
  # 36 protected sinks and window), f16 only.
  run "$kvforge" eval matrix -m "$synth" -f "$stories_text" -c 1024 --chunks 1 \
    -t "$threads" --codecs f16 --budgets 0.5,0.25,0.125 -o "$out/synth-1b" >/dev/null
fi
if has passkey; then
  # Every press the binary knows, from the message that names them.
  presses=$({ "$kvforge" eval kl -m models/stories260K.gguf -f "$heldout" --press '?' 2>&1 || true; } |
    sed -n 's/.*valid presses: //p' | tr -d ',')
  [[ -n "$presses" ]] || { echo "no press names found" >&2; exit 1; }
  for press in none $presses; do
    spec=$([[ $press == none ]] && echo none || echo "$press:ratio=0.25")
    run "$kvforge" eval passkey -m "$kvtest" --lengths 256,512,1024 --depths 0,25,50,75,100 \
      --trials "$trials" -t "$threads" --press "$spec" --svg "$out/passkey/kvtest-1k-$press.svg" \
      >"$out/passkey/kvtest-1k-$press.md"
    run "$kvforge" eval passkey -m models/stories260K.gguf --lengths 256,512 \
      --depths 0,25,50,75,100 --trials "$trials" -t "$threads" --press "$spec" \
      --svg "$out/passkey/stories260K-$press.svg" >"$out/passkey/stories260K-$press.md"
  done
fi
echo "wrote $out" >&2
