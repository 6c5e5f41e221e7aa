#!/usr/bin/env bash
# Instructions per request of percored, counted by callgrind: percored runs under
# `valgrind --tool=callgrind` with one loop, loadgen sends N requests over one connection, and
# the instruction count (Ir, every thread) is read from callgrind's output when percored exits.
# Two runs, with N1 and N2 requests, and (Ir2 - Ir1) / (N2 - N1) is the figure: start-up,
# connection set-up and shutdown cancel out. The admin endpoint is off: gRPC's threads, whose
# mutexes spin for as long as valgrind's serialised scheduling makes them wait, added up to
# ±50 instructions per request of noise. Instruction counts do not depend on machine load,
# so this is the repeatable cost figure (perf counters are not available on these machines).
#
#   tools/bench/callgrind.sh                 echo, and http / memcache get / resp get, set and
#                                            pipelined get when percored has them
#   tools/bench/callgrind.sh --quick         fewer requests
#   tools/bench/callgrind.sh --bin DIR --tsv FILE --commands FILE
#                                            (how compare.sh calls it: prebuilt binaries in DIR,
#                                            rows appended to FILE, commands logged to FILE)
#   tools/bench/callgrind.sh --backend poll  the back end percored runs (default epoll: valgrind
#                                            cannot follow io_uring, whose kernel side writes
#                                            the process's memory without a system call)
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../.."

n1=2000
n2=12000
bin=""
tsv=""
commands=/dev/null
backend=epoll
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) n1=1000; n2=5000 ;;
    --bin) bin="$2"; shift ;;
    --tsv) tsv="$2"; shift ;;
    --commands) commands="$2"; shift ;;
    --backend) backend="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$self"; exit 0 ;;
    *) echo "callgrind.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed (tools/setup.sh --bench)" >&2; exit 1; }
work=$(mktemp -d /tmp/percore-callgrind.XXXXXX)
if [[ -z "$bin" ]]; then
  read -r -a extra_flags <<<"${PERCORE_BENCH_BAZEL_FLAGS:-}"
  if ! bazel build --config=opt "${extra_flags[@]}" //tools:percored //tools:loadgen >"$work/build.log" 2>&1; then
    grep -E '^(ERROR|FAILED)|error:' "$work/build.log" | head -20 >&2
    exit 1
  fi
  opt_bin=$(bazel info --config=opt "${extra_flags[@]}" bazel-bin 2>/dev/null)
  bin="$work"
  cp "$opt_bin/tools/percored" "$opt_bin/tools/loadgen" "$bin/"
fi
services=$({ "$bin/percored" --helpfull 2>&1 || true; } | tr -s '\n ' '  ' | sed -n 's/.*Services: \([a-z, ]*\)\..*/\1/p')

port=17931
pid=""
trap '[[ -n "$pid" ]] && kill "$pid" 2>/dev/null; true' EXIT

# instructions SERVICE REQUESTS LOADGEN_FLAGS...: Ir of a whole percored run serving REQUESTS.
instructions() {
  local service=$1 requests=$2; shift 2
  local out="$work/callgrind.$service.$requests.out" tries=0
  local server=(valgrind --tool=callgrind --callgrind-out-file="$out" "$bin/percored" --loops=1 --backend="$backend"
                --listen="$service=127.0.0.1:$port" --admin_listen= --drain_timeout=1s)
  local client=("$bin/loadgen" --server="127.0.0.1:$port" --protocol="$service" --connections=1 --depth=1
                --requests="$requests" --timeout=60s "$@")
  echo "${server[*]}" >>"$commands"
  echo "${client[*]}" >>"$commands"
  "${server[@]}" >"$work/server.log" 2>&1 &
  pid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    tries=$((tries + 1))
    if [[ $tries -gt 1200 ]] || ! kill -0 "$pid" 2>/dev/null; then
      echo "callgrind.sh: percored did not start under valgrind" >&2; cat "$work/server.log" >&2; return 1
    fi
    sleep 0.05
  done
  if ! "${client[@]}" >"$work/client.log" 2>&1; then
    echo "callgrind.sh: loadgen failed:" >&2; cat "$work/client.log" >&2
  fi
  kill -INT "$pid"
  wait "$pid" || true
  pid=""
  sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$out" | head -1
}

measure() {  # measure LABEL SERVICE LOADGEN_FLAGS...
  local label=$1 service=$2; shift 2
  local ir1 ir2 per
  ir1=$(instructions "$service" "$n1" "$@")
  ir2=$(instructions "$service" "$n2" "$@")
  per=$(awk -v a="$ir1" -v b="$ir2" -v n1="$n1" -v n2="$n2" 'BEGIN {printf "%.0f", (b - a) / (n2 - n1)}')
  echo "callgrind: $label: $ir1 Ir for $n1 requests, $ir2 Ir for $n2: $per instructions per request" >&2
  if [[ -n "$tsv" ]]; then printf '%s\t%s\t%s\n' "$label" "$n1 → $n2" "$per" >>"$tsv"; fi
}

has() { [[ ", $services," == *", $1,"* ]]; }
measure "echo 64 B" echo --message_size=64
if has http; then measure "http plaintext" http; else echo "callgrind.sh: percored has no http service yet; skipped" >&2; fi
if has memcache; then
  measure "memcache get" memcache --get_ratio=1 --preload --keys=1000 --key_size=32 --value_size=100
else
  echo "callgrind.sh: percored has no memcache service yet; skipped" >&2
fi
if has resp; then
  measure "resp get" resp --get_ratio=1 --preload --keys=1000 --key_size=32 --value_size=100
  measure "resp set" resp --get_ratio=0 --keys=1000 --key_size=32 --value_size=100
  measure "resp get, pipelined x16" resp --depth=16 --get_ratio=1 --preload --keys=1000 --key_size=32 --value_size=100
else
  echo "callgrind.sh: percored has no resp service yet; skipped" >&2
fi
rm -rf "$work"
