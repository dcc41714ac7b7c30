#!/usr/bin/env bash
# Time to first token of a long shared prefix by where its KV is: absent,
# in the pool, on disk (a restart), in Redis (filled by another engine)
# (docs/tiers.md). Runs build/bench/kvforge_tier_ttft once per tier, each on
# a fresh store: a new directory, a Redis server on a free loopback port
# started here (skipped with a message when redis-server is missing).
#
# Usage: bench/tier_ttft.sh MODEL [PREFIX_TOKENS] [THREADS] [LOAD] [KV_MEM]
# Defaults: 4096 tokens, all cores, load policy auto, the engine's budget.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 ]]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
model=$1
prefix=${2:-4096}
threads=${3:-$(nproc)}
load=${4:-auto}
mem_args=()
[[ -n ${5:-} ]] && mem_args=(--kv-mem "$5")
bench=build/bench/kvforge_tier_ttft
text=../shared/text/wikitext-2/$(ls ../shared/text/wikitext-2 | grep -v README | head -1)
[[ -x $bench ]] || { echo "error: $bench is missing (build with benchmarks)" >&2; exit 2; }
[[ -f $model ]] || { echo "error: no model file '$model'" >&2; exit 2; }

work=$(mktemp -d)
redis_pid=
cleanup() {
  [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "## disk"
"$bench" -m "$model" --tier "disk:$work/disk:8GiB" --text "$text" --prefix-tokens "$prefix" \
  -t "$threads" --load "$load" "${mem_args[@]}"

echo
echo "## redis"
if ! command -v redis-server >/dev/null; then
  echo "redis-server is not installed: the Redis row is skipped"
  exit 0
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 16379)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --maxmemory 8gb --maxmemory-policy allkeys-lru --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
  redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
  sleep 0.05
done
"$bench" -m "$model" --tier "redis://127.0.0.1:$port/bench-$$:" --text "$text" \
  --prefix-tokens "$prefix" -t "$threads" --load "$load" "${mem_args[@]}"
