#!/usr/bin/env bash
# Runs the whole percore test suite with Bazel, installing missing packages first.
#
#   tools/test.sh                   plain build
#   tools/test.sh --config=asan     (or tsan, ubsan; any bazel test flags pass through)
#   tools/test.sh --workspace=DIR   the same in another workspace of this repository
#                                   (tools/examples_test.sh: examples/)
#
# Ends with one line "N passed, N failed" counting test targets.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || exit 1

workspace=.
if [[ "${1:-}" == --workspace=* ]]; then
  workspace="${1#--workspace=}"
  shift
fi

filters=()
for arg in "$@"; do
  # gRPC from Debian is not built with TSan; tests tagged no_tsan exercise it (see their BUILD).
  [[ "$arg" == "--config=tsan" ]] && filters=(--test_tag_filters=-no_tsan)
done

log=$(mktemp)
(cd "$workspace" && bazel test //... "${filters[@]}" "$@") 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Bazel's summary names each test target with its outcome; count those lines.
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|FAILED TO BUILD)' "$log")
if [[ $status -ne 0 && $failed -eq 0 ]]; then
  failed=1  # the build itself failed before any test ran
fi
rm -f "$log"
echo "${passed} passed, ${failed} failed"
[[ $status -eq 0 && $failed -eq 0 ]]
