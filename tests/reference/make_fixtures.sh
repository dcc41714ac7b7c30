#!/usr/bin/env bash
# Regenerates tests/data/reference/*.json: for each fixture, writes a model
# with `kvforge synth`, runs the independent reference (reference.py) on it and
# stores the synth options, the model's sha256, the prompt and the expected
# outputs. Needs /usr/bin/python3 with torch and numpy
# (scripts/install-deps.sh --with-reference). Run from anywhere:
#
#   tests/reference/make_fixtures.sh build/kvforge [SHARED_DIR] [NAME...]
#
# SHARED_DIR defaults to ../shared beside the repository (its vocab/ folder
# holds the vocabularies synth copies). With NAMEs, only those fixtures are
# written.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 PATH/TO/kvforge [SHARED_DIR]" >&2
  exit 2
fi
kvforge=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=$(realpath "${2:-$repo/../shared}")
only=("${@:3}")
out_dir="$repo/tests/data/reference"
python=/usr/bin/python3
seed=42
greedy_steps=32
# "Once upon a time, there was" in each vocabulary (with BOS for SentencePiece).
llama_prompt="1,9038,2501,263,931,29892,727,471"
gpt2_prompt="7454,2402,257,640,11,612,373"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out_dir"

# name preset arch type [Llama 3.1 RoPE scaling: factor,low,high,original context]
# The scaling is stated here again, not read from synth: the reference computes
# the frequencies from it and checks the file's rope_freqs.weight against them.
fixtures=(
  "tiny-llama-f32 tiny llama f32"
  "tiny-qwen2-f32 tiny qwen2 f32"
  "tiny-qwen3-f32 tiny qwen3 f32"
  "tiny-llama3-llama-f32 tiny-llama3 llama f32 8,1,4,256"
  "tiny-qwen2-q8_0 tiny qwen2 q8_0"
  "tiny-qwen3-q4_0 tiny qwen3 q4_0"
  "tiny-llama-f16 tiny llama f16"
  "tiny-llama-bf16 tiny llama bf16"
  "tiny-llama-q8_0 tiny llama q8_0"
  "tiny-llama-q4_0 tiny llama q4_0"
  "tiny-llama-q4_1 tiny llama q4_1"
  "tiny-k-llama-q4_k tiny-k llama q4_k"
  "tiny-k-llama-q5_k tiny-k llama q5_k"
  "tiny-k-llama-q6_k tiny-k llama q6_k"
)

for fixture in "${fixtures[@]}"; do
  read -r name preset arch type scaling <<<"$fixture"
  if ((${#only[@]})) && [[ " ${only[*]} " != *" $name "* ]]; then
    continue
  fi
  scaling_args=()
  [[ -z $scaling ]] || scaling_args=(--llama3-rope-scaling "$scaling")
  if [[ $arch == llama ]]; then
    vocab=ggml-vocab-llama-spm.gguf prompt=$llama_prompt
  else
    vocab=ggml-vocab-gpt-2.gguf prompt=$gpt2_prompt
  fi
  model="$work/$name.gguf"
  "$kvforge" synth --arch "$arch" --preset "$preset" --type "$type" --seed "$seed" \
    --vocab "$shared/vocab/$vocab" -o "$model" >/dev/null
  (cd "$here" && "$python" reference.py "$model" --prompt-ids "$prompt" \
    --greedy "$greedy_steps" "${scaling_args[@]}" --json "$work/$name.out.json")
  sha=$(sha256sum "$model" | cut -d' ' -f1)
  "$python" - "$work/$name.out.json" "$out_dir/$name.json" <<PY
import json, sys
result = json.load(open(sys.argv[1]))
fixture = {
    "synth": {"arch": "$arch", "preset": "$preset", "type": "$type", "seed": $seed,
              "vocab": "$vocab"},
    "gguf_sha256": "$sha",
    **result,
}
with open(sys.argv[2], "w") as f:
    json.dump(fixture, f, indent=1)
    f.write("\n")
PY
  echo "$name: sha256 $sha, greedy margin $("$python" -c "import json; print(round(json.load(open('$out_dir/$name.json'))['greedy_min_margin'], 4))")"
done
