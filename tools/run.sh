#!/usr/bin/env bash
# Builds percored (optimized) and runs it with its default services and admin endpoint,
# installing missing packages first. Extra arguments go to percored (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
bazel build --config=opt //tools:percored //tools:percorectl 2>&1 | grep -vE '^(INFO|Loading|Analyzing|\[)' || true
exec bazel-bin/tools/percored "$@"
