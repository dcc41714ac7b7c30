#!/usr/bin/env bash
# Usage: kv_cli_test.sh KVFORGE_BINARY SOURCE_DIR
# The KV options of the command line: codecs, per-layer plans, memory budget,
# prompt cache files; good input works, bad input fails cleanly (exit 1 or 2
# or a parser error code, with a message naming the problem, never a signal).
set -u
bin=$1
src=$2
model="$src/models/stories260K.gguf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
passes=0

source "$(dirname "$0")/expect.sh"

story="Once upon a time, there was a little girl named Lily. She loved to play outside in the park"
expect greedy_int8 0 "$story" -- run -m "$model" -p "Once upon a time" -n 40 --temp 0 -t 1 --kv-codec int8
expect per_layer_plan 0 "KV cache: .*0-1:k=f32/v=f32,2-4:k=int8/v=int4h" -- \
  run -m "$model" -p "Once upon a time" -n 8 -t 1 --kv-codec-layers "0-1:f32,2-:k=int8/v=int4h"
# Equal codecs in every layer make one run in the plan name, parameters included.
expect kivi_window 0 "KV cache: .*, 0-4:k=kivi2:g=32:r=128/v=kivi2:g=32:r=128\)" -- \
  run -m "$model" -p "Once upon a time" -n 8 -t 1 --kv-codec kivi2

# Several prompts on one cache: the second starts like the first (32 tokens
# of full 16-token blocks shared), reuses them and generates what it
# generates on its own.
first="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends every day."
second="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog."
printf '%s\n\n%s\n' "$first" "$second" >"$tmp/prompts.txt"
expect alone 0 "" -- run -m "$model" -p "$second" -n 24 --temp 0 -t 1 --kv-codec int8
alone=$(head -1 "$tmp/out")
expect prompts_share_prefix 0 "prefix cache: 1 of 2 lookups hit, 32 of 75 prompt tokens reused" -- \
  run -m "$model" --prompts "$tmp/prompts.txt" -n 24 --temp 0 -t 1 --kv-codec int8
grep -qF -- "$alone" "$tmp/out" || { echo "FAIL prompts_share_prefix: text differs from a cold run"; failures=$((failures + 1)); }
grep -q "tok/s, 32 reused |" "$tmp/err" || { echo "FAIL prompts_share_prefix: no reuse reported"; failures=$((failures + 1)); }
# The same with KIVI's full-precision window (r = 128): the hit reads the
# first prompt's kept f32 rows and still generates exactly the cold text.
expect alone_kivi 0 "" -- run -m "$model" -p "$second" -n 24 --temp 0 -t 1 --kv-codec kivi2
alone_kivi=$(head -1 "$tmp/out")
expect prompts_share_prefix_kivi 0 "prefix cache: 1 of 2 lookups hit, 32 of 75 prompt tokens reused.*1 f32 window" -- \
  run -m "$model" --prompts "$tmp/prompts.txt" -n 24 --temp 0 -t 1 --kv-codec kivi2
grep -qF -- "$alone_kivi" "$tmp/out" || { echo "FAIL prompts_share_prefix_kivi: text differs from a cold run"; failures=$((failures + 1)); }
: >"$tmp/empty.txt"
expect prompts_empty fail "holds no prompt" -- run -m "$model" --prompts "$tmp/empty.txt"
expect prompts_and_cache fail "cannot be combined" -- run -m "$model" --prompts "$tmp/prompts.txt" \
  --prompt-cache "$tmp/x.kvs"
expect prompt_twice fail "give one of" -- run -m "$model" -p hi --prompts "$tmp/prompts.txt"

# The prompt cache: the second run takes the saved prefix and generates the same text.
expect prompt_cache_save 0 "$story" -- run -m "$model" -p "Once upon a time" -n 40 --temp 0 -t 1 \
  --kv-codec int8 --prompt-cache "$tmp/p.kvs"
[[ -s "$tmp/p.kvs" ]] || { echo "FAIL prompt_cache_save: no file written"; failures=$((failures + 1)); }
expect prompt_cache_hit 0 "prompt cache: 4 of 5 prompt tokens" -- run -m "$model" -p "Once upon a time" \
  -n 40 --temp 0 -t 1 --kv-codec int8 --prompt-cache "$tmp/p.kvs"
grep -q "$story" "$tmp/out" || { echo "FAIL prompt_cache_hit: different text"; failures=$((failures + 1)); }
expect prompt_cache_other_codec fail "codec plan" -- run -m "$model" -p "Once upon a time" -n 4 -t 1 \
  --kv-codec int4 --prompt-cache "$tmp/p.kvs"
printf 'garbage' >"$tmp/bad.kvs"
expect prompt_cache_garbage fail "not a kvforge prompt cache" -- run -m "$model" -p "Once" -n 4 -t 1 \
  --prompt-cache "$tmp/bad.kvs"

# Selection: a budget covering the context generates the same text; a small
# one runs; pressed sequences are saved and continued through the prompt cache.
expect select_full_budget 0 "$story" -- run -m "$model" -p "Once upon a time" -n 40 --temp 0 -t 1 \
  --kv-codec int8 --select quest:tokens=4096
grep -q "select: quest:tokens=4096:window=32:sinks=4" "$tmp/err" || { echo "FAIL select_full_budget: no select line"; failures=$((failures + 1)); }
expect select_small 0 "select: quest:tokens=16:window=16:sinks=4:reuse=2:sim=0.5" -- run -m "$model" \
  -p "Once upon a time" -n 80 -t 1 --kv-block 8 --select quest:tokens=16:window=16:reuse=2:sim=0.5
expect select_unknown fail "unknown selection 'topk'; valid selections: quest" -- run -m "$model" -p hi \
  -n 4 --select topk:tokens=4
expect select_no_budget fail "tokens=N is required" -- run -m "$model" -p hi -n 4 --select quest
expect select_h2o fail "cannot be combined with press 'h2o" -- run -m "$model" -p hi -n 4 \
  --select quest:tokens=64 --press h2o:tokens=64
expect pressed_cache_save 0 "after the prompt press" -- run -m "$model" -p "$first $first" -n 30 \
  --temp 0 -t 1 --press streaming:tokens=24:window=8 --prompt-cache "$tmp/pressed.kvs"
expect pressed_cache_other_press fail "press plan" -- run -m "$model" -p "$first" -n 4 -t 1 \
  --press streaming:tokens=32:window=8 --prompt-cache "$tmp/pressed.kvs"

expect unknown_codec fail "int3" -- run -m "$model" -p hi -n 4 --kv-codec int3
expect bad_layer_range fail "--kv-codec-layers" -- run -m "$model" -p hi -n 4 --kv-codec-layers "7-9:int8"
expect bad_kv_mem fail "not a memory size|unknown unit" -- run -m "$model" -p hi -n 4 --kv-mem lots
expect kv_mem_too_small fail "KV block needs|too small|at least" -- run -m "$model" -p hi -n 4 --kv-mem 100B
expect kv_mem_full fail "KV cache memory is full" -- run -m "$model" -p "Once upon a time there was" \
  -n 200 -t 1 --kv-mem 12KiB --ignore-eos
expect bad_block fail "kv-block" -- run -m "$model" -p hi -n 4 --kv-block 0

# KV tiers (docs/tiers.md): refused before the server listens.
expect unknown_tier fail "--kv-tier 'tape:x': unknown tier \(valid forms: host:SIZE" -- \
  serve -m "$model" --port 0 --kv-tier tape:x
expect bad_tier_size fail "'lots' is not a memory size" -- \
  serve -m "$model" --port 0 --kv-tier host:lots
expect bad_tier_load fail "kv-tier-load" -- \
  serve -m "$model" --port 0 --kv-tier host:1MiB --kv-tier-load sometimes
expect tier_without_sharing fail "need prefix sharing" -- \
  serve -m "$model" --port 0 --kv-tier host:1MiB --no-prefix-sharing

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
