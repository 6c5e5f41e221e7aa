#!/usr/bin/env bash
# Builds every libFuzzer target in tests/fuzz with clang (--config=fuzz) and runs each for a
# bounded time on a scratch copy of its committed seed corpus. Fails on any crash, leak,
# sanitizer report or hang (libFuzzer's -timeout). Prints one line per target with the
# executions run, then "N passed, N failed".
#
#   tools/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
tools/setup.sh || exit 1

targets=$(bazel query 'attr(name, "_fuzz$", kind(cc_test, //tests/fuzz:*))' 2>/dev/null)
if [[ -z "$targets" ]]; then
  echo "fuzz: no targets found"
  echo "0 passed, 1 failed"
  exit 1
fi
if ! bazel build --config=fuzz $targets 2>&1 | tail -n 3; then
  echo "0 passed, 1 failed"
  exit 1
fi

passed=0
failed=0
work=$(mktemp -d)
# The fuzz configuration's own output tree (bazel-bin links to whatever was built last).
bin=$(bazel info --config=fuzz bazel-bin 2>/dev/null)
for target in $targets; do
  name=${target##*:}
  corpus="$work/$name"
  mkdir -p "$corpus"
  cp tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
  log="$work/$name.log"
  "$bin/tests/fuzz/$name" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1
  status=$?
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  if [[ $status -eq 0 ]]; then
    passed=$((passed + 1))
    echo "fuzz: $name: ${runs:-?} executions in ${seconds}s, no crash"
  else
    failed=$((failed + 1))
    echo "fuzz: $name FAILED (exit $status); what the target and the sanitizers said:"
    # The target's own diagnosis comes before libFuzzer's stack dump; show both.
    grep -E "^($name:|==[0-9]+==ERROR|SUMMARY:|[a-z/_.]+:[0-9]+:[0-9]+: runtime error)" "$log" | head -n 20 || true
    echo "fuzz: $name: what came just before the crash report:"
    grep -B 8 -m 1 -E "^==[0-9]+== ?ERROR" "$log" | head -n 8 || true
    echo "fuzz: $name: last lines:"
    tail -n 30 "$log"
  fi
done
rm -rf "$work"
echo "${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]
