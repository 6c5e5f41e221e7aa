#!/usr/bin/env bash
# The two bad-day scenarios of the reliability requirements at full size, against the percored
# binary (one loop, pinned to cpu 0; clients on cpu 1):
#
#  1. slowloris: 1,000 connections each trickle an HTTP request head one byte per second
#     (tools/bench/badday_clients.py) while loadgen drives normal clients at a fixed rate. The
#     normal clients' latency is measured before and during the attack; the slow connections
#     must all be closed by the header deadline (--http_header_timeout, default 30 s) with 408.
#  2. descriptor exhaustion: percored runs under `ulimit -n 256`, serves 8 echo clients at a
#     fixed rate, and takes a flood of 1,000 connection attempts held open for 10 s. The daemon's
#     CPU time in the flood window is compared with a quiet window of the same length; EMFILE
#     events and back-offs come from percorectl; a new connection must be served after the flood.
#
#   tools/bench/badday.sh                      both scenarios (about 2 minutes)
#   tools/bench/badday.sh --scenario slowloris (or emfile)
#   tools/bench/badday.sh --header_timeout 30s the daemon's --http_header_timeout
#   PERCORE_BENCH_BAZEL_FLAGS="..." tools/bench/badday.sh   extra flags for the opt build
#
# Prints a report in Markdown (for tools/bench/RESULTS.md). Exit status 1 if a normal client
# saw an error, a slow connection was not closed by the server, or the daemon stopped serving.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../.."
repo=$(pwd)

scenarios=(slowloris emfile)
header_timeout=30s
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scenario) scenarios=("$2"); shift ;;
    --scenario=*) scenarios=("${1#*=}") ;;
    --header_timeout) header_timeout="$2"; shift ;;
    --header_timeout=*) header_timeout="${1#*=}" ;;
    -h|--help) sed -n '2,20p' "$self"; exit 0 ;;
    *) echo "badday.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

tools/setup.sh --bench >&2
read -r -a extra_flags <<<"${PERCORE_BENCH_BAZEL_FLAGS:-}"
bazel build --config=opt "${extra_flags[@]}" //tools:percored //tools:loadgen //tools:percorectl >&2
bin="$(bazel info --config=opt "${extra_flags[@]}" bazel-bin 2>/dev/null)/tools"
clients="$repo/tools/bench/badday_clients.py"

server_pin=() client_pin=()
if [[ $(nproc) -ge 2 ]]; then server_pin=(taskset -c 0); client_pin=(taskset -c 1); fi
work=$(mktemp -d /tmp/percore-badday.XXXXXX)
daemon_pid=""
failures=0
cleanup() {
  if [[ -n "$daemon_pid" ]]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "badday: $*" >&2; }
fail() { echo "badday: FAILED: $*" >&2; failures=$((failures + 1)); }

# start_daemon LOG NOFILE ARGS...: starts percored (descriptor limit NOFILE, - to inherit), waits for its admin line.
start_daemon() {
  local out="$1" limit="$2"; shift 2
  (if [[ "$limit" != - ]]; then ulimit -n "$limit"; fi; exec "${server_pin[@]}" "$bin/percored" --loops=1 --admin_listen=127.0.0.1:0 "$@") >"$out" 2>&1 &
  daemon_pid=$!
  local tries=0
  until grep -q 'admin listening on' "$out"; do
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$out" >&2; echo "badday: percored died" >&2; exit 1; }
    tries=$((tries + 1)); [[ $tries -lt 200 ]] || { echo "badday: percored did not start" >&2; exit 1; }
    sleep 0.05
  done
}
address() { sed -n "s/^percored: $1 listening on //p" "$2"; }
stop_daemon() {
  kill -TERM "$daemon_pid"
  local rc=0; wait "$daemon_pid" || rc=$?
  daemon_pid=""
  [[ $rc -eq 0 ]] || fail "percored exited $rc on SIGTERM"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, clock ticks
ticks_per_s=$(getconf CLK_TCK)
# stat_json ADMIN: the daemon's stats snapshot as JSON (field names as in the proto).
stat_json() { "$bin/percorectl" --admin="$1" --json stats; }
# json EXPR < JSON: evaluates a Python expression over the parsed object `j`.
json() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
loadgen_row() {  # loadgen JSON -> "req/s | p50 | p99 | p99.9 | max | errors"
  json '"%d | %d | %d | %d | %d | %d" % (float(j["requests_per_s"]), j["latency_us"]["p50"], j["latency_us"]["p99"], j["latency_us"]["p99.9"], j["latency_us"]["max"], j["errors"])'
}

report="$work/report.md"
{
  echo "Run $(date -u +%Y-%m-%d), \`tools/bench/badday.sh\`, $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p')); percored --loops=1 on cpu 0, clients on cpu 1."
  echo
} >"$report"

for scenario in "${scenarios[@]}"; do
  case "$scenario" in
  slowloris)
    log "slowloris: 1,000 connections at 1 byte/s, header timeout $header_timeout"
    start_daemon "$work/slowloris.log" - --listen=http=127.0.0.1:0 --http_header_timeout="$header_timeout"
    http=$(address http "$work/slowloris.log"); admin=$(address admin "$work/slowloris.log")
    normal=("${client_pin[@]}" "$bin/loadgen" --server="$http" --protocol=http --connections=16 --rate=5000 --duration=20s --json)
    t0=$(cpu_ticks "$daemon_pid")
    "${normal[@]}" >"$work/quiet.json" || fail "loadgen (no attack) reported errors"
    t1=$(cpu_ticks "$daemon_pid")
    "${client_pin[@]}" python3 "$clients" slowloris "$http" --connections 1000 --byte_interval 1 --limit 90 >"$work/slow.json" &
    slow_pid=$!
    # The attack is on once all of its connections are open at the daemon.
    until [[ $(stat_json "$admin" | json 'sum(int(l.get("conns_active", 0)) for l in j["loops"])') -ge 1000 ]]; do sleep 0.2; done
    t2=$(cpu_ticks "$daemon_pid")
    "${normal[@]}" >"$work/attack.json" || fail "loadgen (under slowloris) reported errors"
    t3=$(cpu_ticks "$daemon_pid")
    wait "$slow_pid" || fail "slow connections were still open after 90 s"
    closes=$(stat_json "$admin" | json '",".join("%s %s" % (c["reason"], c["count"]) for l in j["loops"] for c in l.get("closed", []) if int(c.get("count", 0)))')
    stop_daemon
    q_req=$(json 'j["requests"]' <"$work/quiet.json"); a_req=$(json 'j["requests"]' <"$work/attack.json")
    {
      echo "### Slowloris (1,000 connections, 1 byte/s each; header timeout $header_timeout)"
      echo
      echo "Normal clients: \`loadgen --protocol=http --connections=16 --rate=5000 --duration=20s\` (open loop, latency from the intended send time)."
      echo
      echo "| normal clients | req/s | p50 µs | p99 µs | p99.9 µs | max µs | errors | daemon CPU µs/request |"
      echo "|---|---|---|---|---|---|---|---|"
      echo "| no attack | $(loadgen_row <"$work/quiet.json") | $(python3 -c "print(round(($t1-$t0)/$ticks_per_s*1e6/$q_req, 2))") |"
      echo "| 1,000 slow connections open | $(loadgen_row <"$work/attack.json") | $(python3 -c "print(round(($t3-$t2)/$ticks_per_s*1e6/$a_req, 2))") |"
      echo
      echo "Slow connections: \`$(cat "$work/slow.json")\`; close reasons counted by the daemon: $closes."
      echo
    } >>"$report"
    [[ $(json 'j["got_408"]' <"$work/slow.json") -eq 1000 ]] || fail "not every slow connection got 408"
    ;;
  emfile)
    log "descriptor exhaustion: ulimit -n 256, 1,000 connection attempts held 10 s"
    start_daemon "$work/emfile.log" 256 --listen=echo=127.0.0.1:0
    echo_addr=$(address echo "$work/emfile.log"); admin=$(address admin "$work/emfile.log")
    "${client_pin[@]}" "$bin/loadgen" --server="$echo_addr" --protocol=echo --connections=8 --rate=2000 --duration=30s --json >"$work/echo.json" &
    load_pid=$!
    sleep 5  # the load settles; then two windows of equal length: quiet, flood
    q0=$(cpu_ticks "$daemon_pid"); sleep 10; q1=$(cpu_ticks "$daemon_pid")
    "${client_pin[@]}" python3 "$clients" flood "$echo_addr" --attempts 1000 --hold 10 >"$work/flood.json"
    f1=$(cpu_ticks "$daemon_pid")
    during=$(stat_json "$admin")
    "${client_pin[@]}" python3 "$clients" probe "$echo_addr" >"$work/probe.json" || fail "no echo after the flood"
    wait "$load_pid" || fail "loadgen (echo during the flood) reported errors"
    stop_daemon
    {
      echo "### Descriptor exhaustion (\`ulimit -n 256\`, 1,000 connection attempts held 10 s)"
      echo
      echo "| | value |"
      echo "|---|---|"
      echo "| daemon CPU, 10 s quiet window (8 echo clients at 2,000 req/s) | $(( (q1 - q0) * 1000 / ticks_per_s )) ms |"
      echo "| daemon CPU, 10 s flood window (same load + the flood) | $(( (f1 - q1) * 1000 / ticks_per_s )) ms |"
      echo "| flood client | \`$(cat "$work/flood.json")\` |"
      echo "| accept errors, back-offs, distributor wake-ups | $(json '"%s; %s back-offs; %s wake-ups" % (", ".join("%s %s" % (e["name"], e["count"]) for e in j["distributor"].get("accept_errors", [])), j["distributor"].get("backoffs", 0), j["distributor"].get("wakeups", 0))' <<<"$during") |"
      echo "| echo clients through it (req/s, p50, p99, p99.9, max µs, errors) | $(loadgen_row <"$work/echo.json") |"
      echo "| a new connection after the flood | \`$(cat "$work/probe.json")\` |"
      echo
    } >>"$report"
    ;;
  *) echo "badday.sh: unknown scenario $scenario" >&2; exit 2 ;;
  esac
done

cat "$report"
if [[ $failures -gt 0 ]]; then echo "badday: $failures check(s) failed" >&2; exit 1; fi
