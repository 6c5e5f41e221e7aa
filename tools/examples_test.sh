#!/usr/bin/env bash
# Builds and tests examples/, a separate Bazel workspace that uses percore as an outside project
# would (@percore//:framework), so that the public targets cannot stop working for one. It has
# its own Bazel server and output base.
#
#   tools/examples_test.sh                 plain build
#   tools/examples_test.sh --config=asan   (or tsan, ubsan; any bazel test flags pass through)
#
# Ends with one line "N passed, N failed" counting test targets, as tools/test.sh does.
exec "$(dirname "$0")/test.sh" --workspace=examples "$@"
