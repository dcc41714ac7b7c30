#!/usr/bin/env bash
# Two `kvforge serve` processes share prefix KV through one redis-server on
# loopback: the second answers the first's prompt with the same greedy text
# and loads the prefix blocks from Redis (its /metrics say so). Then a
# server with a disk tier is restarted and reuses what it wrote before the
# restart. Skipped (exit 77) when redis-server is not installed; the disk
# part needs nothing and runs first.
#
# usage: tier_servers_test.sh KVFORGE_BINARY MODEL.gguf
set -u
kvforge=$(realpath "$1")
model=$(realpath "$2")
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# Starts a server with the given tier options; sets $port and $server_pid.
start_server() {
  local log=$tmp/server.$RANDOM.log
  "$kvforge" serve -m "$model" --port 0 -t 1 --parallel 2 "$@" >"$log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  port=
  for _ in $(seq 200); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")
    [[ -n $port ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not start:"; cat "$log"
  exit 1
}

stop_server() {  # SIGTERM: a clean stop, queued tier writes drained
  kill -TERM "$1"
  wait "$1" 2>/dev/null
}

# HTTP over bash's /dev/tcp: prints the response body.
http() {
  local method=$1 path=$2 body=${3:-}
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf '%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$method" "$path" "${#body}" "$body" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

prompt="Once upon a time there was a little girl named Lily. She loved to play outside in the sunshine with her friends. One day, she saw a big red ball in the park and she wanted to play with it. Her mom said she could play with the ball if she shared it with"
request="{\"prompt\": \"$prompt\", \"max_tokens\": 24, \"temperature\": 0}"

text_of() { sed -n 's/.*"text":"\([^"]*\)".*/\1/p'; }
metric() { http GET /metrics | awk -v name="$1" 'index($0, name " ") == 1 { print $NF }'; }

# --- Disk: a restart reuses what the last run wrote ---
start_server --kv-tier "disk:$tmp/disk:64MiB"
first=$(http POST /v1/completions "$request" | text_of)
[[ -n $first ]] || fail "disk: no text from the first server"
stop_server "$server_pid"
start_server --kv-tier "disk:$tmp/disk:64MiB"
again=$(http POST /v1/completions "$request" | text_of)
[[ "$again" == "$first" ]] || fail "disk: after the restart '$again' != '$first'"
loaded=$(metric kvforge_tier_blocks_loaded_total)
[[ ${loaded:-0} -gt 0 ]] || fail "disk: the restarted server loaded no blocks ($loaded)"
echo "disk: restarted server loaded $loaded blocks, same text"
stop_server "$server_pid"

# --- Redis: a second instance loads what the first computed ---
if ! command -v redis-server >/dev/null; then
  echo "SKIPPED: redis-server is not installed (scripts/install-deps.sh installs it)"
  [[ $failures -eq 0 ]] && exit 77
  exit 1
fi
redis_port=$((20000 + RANDOM % 20000))
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  --daemonize no >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
  sleep 0.05
done
tier="redis://127.0.0.1:$redis_port/servers-test:"
start_server --kv-tier "$tier"
port_a=$port
a=$(http POST /v1/completions "$request" | text_of)
start_server --kv-tier "$tier"
b=$(http POST /v1/completions "$request" | text_of)
[[ -n $a && "$b" == "$a" ]] || fail "redis: second server '$b' != first '$a'"
loaded=$(metric kvforge_tier_blocks_loaded_total)
[[ ${loaded:-0} -gt 0 ]] || fail "redis: the second server loaded no blocks ($loaded)"
port=$port_a
up=$(metric 'kvforge_tier_up{tier="'"$tier"'"}')
[[ $up == 1 ]] || fail "redis: the first server reports the tier down ($up)"
echo "redis: second server loaded $loaded blocks, same text"

[[ $failures -eq 0 ]]
