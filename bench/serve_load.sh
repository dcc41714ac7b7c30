#!/usr/bin/env bash
# Load test of `kvforge serve` on loopback: for each client count, N
# clients send streamed completions back to back for a fixed time
# (bench/serve_load.cpp); prints throughput, TTFT and TPOT percentiles, and
# checks that every KV block is back in the pool afterwards.
#
# Usage: bench/serve_load.sh [model=models/stories260K.gguf] [clients="1 4 16 64"]
#                            [seconds=20] [max_tokens=64]
# Environment: KVFORGE_SERVE_ARGS (default "-t 2 --parallel 16") for the server.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/stories260K.gguf}
clients=${2:-"1 4 16 64"}
seconds=${3:-20}
max_tokens=${4:-64}
serve_args=${KVFORGE_SERVE_ARGS:-"-t 2 --parallel 16"}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKVFORGE_BUILD_BENCH=ON >/dev/null
cmake --build build --target kvforge kvforge_serve_load -j"$(nproc)" >/dev/null

log=$(mktemp)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -f "$log"
}
trap cleanup EXIT
# shellcheck disable=SC2086
./build/kvforge serve -m "$model" --port 0 --http-threads 256 $serve_args 2>"$log" &
server_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "server did not start" >&2; exit 1; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; commit $(git rev-parse --short HEAD)"
head -1 "$log"
status=0
for n in $clients; do
  echo "--- $n clients"
  ./build/bench/kvforge_serve_load "$port" "$n" "$seconds" "$max_tokens" || status=1
done
exit $status
