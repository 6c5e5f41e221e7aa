#!/usr/bin/env bash
# Rebalancing a skewed load: percored with 4 loops, 4 heavy pipelining echo connections all put
# on loop 0, and 100 light rate-limited connections spread over every loop as they arrive. The
# same scenario runs with --rebalance=load and with --rebalance=off; every 250 ms the script
# records each loop's load (load_permille from `percorectl --json stats`) and the echo
# service's request counter, for about 10 s. It reports, per run: when the busiest loop's load
# over the least loaded's first came within 1.25 and whether it stayed there, the heavy
# clients' throughput, the rebalancer's counters and where the heavy connections ended; and it
# draws the per-loop load over time for every run (gnuplot).
#
#   tools/bench/rebalance.sh                  one round (load, then off), 10 s of samples each
#   tools/bench/rebalance.sh --rounds 2       more rounds, interleaved: load, off, load, off
#   tools/bench/rebalance.sh --seconds 15     sample for this long
#   tools/bench/rebalance.sh --bin DIR        prebuilt percored, percorectl, loadgen in DIR
#                                             (else bazel build --config=opt)
#   tools/bench/rebalance.sh --chart FILE     the chart's PNG (default tools/bench/rebalance.png)
#   tools/bench/rebalance.sh --pin            percored --pin (loops 0..3 on cpus 0,1,0,1)
#
# The Markdown section goes to stdout; samples and client output stay in a temporary directory
# (named on stderr).
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../.."
repo=$(pwd)
export LC_ALL=C  # join and sort must agree on the order of peer addresses

rounds=1
seconds=10
bin=""
chart="$repo/tools/bench/rebalance.png"
pin=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --bin) bin="$2"; shift ;;
    --chart) chart="$2"; shift ;;
    --pin) pin=(--pin) ;;
    -h|--help) sed -n '2,20p' "$self"; exit 0 ;;
    *) echo "rebalance.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

LOOPS=4
HEAVY_CONNECTIONS=4
HEAVY_DEPTH=16
MESSAGE_SIZE=64  # echo bytes per request: the heavy connections' bytes over this are requests
LIGHT_CONNECTIONS=100
LIGHT_RATE=2000  # requests/s over all the light connections: 20/s each
SAMPLE_MS=250
work=$(mktemp -d /tmp/percore-rebalance.XXXXXX)
server_pid="" heavy_pid="" light_pid=""
log() { echo "rebalance.sh: $*" >&2; }
stop_pid() { [[ -n "$1" ]] && { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; return 0; }
cleanup() { stop_pid "$light_pid"; stop_pid "$heavy_pid"; stop_pid "$server_pid"; }
trap cleanup EXIT
log "work directory $work"

if [[ -z "$bin" ]]; then
  log "building percored, percorectl, loadgen (--config=opt)"
  bazel build --config=opt //tools:percored //tools:percorectl //tools:loadgen >"$work/build.log" 2>&1 ||
    { tail -20 "$work/build.log" >&2; exit 1; }
  bin="$work/bin"
  mkdir -p "$bin"
  # Copies: another build may repoint bazel-bin while this runs.
  opt_bin=$(bazel info --config=opt bazel-bin 2>/dev/null)
  cp "$opt_bin/tools/percored" "$opt_bin/tools/percorectl" "$opt_bin/tools/loadgen" "$bin/"
fi
built_commit=$(git rev-parse --short HEAD)
ulimit -n "$(ulimit -Hn)"

admin=""
ctl() { "$bin/percorectl" --admin="$admin" --timeout=2s "$@"; }

# start_server RUN MODE: percored on ports the kernel picks; sets server_pid, port, admin.
start_server() {
  local out="$work/server-$1.log"
  : >"$out"  # exists before the daemon starts, so the wait below never reads an older file
  "$bin/percored" --loops=$LOOPS --listen=echo=127.0.0.1:0 --admin_listen=127.0.0.1:0 --drain_timeout=1s \
    --rebalance="$2" ${pin[@]+"${pin[@]}"} >>"$out" 2>&1 &
  server_pid=$!
  local tries=0
  until grep -q 'admin listening on' "$out"; do
    tries=$((tries + 1))
    if [[ $tries -gt 200 ]] || ! kill -0 "$server_pid" 2>/dev/null; then
      log "percored did not start"; cat "$out" >&2; exit 1
    fi
    sleep 0.05
  done
  port=$(sed -n 's/.*echo listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
  admin=$(sed -n 's/.*admin listening on \([0-9.:]*\).*/\1/p' "$out")
}

# Connections of the echo service, one per line: id, loop, peer, bytes received so far.
conns() {
  ctl --json conns --service echo | python3 -c '
import json, sys
for line in sys.stdin:
    for c in json.loads(line).get("connections", []):
        print(c["id"], c["loop"], c["peer"], c["bytes_in"])'
}

wait_conns() {  # wait_conns N: until the echo service has N connections
  local tries=0
  until [[ $(conns | wc -l) -ge $1 ]]; do
    tries=$((tries + 1))
    if [[ $tries -gt 200 ]]; then log "only $(conns | wc -l) of $1 connections arrived"; exit 1; fi
    sleep 0.05
  done
}

rows="$work/samples.tsv"  # run, mode, t (s), loop, load_permille, max/min of that sample
summary="$work/summary.tsv"
: >"$rows"; : >"$summary"
commands="$work/commands.txt"
: >"$commands"

# run_one RUN MODE: one scenario from start to end.
run_one() {
  local run=$1 mode=$2
  start_server "$run" "$mode"
  echo "percored --loops=$LOOPS --listen=echo=127.0.0.1:0 --admin_listen=127.0.0.1:0 --drain_timeout=1s --rebalance=$mode ${pin[*]}" >>"$commands"
  # The clients outlast the samples: under load each admin call takes a while, and setting the
  # scenario up (drains, listings) takes a few of them before the first sample.
  local length=$((seconds + 8))
  # Light connections first: they arrive while every loop takes connections, so they spread.
  local light=(--server="127.0.0.1:$port" --protocol=echo --connections=$LIGHT_CONNECTIONS --rate=$LIGHT_RATE
               --message_size=$MESSAGE_SIZE --duration="$((length + 5))s" --json)
  echo "loadgen ${light[*]}" | sed "s/127.0.0.1:$port/127.0.0.1:PORT/" >>"$commands"
  "$bin/loadgen" "${light[@]}" >"$work/light-$run.json" 2>&1 &
  light_pid=$!
  wait_conns $LIGHT_CONNECTIONS
  # The heavy connections arrive while loops 1..3 are drained (handed no new connections), so
  # all four land on loop 0; then the loops take connections again.
  local l
  for l in $(seq 1 $((LOOPS - 1))); do ctl drain "$l" >/dev/null; done
  local heavy=(--server="127.0.0.1:$port" --protocol=echo --connections=$HEAVY_CONNECTIONS --depth=$HEAVY_DEPTH
               --message_size=$MESSAGE_SIZE --duration="${length}s" --json)
  echo "loadgen ${heavy[*]}" | sed "s/127.0.0.1:$port/127.0.0.1:PORT/" >>"$commands"
  conns | awk '{print $3}' | sort >"$work/light-peers-$run.txt"
  "$bin/loadgen" "${heavy[@]}" >"$work/heavy-$run.json" 2>&1 &
  heavy_pid=$!
  wait_conns $((LIGHT_CONNECTIONS + HEAVY_CONNECTIONS))
  for l in $(seq 1 $((LOOPS - 1))); do ctl resume "$l" >/dev/null; done
  date +%s%N >"$work/heavy-start-$run.time"
  conns | sort -k3 | join -1 3 -2 1 -v 1 - "$work/light-peers-$run.txt" >"$work/heavy-start-$run.txt" || true
  log "run $run ($mode): heavy connections on loops $(awk '{printf "%s ", $3}' "$work/heavy-start-$run.txt")"

  # Samples: one stats snapshot every SAMPLE_MS, on a fixed schedule from t0.
  local t0 next now i=0 samples=$((seconds * 1000 / SAMPLE_MS))
  t0=$(date +%s%N)
  while [[ $i -le $samples ]]; do
    ctl --json stats >>"$work/stats-$run.jsonl" || log "run $run: a stats call failed"
    i=$((i + 1))
    next=$((t0 + i * SAMPLE_MS * 1000000))
    now=$(date +%s%N)
    if [[ $now -lt $next ]]; then sleep "$(awk -v d=$((next - now)) 'BEGIN {printf "%.3f", d / 1e9}')"; fi
  done
  date +%s%N >"$work/heavy-end-$run.time"
  conns | sort -k3 | join -1 3 -2 1 -v 1 - "$work/light-peers-$run.txt" >"$work/heavy-end-$run.txt" || true
  if [[ $(wc -l <"$work/heavy-end-$run.txt") -ne $HEAVY_CONNECTIONS ]]; then
    log "run $run: the heavy clients ended before the last sample; raise their --duration"
  fi
  ctl stats >"$work/stats-end-$run.txt" 2>&1 || true
  wait "$heavy_pid" || true; heavy_pid=""
  wait "$light_pid" || true; light_pid=""
  stop_pid "$server_pid"; server_pid=""

  python3 - "$run" "$mode" "$work/stats-$run.jsonl" "$work/heavy-$run.json" "$work/light-$run.json" \
    "$work/heavy-start-$run.txt" "$work/heavy-end-$run.txt" "$rows" "$summary" $MESSAGE_SIZE <<'EOF'
import json, sys
run, mode, stats_file, heavy_file, light_file, start_file, end_file, rows_file, summary_file, size = sys.argv[1:]

def loadgen(path):
    # loadgen --json prints one object; anything else in the file is a warning line.
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return {}

snapshots = [json.loads(l) for l in open(stats_file) if l.strip()]
t0 = int(snapshots[0]["taken_unix_ns"])
ratios, rows = [], []
prev = None
for s in snapshots:
    t = (int(s["taken_unix_ns"]) - t0) / 1e9
    loads = [int(l.get("load_permille", 0)) for l in s["loops"]]
    # The busiest loop's load over the least loaded's; an idle loop counts as 1 permille, so
    # "nothing at all" gives a large finite ratio instead of a division by zero.
    ratio = max(loads) / max(min(loads), 1)
    ratios.append((t, ratio))
    for i, load in enumerate(loads):
        rows.append("%s\t%s\t%.3f\t%d\t%d\t%.2f" % (run, mode, t, i, load, ratio))
with open(rows_file, "a") as f:
    f.write("".join(r + "\n" for r in rows))

# Time to balance: the first sample within 1.25, and the share of the samples from then on
# that stayed within it.
first = next((t for t, r in ratios if r <= 1.25), None)
after = [r for t, r in ratios if first is not None and t >= first]
stayed = sum(1 for r in after if r <= 1.25) / len(after) if after else 0
last_s = [r for t, r in ratios if t >= ratios[-1][0] - 3]  # the last 3 s
heavy, light = loadgen(heavy_file), loadgen(light_file)
reb = snapshots[-1].get("rebalance", {})
def loops_of(path):
    return " ".join(sorted(line.split()[2] for line in open(path) if line.strip()))
def bytes_of(path):
    return sum(int(line.split()[3]) for line in open(path) if line.strip())
def when(path):
    return int(open(path.replace(".txt", ".time")).read()) / 1e9
# The heavy connections' requests per second over the sampled window, from what the server
# received on them: loadgen's own figure also covers the set-up before and the tail after.
window = when(end_file) - when(start_file)
heavy_window = (bytes_of(end_file) - bytes_of(start_file)) / int(size) / window if window > 0 else 0
summary = [run, mode,
           "%.2f" % first if first is not None else "never",
           "%.0f%%" % (100 * stayed) if first is not None else "–",
           "%.2f" % (sorted(last_s)[len(last_s) // 2]),
           "%.0f" % heavy_window, "%.0f" % float(heavy.get("requests_per_s", 0)), str(heavy.get("errors", "?")),
           "%.0f" % float(light.get("requests_per_s", 0)), str(light.get("errors", "?")),
           "%.0f" % heavy.get("latency_us", {}).get("p99", 0), "%.0f" % light.get("latency_us", {}).get("p99", 0),
           "/".join(str(reb.get(k, "–")) for k in
                    ("rounds", "imbalanced_rounds", "unmovable_rounds", "moves_started", "moved", "move_failures")),
           "/".join(str(l.get("migrations_in", 0)) + "," + str(l.get("migrations_out", 0)) for l in snapshots[-1]["loops"]),
           loops_of(start_file), loops_of(end_file)]
with open(summary_file, "a") as f:
    f.write("\t".join(summary) + "\n")
print("run %s %s: balanced at %s s, heavy %s req/s, rebalance %s" % (run, mode, summary[2], summary[5], summary[12]),
      file=sys.stderr)
EOF
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
run=0
for round in $(seq 1 "$rounds"); do
  for mode in load off; do
    run=$((run + 1))
    run_one "$run" "$mode"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Chart: one panel per run, a line per loop, busy fraction (load_permille / 1000) over time.
if command -v gnuplot >/dev/null; then
  for r in $(seq 1 "$run"); do
    for l in $(seq 0 $((LOOPS - 1))); do
      awk -F'\t' -v r="$r" -v l="$l" '$1 == r && $4 == l {print $3 "\t" $5 / 1000}' "$rows" >"$work/chart-$r-$l.dat"
    done
  done
  {
    echo "set terminal pngcairo size 1000,$((260 * run + 60)) font 'sans,10'"
    echo "set output '$chart'"
    echo "set multiplot layout $run,1 title 'Per-loop busy fraction, 4 heavy connections started on loop 0 ($(nproc) CPUs, $started, $built_commit)'"
    echo "set grid; set yrange [0:1.05]; set xrange [0:$seconds]; set key outside right"
    echo "set ylabel 'busy (thread CPU / time)'"
    for r in $(seq 1 "$run"); do
      mode=$(awk -F'\t' -v r="$r" '$1 == r {print $2; exit}' "$rows")
      echo "set title 'run $r: --rebalance=$mode'"
      [[ $r -eq $run ]] && echo "set xlabel 'seconds since the heavy connections were all on loop 0'"
      plot="plot"
      for l in $(seq 0 $((LOOPS - 1))); do
        plot+=" '$work/chart-$r-$l.dat' using 1:2 with linespoints pt 7 ps 0.4 lw 2 title 'loop $l',"
      done
      echo "${plot%,}"
    done
    echo "unset multiplot"
  } >"$work/chart.gp"
  gnuplot "$work/chart.gp" && log "wrote $chart"
fi

# ASCII chart: per run, each loop's busy fraction once a second as a digit 0..9 (tenths; '#'
# for 1.0), so the table reads without the PNG.
ascii() {
  awk -F'\t' -v r="$1" -v loops=$LOOPS -v secs="$seconds" '
    $1 == r { s = int($3 + 0.5); if (!((s, $4) in v) && s <= secs) v[s, $4] = $5 }
    END {
      printf "loop  "; for (s = 0; s <= secs; s++) printf "%d", s % 10; printf "   (s)\n"
      for (l = 0; l < loops; l++) {
        printf "%4d  ", l
        for (s = 0; s <= secs; s++) { x = v[s, l]; printf "%s", (x == "") ? " " : (x >= 950 ? "#" : int((x + 50) / 100)) }
        printf "\n"
      }
    }' "$rows"
}

echo "Rebalancing a skewed load ($started, $built_commit, $(nproc) CPUs; load average before $load_before, after $load_after)."
echo
echo "| run | --rebalance | first sample with max/min ≤ 1.25 (s) | samples within 1.25 from then | max/min, median of the last 3 s | heavy req/s, sampled window | heavy req/s, loadgen | heavy errors | light req/s | light errors | heavy p99 µs | light p99 µs | rebalance rounds/imbalanced/unmovable/started/moved/failed | migrations in,out per loop | heavy on loops at t=0 | heavy on loops at the end |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"
awk -F'\t' '{s = "|"; for (i = 1; i <= NF; i++) s = s " " $i " |"; print s}' "$summary"
echo
for r in $(seq 1 "$run"); do
  echo "Run $r, --rebalance=$(awk -F'\t' -v r="$r" '$1 == r {print $2; exit}' "$rows"): busy fraction per loop, one digit per second (tenths, # = full)"
  echo
  echo '```'
  ascii "$r"
  echo '```'
  echo
done
echo "Commands (PORT: where percored said it listens):"
echo
sort -u "$commands" | sed 's/^/    /'
