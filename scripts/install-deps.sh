#!/usr/bin/env bash
# Installs the Debian 12 packages kvforge needs, skipping those already present.
# Usage: scripts/install-deps.sh [--with-reference] [--with-arm64]
#   --with-reference also installs python3-torch and python3-numpy, needed only
#   to regenerate the reference fixtures in tests/reference/.
#   --with-arm64 also installs the cross compiler, qemu-user and the arm64
#   packages of the libraries (adding arm64 to dpkg's architectures), for
#   scripts/test-arm64.sh.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libhwy-dev libfmt-dev libcli11-dev nlohmann-json3-dev libxxhash-dev libpcre2-dev
  libcpp-httplib-dev libhiredis-dev
  # The Redis tier's tests start their own servers on loopback.
  redis-server redis-tools
  # The server's request fuzz test and the bench/ scripts.
  python3
)
arm64=0
for arg in "$@"; do
  case "$arg" in
    --with-reference) packages+=(python3-torch python3-numpy) ;;
    --with-arm64)
      arm64=1
      packages+=(qemu-user g++-aarch64-linux-gnu)
      for p in libgtest-dev libgmock-dev libhwy-dev libfmt-dev libxxhash-dev libpcre2-dev \
        libhiredis-dev libcpp-httplib-dev; do
        packages+=("$p:arm64")
      done
      ;;
    *) echo "error: unknown option '$arg' (expected --with-reference or --with-arm64)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  if ((arm64)) && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    "${sudo_cmd[@]}" dpkg --add-architecture arm64
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
