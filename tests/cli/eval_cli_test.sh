#!/usr/bin/env bash
# Usage: eval_cli_test.sh KVFORGE_BINARY SOURCE_DIR SHARED_DIR
# kvforge eval with compression: eval kl with a press (decode protocol),
# eval passkey and eval matrix on stories260K with short contexts; their
# files (SVG, CSV, JSON) and bad arguments (one-line error, non-zero exit,
# never a signal).
set -u
bin=$1
src=$2
shared=$3
model="$src/models/stories260K.gguf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
passes=0

source "$(dirname "$0")/expect.sh"

# Checks that a file parses as XML and has N elements of class CLASS, with
# python3 when there is one (the unit tests check the same with their own
# reader).
xml_count() {
  local name=$1 file=$2 cls=$3 want=$4
  command -v python3 >/dev/null || { passes=$((passes + 1)); return; }
  local got
  got=$(python3 -c "import sys, xml.etree.ElementTree as E
print(sum(1 for e in E.parse(sys.argv[1]).iter() if e.get('class') == sys.argv[2]))" "$file" "$cls" 2>&1)
  if [[ "$got" == "$want" ]]; then passes=$((passes + 1)); else
    echo "FAIL $name: $got elements of class $cls in $file, expected $want"; failures=$((failures + 1)); fi
}

head -c 30000 "$shared/text/tinystories-valid-sample/tinystories_val.txt" >"$tmp/text.txt"
kl_args=(eval kl -m "$model" -f "$tmp/text.txt" -c 128 --chunks 2 -t 1)

# eval kl with a press: the decode protocol; at full budget nothing changes.
expect kl_press_full 0 "^\| stories260K.gguf \| f32 \+ snapkv:ratio=1 \| 128 \| 2 \| 126 \| 0.000e\+00 ± 0.0e\+00 \| 0.000e\+00 \| 0.000e\+00 \| 0.000e\+00 \| 100.00 % \|" -- \
  "${kl_args[@]}" --kv-codec f32 --press snapkv:ratio=1
expect kl_press_protocol 0 "first half a prompt, second half decoded token by token" -- \
  "${kl_args[@]}" --press h2o:ratio=0.5
# The press acts: of a 64-token prompt, the 4 sinks (one page of 16 rows)
# and the newest 32 positions (two blocks) stay: 48/64 of f16's 640 bytes.
expect kl_press_csv 0 ",\"h2o:ratio=0.5\",decode,480,[0-9.]+$" -- "${kl_args[@]}" --press h2o:ratio=0.5 -o csv
expect kl_press_json 0 "\"protocol\": \"decode\"" -- "${kl_args[@]}" --press-layers "1-:streaming:ratio=0.5" -o json
expect kl_protocol_forced 0 ",\"\",decode,640,[0-9.]+$" -- "${kl_args[@]}" --protocol decode -o csv
expect kl_press_none_is_prefill 0 ",\"\",prefill,640,640$" -- "${kl_args[@]}" --press none -o csv
# Selection acts only in decode steps: the decode protocol, and with 32 of
# up to 127 tokens read the KL is far above f16's alone (about 1e-6).
expect kl_select_decodes 0 "\"f16\",128,2,126,0\.0[0-9]+,.*,\"select quest:tokens=32:window=8:sinks=4\",decode," -- \
  "${kl_args[@]}" --select quest:tokens=32:window=8:sinks=4 -o csv
expect kl_bad_press fail "unknown press 'bogus'" -- "${kl_args[@]}" --press bogus:ratio=0.5
expect kl_bad_ratio fail "ratio" -- "${kl_args[@]}" --press snapkv:ratio=2
expect kl_bad_protocol fail "protocol" -- "${kl_args[@]}" --protocol sideways
[[ $(wc -l <"$tmp/err") -le 2 ]] || { echo "FAIL kl_bad_protocol: long error"; failures=$((failures + 1)); }

# eval passkey: tables, CSV, JSON and the heatmap.
pk_args=(eval passkey -m "$model" --lengths 160,256 --depths 0,50,100 --trials 2 -t 1)
expect passkey_table 0 "^\| depth \\\\ length \| 160 \| 256 \|$" -- "${pk_args[@]}" --press snapkv:ratio=0.5 --svg "$tmp/pk.svg"
grep -qE "^\| 50 % \| [0-9]+ % \([0-9]+ %\) \| [0-9]+ % \([0-9]+ %\) \|$" "$tmp/out" ||
  { echo "FAIL passkey_table: no accuracy row"; failures=$((failures + 1)); }
grep -q "Same answer tokens as the f32 cache" "$tmp/out" ||
  { echo "FAIL passkey_table: no agreement table"; failures=$((failures + 1)); }
xml_count passkey_svg "$tmp/pk.svg" cell 12
expect passkey_identical_csv 0 "^stories260K.gguf,\"f32\",256,100,2,[0-9.]+,[0-9.]+,1,[0-9.]+$" -- \
  "${pk_args[@]}" --kv-codec f32 -o csv
expect passkey_json 0 "\"agreement\": " -- "${pk_args[@]}" -o json
printf 'The quick brown fox jumps over the lazy dog. ' >"$tmp/filler.txt"
expect passkey_filler 0 "^\| 0 % \|" -- "${pk_args[@]}" --filler "$tmp/filler.txt"
expect passkey_too_short fail "no room for filler" -- eval passkey -m "$model" --lengths 40 --trials 1
expect passkey_bad_length fail "--lengths: 'x' is not a prompt length" -- eval passkey -m "$model" --lengths 256,x
expect passkey_bad_depth fail "--depths: '120'" -- eval passkey -m "$model" --depths 0,120
expect passkey_empty_list fail "--lengths has an empty entry" -- eval passkey -m "$model" --lengths 256,,512
expect passkey_bad_trials fail "trials" -- eval passkey -m "$model" --trials 0
expect passkey_small_ctx fail "-c 100 is too small" -- eval passkey -m "$model" --lengths 256 -c 100
expect passkey_missing_filler fail "cannot open" -- eval passkey -m "$model" --filler "$tmp/none.txt"
: >"$tmp/empty.txt"
expect passkey_empty_filler fail "filler text has no tokens" -- eval passkey -m "$model" --filler "$tmp/empty.txt"
expect passkey_bad_svg fail "cannot write" -- eval passkey -m "$model" --lengths 256 --depths 50 --trials 1 -t 1 \
  --svg "$tmp/no/dir/x.svg"

# eval matrix: every file written, rows as the grid says.
mx_args=(eval matrix -m "$model" -f "$tmp/text.txt" -c 128 --chunks 1 -t 1)
expect matrix 0 "^\| \`k=int8,v=int4h\` \| \`snapkv:ratio=0.5\` \| 0.5 \|" -- "${mx_args[@]}" \
  --codecs f32,k=int8,v=int4h --presses none,snapkv,streaming:ratio=0.25 --budgets 0.5,0.25 -o "$tmp/mx"
for f in matrix.md matrix.csv matrix.json fidelity.svg; do
  [[ -s "$tmp/mx/$f" ]] || { echo "FAIL matrix: no $f"; failures=$((failures + 1)); }
done
# The CSV columns, in order (the docs and scripts read them by name).
want_cols="model,codec,press,budget,press_spec,protocol,n_ctx,windows,tokens,mean_kl,mean_kl_stderr,median_kl,p99_kl,max_kl,top1_agreement,ppl_reference,ppl_candidate,kv_bytes_per_token_reference,kv_bytes_per_token_context,kv_bytes_per_token_scored"
[[ $(head -1 "$tmp/mx/matrix.csv") == "$want_cols" ]] ||
  { echo "FAIL matrix: CSV header is $(head -1 "$tmp/mx/matrix.csv")"; failures=$((failures + 1)); }
# 2 codecs x (none + snapkv at 2 budgets + streaming as given) = 8 rows.
[[ $(($(wc -l <"$tmp/mx/matrix.csv") - 1)) -eq 8 ]] ||
  { echo "FAIL matrix: $(wc -l <"$tmp/mx/matrix.csv") CSV lines"; failures=$((failures + 1)); }
grep -qE "^\| \`f32\` \| \`none\` \| 1 \| [0-9.]+ \| 100.0 % \| 0.000e\+00 ± 0.0e\+00 \| 0.000e\+00 \| 100.00 % \|" "$tmp/mx/matrix.md" ||
  { echo "FAIL matrix: f32 none row is not exact"; failures=$((failures + 1)); }
# The presses act: the 64-token prompt keeps sinks and window, 75 % of it.
grep -qE "^\| \`f32\` \| \`snapkv:ratio=0.5\` \| 0.5 \| 960.0 \| 75.0 % \| [0-9.]+e-[0-9]+ ± " "$tmp/mx/matrix.md" ||
  { echo "FAIL matrix: the snapkv row did not press"; failures=$((failures + 1)); }
xml_count matrix_svg "$tmp/mx/fidelity.svg" point 16
# The default press list is every press there is, picked up by name.
expect matrix_default_presses 0 "\`random:ratio=0.5\`" -- "${mx_args[@]}" --codecs f16 --budgets 0.5 -o "$tmp/mx2"
expect matrix_bad_press fail "f16 \+ bogus:ratio=0.5: .*unknown press 'bogus'" -- "${mx_args[@]}" \
  --codecs f16 --presses bogus --budgets 0.5 -o "$tmp/mx3"
expect matrix_bad_codec fail "int3" -- "${mx_args[@]}" --codecs f16,int3 --presses none -o "$tmp/mx3"
expect matrix_bad_budget fail "--budgets: '1.5' is not a fraction" -- "${mx_args[@]}" --budgets 0.5,1.5 -o "$tmp/mx3"
expect matrix_no_budget fail "--budgets is empty" -- "${mx_args[@]}" --presses snapkv --budgets "" -o "$tmp/mx3"
expect matrix_duplicate fail "listed twice" -- "${mx_args[@]}" --codecs f16,f16 -o "$tmp/mx3"
expect matrix_kv_codec fail "--kv-codec is not used here" -- "${mx_args[@]}" --kv-codec int8 -o "$tmp/mx3"
expect matrix_no_dir fail "--output-dir is required" -- eval matrix -m "$model" -f "$tmp/text.txt"
printf 'x' >"$tmp/file"
expect matrix_dir_is_file fail "cannot create the output directory" -- "${mx_args[@]}" -o "$tmp/file/sub"
echo "Once upon a time." >"$tmp/short.txt"
expect matrix_short_text fail "fewer than one window" -- eval matrix -m "$model" -f "$tmp/short.txt" -c 128 \
  --chunks 1 -t 1 --presses none -o "$tmp/mx3"

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
