#!/usr/bin/env bash
# Usage: cli_test.sh KVFORGE_BINARY SOURCE_DIR SHARED_DIR WRITE_LLAMA_CPP_LLAMA2C
# Runs the kvforge command line on good and bad input and checks exit codes
# and messages. Bad input must give exit status 1 or 2 (never a crash: a
# signal gives 128+N) and a one-line message naming the problem.
set -u
bin=$1
src=$2
shared=$3
write_llama_cpp_llama2c=$4
model="$src/models/stories260K.gguf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
passes=0

source "$(dirname "$0")/expect.sh"

# Greedy generation on the bundled model reproduces the reference story.
expect greedy_story 0 "Once upon a time, there was a little girl named Lily. She loved to play outside in the park" -- \
  run -m "$model" -p "Once upon a time" -n 40 --temp 0 -t 1
expect timing_line 0 "prompt: [0-9]+ tokens, .* decode: [0-9]+ tokens" -- run -m "$model" -p "Hi" -n 4 -t 1
expect info_model 0 "KV cache per token: 640.00 B \(f16\)" -- info "$model"
expect info_vocab 0 "tokenizer.ggml.model +\"gpt2\"" -- info "$shared/vocab/ggml-vocab-gpt-2.gguf"
expect tokenize_ids 0 "^\[1, 403, 407, 261, 378\]$" -- tokenize -m "$model" -p "Once upon a time" --ids
expect tokenize_vocab_only 0 "15496" -- tokenize -m "$shared/vocab/ggml-vocab-gpt-2.gguf" -p "Hello world" --ids
# Enough text for about ten 128-token windows: the kl and ppl runs below
# dominate this script under the sanitizers.
head -c 6000 "$shared/text/tinystories-valid-sample/tinystories_val.txt" >"$tmp/text.txt"
expect ppl 0 "perplexity: [0-9.]+ \+/- " -- ppl -m "$model" -f "$tmp/text.txt" -c 128 -t 1
expect bench_json 0 "\"tokens_per_second_mean\"" -- bench -m "$model" -p 16 -n 4 -r 1 -o json -t 1
expect convert 0 "wrote" -- convert llama2c "$shared/models/stories260K/stories260K.bin" \
  "$shared/models/stories260K/tok512.bin" -o "$tmp/s.gguf"
cmp -s "$tmp/s.gguf" "$model" || { echo "FAIL convert: output differs from the bundled model"; failures=$((failures + 1)); }

# The same checkpoint as llama.cpp's llama2.c converter lays it out, with
# "no token" ids written as uint32 4294967295: noted, not refused.
"$write_llama_cpp_llama2c" "$model" "$tmp/llama-cpp.gguf" ||
  { echo "FAIL write_llama_cpp_llama2c"; failures=$((failures + 1)); }
expect llama_cpp_info_note 0 "note: tokenizer.ggml.padding_token_id = 4294967295: treated as absent" -- \
  info "$tmp/llama-cpp.gguf"
expect llama_cpp_info_tokenizer 0 "^tokenizer: llama \(pre-tokenizer default\), 512 tokens, BOS 1, EOS 2, unknown 0, BOS added$" -- \
  info "$tmp/llama-cpp.gguf"
expect llama_cpp_run 0 "Once upon a time, there was a little girl named Lily. She loved to play outside in the park" -- \
  run -m "$tmp/llama-cpp.gguf" -p "Once upon a time" -n 40 --temp 0 -t 1
expect llama_cpp_run_note 0 "^note: tokenizer.ggml.seperator_token_id = 4294967295: treated as absent$" -- \
  run -m "$tmp/llama-cpp.gguf" -p "Once upon a time" -n 4 --temp 0 -t 1

# Bad input: clear message, non-zero exit, no crash.
expect unknown_command fail "unknown command 'bogus'" -- bogus
expect unknown_flag fail "not expected: --bogus" -- run -m "$model" --bogus
expect missing_model fail "cannot open '/nonexistent.gguf'" -- run -m /nonexistent.gguf -p hi
expect not_gguf fail "not a GGUF file" -- run -m "$shared/text/README.md" -p hi
head -c 5000 "$model" >"$tmp/truncated.gguf"
expect truncated_model fail "truncated|past the end|extends" -- run -m "$tmp/truncated.gguf" -p hi
expect prompt_too_long fail "prompt has [0-9]+ tokens but the context holds 4" -- \
  run -m "$model" -p "Once upon a time there was a girl" -c 4
expect bad_top_p fail "top-p must be in" -- run -m "$model" -p hi --top-p 3
expect vocab_is_not_model fail "architecture 'gpt2' is not supported" -- \
  run -m "$shared/vocab/ggml-vocab-gpt-2.gguf" -p hi
expect missing_text fail "cannot open" -- ppl -m "$model" -f "$tmp/none.txt"
echo "Once upon a time." >"$tmp/short.txt"
expect short_text fail "fewer than one window" -- ppl -m "$model" -f "$tmp/short.txt" -c 512
expect bad_output fail "xml not in" -- bench -m "$model" -o xml

# eval kl: the f16 cache against the f32 cache over the same windows as ppl.
kl_args=(eval kl -m "$model" -f "$tmp/text.txt" -c 128 -t 1)
expect eval_kl_table 0 "^\| model \| kv \| ctx \| windows \| tokens \| mean KL \| median KL \| p99 KL \| max KL \| top-1 \| ppl f32 \| ppl f16 \| KV B/token \|$" -- \
  "${kl_args[@]}" --kv-codec f16
expect eval_kl_row 0 "^\| stories260K.gguf \| f16 \| 128 \| [0-9]+ \| [0-9]+ \| [0-9.]+e-[0-9]+ ± " -- \
  "${kl_args[@]}" --kv-codec f16
expect eval_kl_progress 0 "windows  mean KL .* top-1 [0-9.]+ %" -- "${kl_args[@]}" --kv-codec f16
expect eval_kl_csv 0 "^stories260K.gguf,f32,\"f16\",128,[0-9]+,[0-9]+,[0-9.e-]+,[0-9.e-]+,[0-9.e-]+,[0-9.e-]+,[0-9.e-]+,[0-9.e-]+,0\.9[0-9]*,[0-9.]+,[0-9.]+,[0-9.]+,[0-9.]+,\"\",prefill,640,640$" -- \
  "${kl_args[@]}" --kv-codec f16 -o csv
expect eval_kl_json 0 "\"p99_kl\": [0-9.e-]+" -- "${kl_args[@]}" --kv-codec f16 -o json
expect eval_kl_identical 0 "^\| stories260K.gguf \| f32 \| 128 \| [0-9]+ \| [0-9]+ \| 0.000e\+00 ± 0.0e\+00 \| 0.000e\+00 \| 0.000e\+00 \| 0.000e\+00 \| 100.00 % \|" -- \
  "${kl_args[@]}" --kv-codec f32
# Its perplexities are those of `kvforge ppl` with each cache.
ppl32=$("$bin" ppl -m "$model" -f "$tmp/text.txt" -c 128 -t 1 --kv-codec f32 2>/dev/null | sed -n 's/^perplexity: \([0-9.]*\) .*/\1/p')
ppl16=$("$bin" ppl -m "$model" -f "$tmp/text.txt" -c 128 -t 1 --kv-codec f16 2>/dev/null | sed -n 's/^perplexity: \([0-9.]*\) .*/\1/p')
expect eval_kl_matches_ppl 0 "% \| ${ppl32:-none} ± [0-9.]+ \| ${ppl16:-none} ± [0-9.]+ \| 640.0 \|$" -- \
  "${kl_args[@]}" --kv-codec f16
expect eval_kl_int8 0 "^\| stories260K.gguf \| k=int8,v=int4h \| 128 \| [0-9]+ \| [0-9]+ \| [0-9.]+e-[0-9]+ ± " -- \
  "${kl_args[@]}" --kv-codec k=int8,v=int4h --chunks 4
expect eval_kl_kv_mem fail "KV (budget|cache memory)" -- "${kl_args[@]}" --kv-mem 10KiB
expect eval_kl_missing_text fail "cannot open" -- eval kl -m "$model" -f "$tmp/none.txt"
expect eval_kl_short_text fail "fewer than one window" -- eval kl -m "$model" -f "$tmp/short.txt" -c 512
: >"$tmp/empty.txt"
expect eval_kl_empty_text fail "has 0 tokens, fewer than one window" -- eval kl -m "$model" -f "$tmp/empty.txt"
expect eval_kl_missing_model fail "cannot open '/nonexistent.gguf'" -- eval kl -m /nonexistent.gguf -f "$tmp/text.txt"
expect eval_kl_unknown_codec fail "int3" -- "${kl_args[@]}" --kv-codec int3
expect eval_kl_unknown_flag fail "not expected: --bogus" -- "${kl_args[@]}" --bogus
expect eval_kl_bad_output fail "xml not in" -- "${kl_args[@]}" -o xml
expect eval_no_subcommand fail "subcommand is required" -- eval
expect eval_kl_no_text fail "--file is required" -- eval kl -m "$model"

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
