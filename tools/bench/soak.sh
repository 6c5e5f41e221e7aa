#!/usr/bin/env bash
# Soak run: percored under steady mixed load and connection churn for a long time, its memory
# and descriptors sampled, to show they stay flat. The daemon serves echo, http, memcache and
# resp on free loopback ports (admin too), pinned to cpu 0 when there are 2+ CPUs; the clients
# run on cpu 1: one open-loop loadgen per service at a fixed rate (restarted every --segment, so
# long-lived connections come and go too) and tools/bench/soak_churn.py, which opens new
# connections at a fixed rate and ends them every way a peer can (FIN, RST, mid-request, garbage,
# unread replies, idle and header timeouts). Every --interval the daemon's VmRSS, RssAnon, open
# fds, threads, its own counters (percorectl stats) and the size of the memcache and resp stores
# go into a CSV. At the end: a summary, the close reasons, SIGTERM, and the daemon's exit status.
#
#   tools/bench/soak.sh                       600 s, samples every 10 s into /tmp/percore-soak.csv
#   tools/bench/soak.sh --duration 30         a short check of the script itself
#   tools/bench/soak.sh --out FILE            the CSV goes to FILE
#   tools/bench/soak.sh --interval 5          seconds between samples
#   tools/bench/soak.sh --rate 1000           requests/s per loadgen (echo gets half); open loop
#   tools/bench/soak.sh --churn 100           new churn connections per second
#   tools/bench/soak.sh --loops 2             percored event loops (2: cross-loop store hops run too)
#   tools/bench/soak.sh --segment 60          seconds per loadgen run (each run reconnects)
#   tools/bench/soak.sh --fd_margin 4         allowed fd growth, idle before vs idle after the load
#   tools/bench/soak.sh --nice -10            run daemon and clients at this nice level
#   tools/bench/soak.sh --keep                keep the work directory (logs, loadgen JSON)
#   PERCORE_BENCH_BAZEL_FLAGS="..." tools/bench/soak.sh    extra flags for the opt build
#
# Exit status 1 if the daemon died or did not exit 0 on SIGTERM, any loadgen run reported an
# error or failed, the churn client saw a wrong reply or a connection the server did not close,
# connections were still open after the load stopped, or the fd count at rest after the load
# exceeds the one at rest before it by more than --fd_margin. RSS is reported, not judged.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
caller_dir=$(pwd)
cd "$(dirname "$0")/../.."

duration=600
interval=10
out=/tmp/percore-soak.csv
rate=1000
churn=100
loops=2
segment=60
fd_margin=4
nice_level=0
keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration|--interval|--out|--rate|--churn|--loops|--segment|--fd_margin|--nice)
      [[ $# -ge 2 ]] || { echo "soak.sh: $1 needs a value" >&2; exit 2; }
      declare "${1#--}=$2"; shift ;;
    --duration=*|--interval=*|--out=*|--rate=*|--churn=*|--loops=*|--segment=*|--fd_margin=*|--nice=*)
      name="${1%%=*}"; declare "${name#--}=${1#*=}" ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,28p' "$self"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
nice_level=${nice:-$nice_level}
[[ "$out" == /* ]] || out="$caller_dir/$out"
for v in duration interval rate churn loops segment fd_margin; do
  if [[ ! "${!v}" =~ ^[0-9]+$ ]] || [[ $v != fd_margin && "${!v}" -eq 0 ]]; then
    echo "soak.sh: --$v must be a positive integer" >&2; exit 2
  fi
done

# The daemon's timeouts, short so that the churn client's idle and slow-header connections are
# closed by the server within the run; the churn client is told the same values.
IDLE_TIMEOUT=5
HEADER_TIMEOUT=3

work=$(mktemp -d /tmp/percore-soak.XXXXXX)
daemon_pid=""
client_pids=()

log() { echo "soak: $*" >&2; }

cleanup() {
  local p
  # A loadgen loop is a subshell: its running loadgen goes first, then the loop itself.
  for p in "${client_pids[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  for p in "${client_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ -n "$daemon_pid" ]]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [[ $keep -eq 0 ]]; then rm -rf "$work"; else log "work directory kept: $work"; fi
}
trap cleanup EXIT

# --- Build ---------------------------------------------------------------------------------
tools/setup.sh --bench >&2  # python3 for the churn client
log "building percored, loadgen, percorectl (--config=opt)"
read -r -a extra_flags <<<"${PERCORE_BENCH_BAZEL_FLAGS:-}"
targets=(//tools:percored //tools:loadgen //tools:percorectl)
if ! bazel build --config=opt "${extra_flags[@]}" "${targets[@]}" >"$work/build.log" 2>&1; then
  grep -E '^(ERROR|FAILED)|error:' "$work/build.log" | head -20 >&2
  log "build failed; see $work/build.log"; keep=1
  exit 1
fi
# Copies, from the opt output tree itself: other builds may repoint bazel-bin while this runs.
opt_bin=$(bazel info --config=opt "${extra_flags[@]}" bazel-bin 2>/dev/null)
bin="$work/bin"
mkdir -p "$bin"
cp "$opt_bin/tools/percored" "$opt_bin/tools/loadgen" "$opt_bin/tools/percorectl" "$bin/"

server_pin=()
client_pin=()
if [[ $(nproc) -ge 2 ]]; then server_pin=(taskset -c 0); client_pin=(taskset -c 1); fi
niced=()
if [[ "$nice_level" != 0 ]]; then niced=(nice -n "$nice_level"); fi
ulimit -n "$(ulimit -Hn)"

# --- Daemon --------------------------------------------------------------------------------
daemon_cmd=("$bin/percored" --loops="$loops"
            --listen=echo=127.0.0.1:0,http=127.0.0.1:0,memcache=127.0.0.1:0,resp=127.0.0.1:0
            --admin_listen=127.0.0.1:0 --idle_timeout="${IDLE_TIMEOUT}s"
            --http_header_timeout="${HEADER_TIMEOUT}s" --drain_timeout=5s)
"${server_pin[@]}" "${niced[@]}" "${daemon_cmd[@]}" >"$work/percored.log" 2>&1 &
daemon_pid=$!
tries=0
until grep -qs 'admin listening on' "$work/percored.log"; do
  tries=$((tries + 1))
  if [[ $tries -gt 200 ]] || ! kill -0 "$daemon_pid" 2>/dev/null; then
    cat "$work/percored.log" >&2; log "percored did not come up"; exit 1
  fi
  sleep 0.05
done
address() { sed -n "s/^percored: $1 listening on //p" "$work/percored.log"; }
admin=$(address admin)
declare -A addr
for s in echo http memcache resp; do addr[$s]=$(address "$s"); done
log "percored pid $daemon_pid: echo ${addr[echo]}, http ${addr[http]}, memcache ${addr[memcache]}, resp ${addr[resp]}, admin $admin"

daemon_alive() { kill -0 "$daemon_pid" 2>/dev/null; }
proc_field() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$daemon_pid/status" 2>/dev/null || echo -; }
fd_count() { { ls "/proc/$daemon_pid/fd" 2>/dev/null || true; } | wc -l; }

# stats_json: the daemon's statistics as one JSON line (empty if the admin did not answer).
stats_json() { "$bin/percorectl" --admin="$admin" --timeout=5s --json stats 2>>"$work/percorectl.err" || true; }

# counters JSON: "conns accepted closed requests service_errors" from a stats JSON line.
counters() {
  python3 -c '
import json, sys
try:
    s = json.loads(sys.stdin.read())
except ValueError:
    print("- - - - -"); sys.exit()
loops = s.get("loops", [])
print(sum(int(l.get("conns_active", 0)) for l in loops), int(s.get("distributor", {}).get("accepted", 0)),
      sum(int(l.get("conns_closed", 0)) for l in loops), sum(int(v.get("requests", 0)) for v in s.get("services", [])),
      sum(int(v.get("errors", 0)) for v in s.get("services", [])))' <<<"$1"
}

# store_figures: "items bytes keys": memcache's curr_items and bytes (`stats`), resp's DBSIZE; the
# stores' contents are memory the daemon rightly holds, so their growth is told apart from the rest.
store_figures() {
  python3 -c '
import socket, sys
def ask(address, request, done):
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(request)
        data = b""
        while not done(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data
try:
    mc = ask(sys.argv[1], b"stats\r\n", lambda d: d.endswith(b"END\r\n"))
    stat = dict(l.split()[1:3] for l in mc.decode().splitlines() if l.startswith("STAT ") and len(l.split()) >= 3)
    keys = ask(sys.argv[2], b"*1\r\n$6\r\nDBSIZE\r\n", lambda d: d.endswith(b"\r\n"))
    print(stat.get("curr_items", "-"), stat.get("bytes", "-"), keys.strip().lstrip(b":").decode())
except (OSError, ValueError):
    print("- - -")' "${addr[memcache]}" "${addr[resp]}"
}

csv_header="time_s,phase,rss_kib,rss_anon_kib,fds,threads,conns_active,accepted,closed,requests,service_errors,mc_items,mc_bytes,resp_keys"
echo "$csv_header" >"$out"
t0=""
# sample PHASE: appends one CSV row. /proc is read before the admin call, so the admin's own
# connection is never in the fd count.
sample() {
  local rss anon fds threads t
  rss=$(proc_field VmRSS); anon=$(proc_field RssAnon); threads=$(proc_field Threads); fds=$(fd_count)
  t=$(awk -v a="$EPOCHREALTIME" -v b="${t0:-$EPOCHREALTIME}" 'BEGIN {printf "%.1f", a - b}')
  local c; c=$(counters "$(stats_json)")
  local st; st=$(store_figures)
  echo "$t,$1,$rss,$anon,$fds,$threads,${c// /,},${st// /,}" >>"$out"
}

# at_rest: waits (up to 30 s) until the daemon has no connection open; returns 1 if it never does.
at_rest() {
  local i c
  for ((i = 0; i < 300; i++)); do
    c=$(counters "$(stats_json)"); [[ "${c%% *}" == 0 ]] && return 0
    sleep 0.1
  done
  return 1
}

# The admin is asked once before the baseline so that whatever it sets up lazily is counted.
stats_json >/dev/null
sleep 1
sample idle_before
fd_before=$(fd_count)

# --- Load ----------------------------------------------------------------------------------
# loadgen_loop NAME ARGS...: loadgen runs of --segment seconds until the run's end; one JSON
# line per run in NAME.jsonl, its exit status in NAME.rc.
end_epoch=$(( $(date +%s) + duration ))
loadgen_loop() {
  local name=$1; shift
  local left rc
  while true; do
    left=$((end_epoch - $(date +%s)))
    [[ $left -ge 1 ]] || break
    [[ $left -lt $segment ]] || left=$segment
    rc=0
    "${client_pin[@]}" "${niced[@]}" "$bin/loadgen" --duration="${left}s" --timeout=20s --threads=1 --json "$@" \
      >>"$work/$name.jsonl" 2>>"$work/$name.err" || rc=$?
    echo "$rc" >>"$work/$name.rc"
    if [[ $rc -eq 2 ]] && ! daemon_alive; then break; fi
  done
}
store=(--keys=10000 --key_size=32 --value_size=100 --get_ratio=0.9 --preload)
declare -A load_args=(
  [http]="--protocol=http --connections=32 --rate=$rate"
  [memcache]="--protocol=memcache --connections=32 --rate=$rate ${store[*]}"
  [resp]="--protocol=resp --connections=32 --rate=$rate ${store[*]}"
  [echo]="--protocol=echo --connections=16 --rate=$((rate / 2)) --message_size=512"
)
commands="$work/commands.txt"
prefix() { local p="${server_pin[*]} ${niced[*]}"; p=$(xargs <<<"$p"); echo "${p:+$p }"; }
client_prefix() { local p="${client_pin[*]} ${niced[*]}"; p=$(xargs <<<"$p"); echo "${p:+$p }"; }
echo "$(prefix)bazel-bin/tools/percored ${daemon_cmd[*]:1}" >"$commands"
t0=$EPOCHREALTIME
for s in http memcache resp echo; do
  read -r -a a <<<"${load_args[$s]}"
  echo "$(client_prefix)bazel-bin/tools/loadgen --server=${addr[$s]} ${a[*]} --timeout=20s --threads=1 --json --duration=${segment}s  # repeated for ${duration} s" >>"$commands"
  loadgen_loop "$s" --server="${addr[$s]}" "${a[@]}" &
  client_pids+=($!)
done
churn_cmd=(python3 tools/bench/soak_churn.py --echo="${addr[echo]}" --http="${addr[http]}"
           --memcache="${addr[memcache]}" --resp="${addr[resp]}" --rate="$churn" --duration="$duration"
           --idle_timeout="$IDLE_TIMEOUT" --header_timeout="$HEADER_TIMEOUT")
echo "$(client_prefix)${churn_cmd[*]}" >>"$commands"
"${client_pin[@]}" "${niced[@]}" "${churn_cmd[@]}" >"$work/churn.json" 2>"$work/churn.err" &
churn_pid=$!
client_pids+=("$churn_pid")
log "load running for $duration s: loadgen at $rate req/s (echo $((rate / 2))) per service, churn $churn conn/s"

# --- Sampling ------------------------------------------------------------------------------
died=0
samples=$((duration / interval))
per_minute=$((interval >= 60 ? 1 : 60 / interval))
for ((k = 0; k <= samples; k++)); do
  due=$(awk -v t0="$t0" -v k="$k" -v i="$interval" 'BEGIN {printf "%.3f", t0 + k * i}')
  wait_s=$(awk -v d="$due" -v n="$EPOCHREALTIME" 'BEGIN {w = d - n; printf "%.3f", (w > 0 ? w : 0)}')
  sleep "$wait_s"
  if ! daemon_alive; then died=1; log "percored died at ~$((k * interval)) s"; break; fi
  sample load
  # Once a minute the connection list too: the admin's gather path is part of the daemon.
  if ((k % per_minute == per_minute - 1)); then "$bin/percorectl" --admin="$admin" --json conns >/dev/null 2>>"$work/percorectl.err" || true; fi
  if ((k % per_minute == 0)); then log "$(tail -1 "$out")"; fi
done
for p in "${client_pids[@]}"; do wait "$p" 2>/dev/null || true; done
client_pids=()

# --- After the load ------------------------------------------------------------------------
failures=()
settled=0
if [[ $died -eq 0 ]] && daemon_alive; then
  if at_rest; then settled=1; else failures+=("connections still open 30 s after the load stopped"); fi
  sleep 1
  sample idle_after
  fd_after=$(fd_count)
  final_stats=$(stats_json)
  echo "$final_stats" >"$work/final-stats.json"
  kill -TERM "$daemon_pid"
  daemon_rc=0
  wait "$daemon_pid" || daemon_rc=$?
  daemon_pid=""
  [[ $daemon_rc -eq 0 ]] || failures+=("percored exited $daemon_rc after SIGTERM")
  if ((fd_after > fd_before + fd_margin)); then
    failures+=("fd count at rest grew from $fd_before to $fd_after (margin $fd_margin)")
  fi
else
  died=1
  failures+=("percored died during the run")
  final_stats="{}"; daemon_rc="-"; fd_after="-"
  wait "$daemon_pid" 2>/dev/null || daemon_rc=$?
  daemon_pid=""
fi

# --- Summary -------------------------------------------------------------------------------
summary=$(python3 - "$out" "$work" "$duration" "$per_minute" <<'EOF'
import csv, json, os, sys
out, work, duration, per_minute = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
rows = list(csv.DictReader(open(out)))
load = [r for r in rows if r["phase"] == "load" and r["rss_kib"] not in ("", "-")]
problems = []
def series(col):
    return [int(r[col]) for r in load if r[col].lstrip("-").isdigit()]
def fmt(v):
    return f"{v:,}"
print(f"samples: {len(load)} under load (every row in {out})")
for col, label in (("rss_kib", "RSS KiB"), ("rss_anon_kib", "RssAnon KiB"), ("fds", "fds"),
                   ("threads", "threads"), ("conns_active", "connections")):
    s = series(col)
    if s:
        print(f"{label:>12}: first {fmt(s[0])}  min {fmt(min(s))}  max {fmt(max(s))}  last {fmt(s[-1])}")
first = [int(r["rss_kib"]) for r in load if float(r["time_s"]) < 60]
last = [int(r["rss_kib"]) for r in load if float(r["time_s"]) > duration - 60]
if first and last:
    a, b = sum(first) / len(first), sum(last) / len(last)
    print(f"RSS, first minute vs last minute (mean of {len(first)} / {len(last)} samples): "
          f"{a:,.0f} -> {b:,.0f} KiB, {b - a:+,.0f} KiB ({(b - a) / a * 100:+.1f}%); "
          f"max {max(first):,} -> {max(last):,} KiB")
half = [r for r in load if float(r["time_s"]) >= duration / 2]
if len(half) >= 2 and duration >= 120:
    a, b = int(half[0]["rss_kib"]), int(load[-1]["rss_kib"])
    print(f"RSS, second half ({float(half[0]['time_s']):.0f} s -> {float(load[-1]['time_s']):.0f} s): "
          f"{a:,} -> {b:,} KiB, {b - a:+,} KiB ({(b - a) / a * 100:+.1f}%)")
idle = {r["phase"]: r for r in rows if r["phase"].startswith("idle")}
if "idle_before" in idle and "idle_after" in idle:
    b, a = idle["idle_before"], idle["idle_after"]
    print(f"at rest before / after the load: RSS {int(b['rss_kib']):,} / {int(a['rss_kib']):,} KiB, "
          f"fds {b['fds']} / {a['fds']}, threads {b['threads']} / {a['threads']}")
print()
print("once a minute (and the last sample):")
print(f"  {'time s':>7} {'RSS KiB':>9} {'RssAnon':>9} {'fds':>5} {'threads':>7} {'conns':>5} {'closed':>9} "
      f"{'requests':>11} {'mc items':>8} {'mc bytes':>10} {'resp keys':>9}")
for i, r in enumerate(load):
    if i % per_minute == 0 or i == len(load) - 1:
        print(f"  {float(r['time_s']):>7.0f} {int(r['rss_kib']):>9,} {int(r['rss_anon_kib']):>9,} {r['fds']:>5} "
              f"{r['threads']:>7} {r['conns_active']:>5} {r['closed']:>9} {r['requests']:>11} {r['mc_items']:>8} "
              f"{r['mc_bytes']:>10} {r['resp_keys']:>9}")
print()
print("loadgen (client side):")
print(f"  {'service':<9} {'runs':>4} {'failed':>6} {'requests':>12} {'errors':>6} {'req/s':>8} {'p99 us':>9} {'max us':>9}")
for name in ("http", "memcache", "resp", "echo"):
    reports = [json.loads(l) for l in open(os.path.join(work, name + ".jsonl")) if l.strip()] \
        if os.path.exists(os.path.join(work, name + ".jsonl")) else []
    rcs = [int(l) for l in open(os.path.join(work, name + ".rc"))] if os.path.exists(os.path.join(work, name + ".rc")) else []
    req = sum(r["requests"] for r in reports)
    err = sum(r["errors"] for r in reports)
    secs = sum(r["elapsed_s"] for r in reports)
    p99 = max((r["latency_us"]["p99"] for r in reports), default=0)
    mx = max((r["latency_us"]["max"] for r in reports), default=0)
    bad = sum(1 for rc in rcs if rc != 0)
    print(f"  {name:<9} {len(rcs):>4} {bad:>6} {req:>12,} {err:>6} {req / secs if secs else 0:>8,.0f} {p99:>9,.0f} {mx:>9,.0f}")
    if err or bad or not reports:
        problems.append(f"loadgen {name}: {len(rcs)} runs, {bad} failed, {err} errors")
        for r in reports:
            for e in r.get("error_samples", [])[:3]:
                print(f"    error: {e}")
        errfile = os.path.join(work, name + ".err")
        if os.path.exists(errfile):
            for line in open(errfile).read().splitlines()[-3:]:
                print(f"    stderr: {line}")
try:
    churn = json.load(open(os.path.join(work, "churn.json")))
except (OSError, ValueError):
    churn = None
print()
if churn:
    kinds = {}
    for key, n in churn["by_kind"].items():
        kind = key.split("/", 1)[1]
        kinds[kind] = kinds.get(kind, 0) + n
    print(f"churn: {churn['connections']:,} connections ({churn['connections_per_s']}/s), "
          f"{churn['failures']} failures, at most {churn['max_open']} open at once")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])))
    for s in churn["failure_samples"][:10]:
        print(f"    failure: {s}")
    if churn["failures"]:
        problems.append(f"churn: {churn['failures']} failures")
else:
    print("churn: no result")
    problems.append("churn: no result (see churn.err)")
try:
    stats = json.load(open(os.path.join(work, "final-stats.json")))
except (OSError, ValueError):
    stats = {}
if stats:
    print()
    print("daemon (percorectl stats at the end):")
    for s in stats.get("services", []):
        print(f"  {s['name']:<9} requests {int(s['requests']):>12,}  errors {int(s['errors']):>6,}")
    d = stats.get("distributor", {})
    print(f"  accepted {int(d.get('accepted', 0)):,}; handed {[int(h) for h in d.get('handed', [])]}; rejected "
          f"{int(d.get('rejected_global_limit', 0)) + int(d.get('rejected_loop_limit', 0)) + int(d.get('rejected_no_loop', 0))}; "
          f"accept errors {[(e['name'], int(e['count'])) for e in d.get('accept_errors', [])] or 'none'}")
    reasons = {}
    for l in stats.get("loops", []):
        for c in l.get("closed", []):
            reasons[c["reason"]] = reasons.get(c["reason"], 0) + int(c["count"])
    closed = sum(reasons.values())
    print(f"  closed {closed:,}: " + ", ".join(f"{k} {v:,}" for k, v in reasons.items() if v))
    print(f"  longest loop stall {max((int(l.get('longest_stall_ns', 0)) for l in stats.get('loops', [])), default=0) / 1e6:.1f} ms; "
          f"backpressure pauses {sum(int(l.get('backpressure_pauses', 0)) for l in stats.get('loops', [])):,}")
for p in problems:
    print("PROBLEM: " + p)
EOF
) || { summary="summary failed"; failures+=("the summary could not be computed"); }
echo
echo "== percore soak: $duration s, samples every $interval s, $(nproc) CPUs$([[ ${#server_pin[@]} -gt 0 ]] && echo ', daemon on cpu 0, clients on cpu 1')"
echo "$summary"
if [[ $died -eq 0 ]]; then stop="exit status after SIGTERM: $daemon_rc"; else stop="died during the run (status $daemon_rc)"; fi
echo "fd count at rest: before $fd_before, after ${fd_after} (margin $fd_margin); percored $stop"
echo
echo "commands:"
sed "s#$work/bin/#bazel-bin/tools/#g" "$commands"
if grep -q '^PROBLEM:' <<<"$summary"; then failures+=("$(grep '^PROBLEM:' <<<"$summary" | sed 's/^PROBLEM: //' | paste -sd ';' - | sed 's/;/; /g')"); fi
if [[ ${#failures[@]} -gt 0 ]]; then
  echo
  for f in "${failures[@]}"; do echo "FAILED: $f"; done
  keep=1
  exit 1
fi
echo
echo "OK: daemon alive throughout, no client errors, connections all closed, fds back to rest."
