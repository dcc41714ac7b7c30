#!/usr/bin/env bash
# Installs the Debian 12 packages kvforge needs, skipping those already present.
# Usage: scripts/install-deps.sh [--with-reference]
#   --with-reference also installs python3-torch and python3-numpy, needed only
#   to regenerate the reference fixtures in tests/reference/.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libhwy-dev libfmt-dev libcli11-dev nlohmann-json3-dev libxxhash-dev libpcre2-dev
  libcpp-httplib-dev libhiredis-dev
  # The Redis tier's tests start their own servers on loopback.
  redis-server redis-tools
)
if [[ "${1:-}" == "--with-reference" ]]; then
  packages+=(python3-torch python3-numpy)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
