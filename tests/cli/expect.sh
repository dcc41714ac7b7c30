# Sourced by the command-line tests. Needs $bin (the kvforge binary) and
# $tmp (a scratch directory); counts into $passes and $failures.
#
# expect NAME EXPECTED_STATUS REGEX -- ARGS...
#   Runs "$bin ARGS...", checks its exit status (a number, or "fail": 1-2 for
#   our errors, 100-127 for the option parser's; a signal, 128+N, never
#   passes) and that stdout or stderr matches the extended regex.
expect() {
  local name=$1 want=$2 regex=$3
  shift 4
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [[ "$want" == "fail" ]]; then
    [[ $got -eq 1 || $got -eq 2 || ($got -ge 100 && $got -lt 128) ]] || {
      echo "FAIL $name: exit $got, expected a clean failure"; failures=$((failures + 1)); return; }
  elif [[ $got -ne $want ]]; then
    echo "FAIL $name: exit $got, expected $want"; cat "$tmp/err"; failures=$((failures + 1)); return
  fi
  if ! grep -qE -- "$regex" "$tmp/out" "$tmp/err"; then
    echo "FAIL $name: output does not match /$regex/"; head -5 "$tmp/out" "$tmp/err"
    failures=$((failures + 1)); return
  fi
  passes=$((passes + 1))
}
