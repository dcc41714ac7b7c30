#!/usr/bin/env bash
# Drives `kvforge serve` with the official `openai` npm client
# (openai_client_test.mjs). The client is installed into a temporary
# directory for this run only. Without node and npm, or when the npm
# registry cannot be reached, the test is skipped with a message (exit 77,
# CTest's SKIP_RETURN_CODE).
#
# usage: openai_client_test.sh KVFORGE_BINARY MODEL.gguf
# OPENAI_NPM_SPEC overrides the package spec (default below).
set -u
kvforge=$(realpath "$1")
model=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
spec=${OPENAI_NPM_SPEC:-openai@6}

skip() {
  echo "SKIPPED: $*"
  exit 77
}

command -v node >/dev/null 2>&1 || skip "node is not installed"
command -v npm >/dev/null 2>&1 || skip "npm is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || skip "node $(node --version) is older than 18"

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

cd "$tmp" || exit 1
echo '{"name": "kvforge-openai-client-test", "private": true, "type": "module"}' >package.json
if ! timeout 180 npm install --no-audit --no-fund --loglevel=error "$spec" >npm.log 2>&1; then
  tail -3 npm.log
  skip "could not install $spec from the npm registry"
fi
echo "client: $(node -p 'require("./node_modules/openai/package.json").version' 2>/dev/null)"

"$kvforge" serve -m "$model" --port 0 --parallel 2 -t 2 2>server.log &
server_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' server.log)
  [ -n "$port" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat server.log
    echo "FAIL: the server exited before listening"
    exit 1
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  cat server.log
  echo "FAIL: the server did not start listening in 30 s"
  exit 1
fi
name=$(basename "$model" .gguf)

cp "$here/openai_client_test.mjs" "$tmp/"
timeout 300 node "$tmp/openai_client_test.mjs" "http://127.0.0.1:$port/v1" "$name"
status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log"
  cat server.log
fi
exit "$status"
