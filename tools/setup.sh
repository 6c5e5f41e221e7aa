#!/usr/bin/env bash
# Installs the Debian packages percore needs to build, test and run. Idempotent: when every
# package is already installed it only asks dpkg and returns (well under a second).
#
#   tools/setup.sh           build + test + run
#   tools/setup.sh --bench   also the peers and clients the benchmarks compare against
set -euo pipefail

packages=(
  # Build: Bazel 4 with Debian's rules, and the libraries percore links.
  bazel-bootstrap bazel-rules-cc bazel-rules-java pkg-config g++
  libabsl-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libgtest-dev libgmock-dev libbenchmark-dev
  # The io_uring back end.
  liburing-dev
  # TLS (OpenSSL 3), and the openssl client the TLS tests drive.
  libssl-dev openssl
  # Sanitizers and fuzzing (clang's runtimes).
  clang libclang-rt-14-dev
  # Real clients the interop tests drive.
  curl wrk netcat-openbsd redis-tools libmemcached-tools
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(nginx-light memcached redis-server gnuplot-nox hyperfine valgrind python3 python3-grpcio
    libjemalloc2 libtcmalloc-minimal4)
fi

missing=()
for p in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; else sudo=""; fi
export DEBIAN_FRONTEND=noninteractive
# Services pulled in by the bench peers must not start on install: the benchmarks start their own.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/percore-setup.log 2>&1; then
  $sudo apt-get update -q >>/tmp/percore-setup.log 2>&1
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/percore-setup.log 2>&1 || {
    echo "setup: apt-get install failed; see /tmp/percore-setup.log" >&2
    tail -20 /tmp/percore-setup.log >&2
    exit 1
  }
fi
echo "setup: done" >&2
