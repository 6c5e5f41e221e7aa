#!/usr/bin/env bash
# Builds percored (optimized) and runs it with its default services and admin endpoint,
# installing missing packages first. Extra arguments go to percored (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
if ! bazel build --config=opt //tools:percored //tools:percorectl >/tmp/percore-build.log 2>&1; then
  tail -n 30 /tmp/percore-build.log >&2
  echo "run: build failed (full log: /tmp/percore-build.log)" >&2
  exit 1
fi
# The optimized tree itself: bazel-bin points at whichever configuration was built last.
bin=$(bazel info --config=opt bazel-bin 2>/dev/null)
exec "$bin/tools/percored" "$@"
