#!/usr/bin/env bash
# Builds and tests examples/, a separate Bazel workspace that uses percore as an outside project
# would (@percore//:framework), so that the public targets cannot stop working for one.
#
#   tools/examples_test.sh                 plain build
#   tools/examples_test.sh --config=asan   (or tsan, ubsan; any bazel test flags pass through)
#
# Ends with one line "N passed, N failed" counting test targets, as tools/test.sh does.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || exit 1

log=$(mktemp)
# Its own workspace, so its own Bazel server and output base.
(cd examples && bazel test //... "$@") 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|FAILED TO BUILD)' "$log")
if [[ $status -ne 0 && $failed -eq 0 ]]; then
  failed=1  # the build itself failed before any test ran
fi
rm -f "$log"
echo "${passed} passed, ${failed} failed"
[[ $status -eq 0 && $failed -eq 0 ]]
