#!/usr/bin/env bash
# Aggregate decode throughput of kvforge serve at several concurrency levels,
# next to llama.cpp's llama-server on the same GGUF when LLAMA_CPP_BIN names
# a directory holding it (docs/serving.md). Each server is started on a free
# loopback port with room for the largest level, measured with
# bench/serving_throughput.py (the same client for both), then stopped.
#
# Usage:
#   [LLAMA_CPP_BIN=path/to/llama.cpp/build/bin] bench/serving_compare.sh MODEL \
#       [LEVELS] [MAX_TOKENS] [THREADS]
# Defaults: LEVELS 1,4,16,64; MAX_TOKENS 64; THREADS all cores.
# The concurrency-1 row is the engine serving requests one by one.
# KVFORGE_SERVE_ARGS adds flags to kvforge serve (e.g. --no-repack).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 ]]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
model=$1
levels=${2:-1,4,16,64}
max_tokens=${3:-64}
threads=${4:-$(nproc)}
[[ -f "$model" ]] || { echo "error: no model file '$model'" >&2; exit 2; }
[[ -x build/kvforge ]] || { echo "error: build/kvforge is missing (build first)" >&2; exit 2; }
max_level=$(tr ',' '\n' <<<"$levels" | sort -n | tail -1)
ctx=256  # per sequence: about 30 prompt tokens and max_tokens generated
(( max_tokens + 64 <= ctx )) || ctx=$((max_tokens + 64))

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT

wait_healthy() {
  local port=$1
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || { echo "error: the server exited" >&2; return 1; }
    sleep 0.5
  done
  echo "error: the server did not become healthy" >&2
  return 1
}

measure() {
  local label=$1 port=$2
  wait_healthy "$port"
  python3 bench/serving_throughput.py --url "http://127.0.0.1:$port" --concurrency "$levels" \
    --max-tokens "$max_tokens" --label "$label"
  stop_server
  echo
}

echo "model $(basename "$model"), $threads threads, $max_tokens tokens per request, $(date -u +%F)"
echo

port=$(free_port)
build/kvforge serve -m "$model" --port "$port" -t "$threads" -c "$ctx" --parallel "$max_level" \
  --http-threads $((max_level + 8)) --read-timeout 600 --write-timeout 600 \
  ${KVFORGE_SERVE_ARGS:-} >"${TMPDIR:-/tmp}/kvforge-serve-compare.log" 2>&1 &
server_pid=$!
measure "kvforge serve" "$port"

if [[ -n "${LLAMA_CPP_BIN:-}" ]]; then
  port=$(free_port)
  # llama-server divides -c among its slots.
  "$LLAMA_CPP_BIN/llama-server" -m "$model" --port "$port" -t "$threads" \
    -c $((ctx * max_level)) --parallel "$max_level" --no-webui \
    >"${TMPDIR:-/tmp}/llama-server-compare.log" 2>&1 &
  server_pid=$!
  measure "llama-server" "$port"
fi
