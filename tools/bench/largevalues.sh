#!/usr/bin/env bash
# Large values and multi-key replies against the percored binary: what a reply that names big
# stored values costs the daemon in memory and in loop time, and what the allocator keeps after a
# burst. The daemon runs pinned to cpu 0 (its loops share it), the clients
# (tools/bench/largevalues_clients.py, loadgen) on cpu 1:
#
#  1. amplify (memcache; RESP with SET and MGET): one 1 MB value (1,000,000 bytes, under the
#     default --memcache_max_item_bytes of 1 MiB), then 4 connections each send one `get` / `MGET`
#     naming it 3,000 times (a 3 GB reply) and read 64 KiB every 10 ms for 5 s, then reset. The
#     daemon's VmRSS is sampled every 100 ms; a new connection asks `version` / `PING` every
#     200 ms meanwhile. Three runs: one loop; two loops with four keys, two on each shard; the
#     same under `ulimit -v 1048576` (1 GiB of address space), where a reply copied whole (the
#     old behaviour) cannot live.
#  2. stall: two loops with a 90 MB value on each shard, then one loop with both
#     (--memcache_max_item_bytes=100000000 --memcache_memory_mb=512; RESP:
#     --resp_max_bulk_bytes=100000000); one fast reader per value sends 10 pipelined gets of it
#     while a third connection sends `version` / `PING` in a loop and times each round trip.
#     The loops' iterations during the streaming come from the difference of two iteration_ns
#     histograms (the store before it has its own figure, longest_stall_ns).
#  3. memory: two loops, 50 items of 100 KB (sent from the item) or 640 of 8 KB (copied); 3
#     bursts of 100 connections that each pipeline 10 `get`s naming every item (5 MB a get) and
#     reset after reading a random part (up to 4 MiB); RSS before, peak, and 1, 3 and 10 s
#     after. For glibc with --return_free_memory=false and =true (the default), jemalloc (as
#     is, and with MALLOC_CONF=background_thread:true, which purges while the daemon is idle)
#     and tcmalloc (Debian's libjemalloc2 / libtcmalloc-minimal4 by LD_PRELOAD, with
#     --return_free_memory=false since malloc_trim is glibc's).
#  4. speed: the same allocator configurations under a steady loadgen memcache load (100 B and
#     32 KiB values, 90% gets), a fresh daemon for each, two interleaved rounds.
#
#   tools/bench/largevalues.sh                        all four (about 5 minutes)
#   tools/bench/largevalues.sh --quick                shorter runs, 30 MB values, one burst, RSS up to
#                                                     3 s after it, one speed round (about 2.5 minutes)
#   tools/bench/largevalues.sh --rounds 3             speed: rounds per allocator (default 2)
#   tools/bench/largevalues.sh --scenario stall       one scenario (amplify, stall, memory, speed); repeatable
#   tools/bench/largevalues.sh --protocols memcache  amplify and stall for memcache only (default memcache,resp)
#   tools/bench/largevalues.sh --allocators glibc-keep,jemalloc   memory, speed: only these (of glibc-keep,
#                                                     glibc-trim, jemalloc, jemalloc-bg, tcmalloc)
#   tools/bench/largevalues.sh --bin DIR              percored and percorectl from DIR (another build), not bazel's
#   tools/bench/largevalues.sh --keep                 keep the work directory (logs, JSON)
#   PERCORE_BENCH_BAZEL_FLAGS="..." tools/bench/largevalues.sh   extra flags for the opt build
#
# Every daemon runs under `ulimit -v` of 4 GiB (1 GiB where stated), so that a build that copies
# replies whole fails its allocations instead of exhausting the machine.
#
# Prints a report in Markdown (for tools/bench/RESULTS.md). Exit status 1 if the daemon died or
# did not exit 0 on SIGTERM, a probe went unanswered, a reader got a wrong reply, or the daemon
# did not answer after a burst. Memory and stall figures are reported, not judged.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
caller_dir=$(pwd)
cd "$(dirname "$0")/../.."
repo=$(pwd)

scenarios=()
protocols=memcache,resp
allocators=glibc-keep,glibc-trim,jemalloc,jemalloc-bg,tcmalloc
quick=0
rounds=""
keep=0
bin_dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scenario) scenarios+=("$2"); shift ;;
    --scenario=*) scenarios+=("${1#*=}") ;;
    --protocols) protocols="$2"; shift ;;
    --protocols=*) protocols="${1#*=}" ;;
    --allocators) allocators="$2"; shift ;;
    --allocators=*) allocators="${1#*=}" ;;
    --bin) bin_dir="$2"; shift ;;
    --bin=*) bin_dir="${1#*=}" ;;
    --quick) quick=1 ;;
    --rounds) rounds="$2"; shift ;;
    --rounds=*) rounds="${1#*=}" ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,47p' "$self"; exit 0 ;;
    *) echo "largevalues.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(amplify stall memory speed)
IFS=, read -r -a allocator_list <<<"$allocators"
for a in "${allocator_list[@]}"; do
  case "$a" in glibc-keep|glibc-trim|jemalloc|jemalloc-bg|tcmalloc) ;; *) echo "largevalues.sh: unknown allocator $a" >&2; exit 2 ;; esac
done
IFS=, read -r -a protocol_list <<<"$protocols"
for p in "${protocol_list[@]}"; do
  [[ $p == memcache || $p == resp ]] || { echo "largevalues.sh: unknown protocol $p" >&2; exit 2; }
done
for s in "${scenarios[@]}"; do
  [[ $s == amplify || $s == stall || $s == memory || $s == speed ]] || { echo "largevalues.sh: unknown scenario $s" >&2; exit 2; }
done

# Sizes and times; --quick shortens them.
AMP_VALUE=1000000 AMP_NAMES=3000 AMP_CONNS=4 AMP_SECONDS=5
STALL_VALUE=90000000 STALL_GETS=10
BURSTS=3 AFTER=1,3,10 LOAD_SECONDS=3 SPEED_ROUNDS=2
if [[ $quick -eq 1 ]]; then
  AMP_SECONDS=2 STALL_VALUE=30000000 BURSTS=1 AFTER=1,3 LOAD_SECONDS=1 SPEED_ROUNDS=1
fi
[[ -z "$rounds" ]] || SPEED_ROUNDS=$rounds
[[ "$SPEED_ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "largevalues.sh: --rounds must be a positive integer" >&2; exit 2; }
AS_LIMIT_KIB=1048576
# Every other daemon runs under this address-space limit, so that one that copies a huge reply
# (as percored did before replies were sent from the values) fails instead of taking the machine.
SAFETY_AS_KIB=4194304
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

tools/setup.sh --bench >&2
work=$(mktemp -d /tmp/percore-largevalues.XXXXXX)
read -r -a extra_flags <<<"${PERCORE_BENCH_BAZEL_FLAGS:-}"
# Copies of the binaries: a rebuild in this tree while the script runs does not change them.
mkdir -p "$work/bin"
if [[ -z "$bin_dir" || "${scenarios[*]}" == *speed* ]]; then
  targets=(//tools:loadgen)
  [[ -n "$bin_dir" ]] || targets+=(//tools:percored //tools:percorectl)
  bazel build --config=opt "${extra_flags[@]}" "${targets[@]}" >&2
  built="$(bazel info --config=opt "${extra_flags[@]}" bazel-bin 2>/dev/null)/tools"
  cp "$built/loadgen" "$work/bin/"
  [[ -n "$bin_dir" ]] || cp "$built/percored" "$built/percorectl" "$work/bin/"
fi
if [[ -n "$bin_dir" ]]; then
  [[ "$bin_dir" == /* ]] || bin_dir="$caller_dir/$bin_dir"
  cp "$bin_dir/percored" "$bin_dir/percorectl" "$work/bin/"
fi
bin="$work/bin"
clients="$repo/tools/bench/largevalues_clients.py"
# Flags an older build may not have.
helpfull=$("$bin/percored" --helpfull 2>&1 || true)
has_flag() { grep -q -- "-$1 " <<<"$helpfull"; }
trim_flag=()
if has_flag return_free_memory; then trim_flag=(--return_free_memory=false); fi

server_pin=() client_pin=()
if [[ $(nproc) -ge 2 ]]; then server_pin=(taskset -c 0); client_pin=(taskset -c 1); fi
daemon_pid=""
failures=0
cleanup() {
  if [[ -n "$daemon_pid" ]]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  if [[ $keep -eq 1 ]]; then echo "largevalues: work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
log() { echo "largevalues: $*" >&2; }
fail() { echo "largevalues: FAILED: $*" >&2; failures=$((failures + 1)); }

# start_daemon LOG PRELOAD ASLIMIT_KIB ARGS...: starts percored (LD_PRELOAD PRELOAD unless -, and
# `ulimit -v ASLIMIT_KIB`, - for SAFETY_AS_KIB), waits for its admin line; sets daemon_pid, admin.
daemon_cmd=""
malloc_conf=""  # jemalloc's MALLOC_CONF for the next start_daemon
start_daemon() {
  local out="$1" preload="$2" aslimit="$3"; shift 3
  [[ "$aslimit" != - ]] || aslimit=$SAFETY_AS_KIB
  local args=(--admin_listen=127.0.0.1:0 --drain_timeout=2s "$@")
  : >"$out"
  (
    ulimit -v "$aslimit"
    if [[ "$preload" != - ]]; then export LD_PRELOAD="$preload"; fi
    if [[ -n "$malloc_conf" ]]; then export MALLOC_CONF="$malloc_conf"; fi
    exec "${server_pin[@]}" "$bin/percored" "${args[@]}"
  ) >"$out" 2>&1 &
  daemon_pid=$!
  daemon_cmd="${server_pin[*]} bazel-bin/tools/percored ${args[*]}"
  if [[ "$preload" != - ]]; then daemon_cmd="LD_PRELOAD=$preload $daemon_cmd"; fi
  if [[ -n "$malloc_conf" ]]; then daemon_cmd="MALLOC_CONF=$malloc_conf $daemon_cmd"; fi
  daemon_cmd="(ulimit -v $aslimit; $daemon_cmd)"
  log "$daemon_cmd"
  local tries=0
  until grep -q 'admin listening on' "$out"; do
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$out" >&2; echo "largevalues: percored died at start ($daemon_cmd)" >&2; exit 1; }
    tries=$((tries + 1)); [[ $tries -lt 200 ]] || { echo "largevalues: percored did not start" >&2; exit 1; }
    sleep 0.05
  done
  admin=$(address admin "$out")
  if [[ "$preload" != - ]] && ! grep -q "$(basename "$preload")" "/proc/$daemon_pid/maps"; then
    fail "$preload is not mapped into percored"
  fi
}
address() { sed -n "s/^percored: $1 listening on //p" "$2"; }
stop_daemon() {
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    fail "percored died"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""; return
  fi
  kill -TERM "$daemon_pid"
  local rc=0; wait "$daemon_pid" || rc=$?
  daemon_pid=""
  [[ $rc -eq 0 ]] || fail "percored exited $rc on SIGTERM"
}
stat_json() { "$bin/percorectl" --admin="$admin" --json stats; }
# json EXPR < JSON: evaluates a Python expression over the parsed object `j`.
json() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
mib() { python3 -c "print('%.1f' % ($1 / 1024.0))"; }  # KiB -> MiB
client() { "${client_pin[@]}" python3 "$clients" "$@"; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$daemon_pid/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }  # utime + stime, clock ticks
ticks_per_s=$(getconf CLK_TCK)

report="$work/report.md"
{
  command="tools/bench/largevalues.sh"
  [[ $quick -eq 0 ]] || command+=" --quick"
  [[ -z "$rounds" ]] || command+=" --rounds $rounds"
  [[ $protocols == memcache,resp ]] || command+=" --protocols $protocols"
  [[ ${#scenarios[@]} -eq 4 ]] || command+="$(printf ' --scenario %s' "${scenarios[@]}")"
  [[ $allocators == glibc-keep,glibc-trim,jemalloc,jemalloc-bg,tcmalloc ]] || command+=" --allocators $allocators"
  [[ -z "$bin_dir" ]] || command+=" --bin $bin_dir"
  build="the working tree at $(git -C "$repo" rev-parse --short HEAD)"
  if [[ -n "$(git -C "$repo" status --porcelain -- core reactor services tools/percored.cc tools/service_catalog.cc 2>/dev/null)" ]]; then
    build+=" with uncommitted changes"
  fi
  [[ -z "$bin_dir" ]] || build="percored from $bin_dir"
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), \`$command\`, $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p')), load average at start $(cut -d' ' -f1-3 /proc/loadavg); percored pinned to cpu 0 (its loops share it), clients on cpu 1; $build."
  echo
} >"$report"

# The --listen flag for one protocol on a free loopback port.
listen_of() { echo "--listen=$1=127.0.0.1:0"; }

amplify_run() {  # PROTOCOL LOOPS ASLIMIT LABEL
  local proto="$1" loops="$2" aslimit="$3" label="$4" keys name="$work/amp.$1.$2.$3"
  if [[ $loops -eq 1 ]]; then keys=k; else keys=$(python3 "$clients" keys --protocol "$proto" --shards "$loops" --per_shard 2); fi
  start_daemon "$name.log" - "$aslimit" "$(listen_of "$proto")" --loops="$loops"
  local port; port=$(address "$proto" "$name.log")
  local rss0; rss0=$(rss)
  client store "$port" --protocol "$proto" --keys "$keys" --size "$AMP_VALUE" >"$name.store.json" || fail "$label: store failed: $(cat "$name.store.json")"
  client amplify "$port" --protocol "$proto" --pid "$daemon_pid" --keys "$keys" --size "$AMP_VALUE" \
    --connections "$AMP_CONNS" --names "$AMP_NAMES" --duration "$AMP_SECONDS" >"$name.json" \
    || fail "$label: a probe went unanswered or a reader was closed ($(cat "$name.json"))"
  local alive=yes
  kill -0 "$daemon_pid" 2>/dev/null || alive=no
  local vm; vm=$(awk '/^VmPeak:/ {print int($2 / 1024)}' "/proc/$daemon_pid/status" 2>/dev/null || echo "?")
  local stalls; stalls=$(stat_json 2>/dev/null | json '" / ".join("%.1f" % (int(l["longest_stall_ns"]) / 1e6) for l in j["loops"])' || echo "?")
  stop_daemon
  echo "| $label | $loops | $([[ $aslimit == - ]] && echo "$((SAFETY_AS_KIB / 1048576)) GiB (safety cap)" || echo "**$((aslimit / 1048576)) GiB**") (VmPeak $vm MiB) | $(json '"%.2f GB" % (j["reply_bytes_per_connection"] / 1e9)' <"$name.json") | $(json '"%.1f MB" % (sum(j["read_bytes_per_connection"]) / len(j["read_bytes_per_connection"]) / 1e6)' <"$name.json") | $(mib "$rss0") → $(json '"%.1f" % (j["rss_before_kib"] / 1024.0)' <"$name.json") | $(json '"%.1f MiB" % (j["growth_kib"] / 1024.0)' <"$name.json") | $(json '"%.5f" % (j["growth_kib"] * 1024.0 / j["reply_bytes_per_connection"] / len(j["read_bytes_per_connection"])) ' <"$name.json") | $(json '("%s / %s ms" % (j["probe_ms_p50"], j["probe_ms_max"]) if j["probe_ms_max"] is not None else "no answer") + " (%d of %d)" % (j["probes"] - j["probes_failed"], j["probes"])' <"$name.json") | $stalls | $alive, $(json '"answers in %s ms" % j["after_ms"] if j["answers_after"] else "no answer"' <"$name.json") |" >>"$work/amp.rows"
}

stall_run() {  # PROTOCOL LOOPS
  local proto="$1" loops="$2" name="$work/stall.$1.$2" keys=big0,big1
  [[ $loops -eq 1 ]] || keys=$(python3 "$clients" keys --protocol "$proto" --shards "$loops" --per_shard 1 --prefix big)
  local flags=(--memcache_max_item_bytes=100000000 --memcache_memory_mb=512)
  [[ $proto == resp ]] && flags=(--resp_max_bulk_bytes=100000000)
  start_daemon "$name.log" - - "$(listen_of "$proto")" --loops="$loops" "${flags[@]}"
  local port; port=$(address "$proto" "$name.log")
  client store "$port" --protocol "$proto" --keys "$keys" --size "$STALL_VALUE" >"$name.store.json" || fail "stall $proto: store failed: $(cat "$name.store.json")"
  stat_json >"$name.before.json" || echo '{"loops": []}' >"$name.before.json"
  client stall "$port" --protocol "$proto" --keys "$keys" --size "$STALL_VALUE" --gets "$STALL_GETS" >"$name.json" \
    || fail "stall $proto: a reader got a wrong reply ($(cat "$name.json"))"
  stat_json >"$name.after.json" || echo '{"loops": []}' >"$name.after.json"
  stop_daemon
  python3 - "$name.before.json" "$name.after.json" "$name.json" "$proto" "$STALL_VALUE" "$STALL_GETS" "$loops" >>"$work/stall.rows" <<'EOF'
import json, sys
before, after, client = (json.load(open(p)) for p in sys.argv[1:4])
proto, size, gets, loops = sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
def hist(loop):
    return {int(b["upper_bound"]): int(b["count"]) for b in loop["iteration_ns"].get("buckets", [])}
cells = []
for lb, la in zip(before["loops"], after["loops"]):
    hb, ha = hist(lb), hist(la)
    diff = sorted((ub, ha.get(ub, 0) - hb.get(ub, 0)) for ub in ha if ha.get(ub, 0) > hb.get(ub, 0))
    n = sum(c for _, c in diff)
    def pct(q):
        seen = 0
        for ub, c in diff:
            seen += c
            if seen >= q * n:
                return ub
        return 0
    p50, p99 = pct(0.5), pct(0.99)
    top = diff[-1][0] if diff else 0
    yields = int(la.get("write_budget_yields", 0)) - int(lb.get("write_budget_yields", 0))
    cells.append((int(lb["longest_stall_ns"]) / 1e6, n, p50 / 1e6, p99 / 1e6, top / 1e6, yields))
def per_loop(fmt, i):
    return " / ".join(fmt % c[i] for c in cells) if cells else "(daemon died)"
print("| %s, %s | %d × %d MB ×%d pipelined, %d readers | %s | %s | %s | %s | %s | %s | %s / %s / %s ms (%d round trips; quiet p50 %s) | %s MB/s%s |" % (
    proto, "one loop" if loops == 1 else "%d loops, a value on each shard" % loops,
    len(client["readers"]), size // 1000000, gets, len(client["readers"]),
    per_loop("%.1f", 0), per_loop("%d", 1), per_loop("%.2f", 2), per_loop("%.2f", 3), per_loop("%.1f", 4), per_loop("%d", 5),
    client["rtt_ms_p50"], client["rtt_ms_p99"], client["rtt_ms_max"], client["round_trips"], client["quiet_rtt_ms_p50"],
    client["MB_per_s"], "" if client["all_ok"] else " (**a reply was wrong**)"))
EOF
}

# allocator_setup ALLOCATOR: sets preload, flags, malloc_conf and label for one allocator configuration.
allocator_setup() {
  preload=- flags=() malloc_conf=""
  case "$1" in
    glibc-keep) flags=("${trim_flag[@]}") label="glibc, --return_free_memory=false" ;;
    glibc-trim) label="glibc, --return_free_memory=true (default)" ;;
    jemalloc) preload=$JEMALLOC flags=("${trim_flag[@]}") label="jemalloc 5.3 (LD_PRELOAD), --return_free_memory=false" ;;
    jemalloc-bg) preload=$JEMALLOC flags=("${trim_flag[@]}") malloc_conf=background_thread:true
      label="jemalloc 5.3, MALLOC_CONF=background_thread:true, --return_free_memory=false" ;;
    tcmalloc) preload=$TCMALLOC flags=("${trim_flag[@]}") label="tcmalloc-minimal 2.10 (LD_PRELOAD), --return_free_memory=false" ;;
  esac
  [[ ${#trim_flag[@]} -gt 0 ]] || label="$1 (build without --return_free_memory)"
}

memory_run() {  # ALLOCATOR VALUES  (VALUES: big or small)
  local alloc="$1" values="$2" name="$work/mem.$1.$2" preload flags malloc_conf label
  allocator_setup "$alloc"
  local count size
  if [[ $values == big ]]; then count=50 size=100000; else count=640 size=8000; fi
  start_daemon "$name.log" "$preload" - "$(listen_of memcache)" --loops=2 "${flags[@]}"
  local port; port=$(address memcache "$name.log")
  local rss0; rss0=$(rss)
  local keys; keys=$(python3 -c "print(','.join('v%d' % i for i in range($count)))")
  client store "$port" --keys "$keys" --size "$size" >"$name.store.json" || fail "memory $alloc: store failed"
  sleep 1.5  # the store's own garbage settles (and is trimmed, where that is on)
  client burst "$port" --pid "$daemon_pid" --keys_prefix v --count "$count" --size "$size" --connections 100 \
    --pipeline 10 --bursts "$BURSTS" --after "$AFTER" >"$name.json" || fail "memory $alloc: no answer after the bursts"
  local trims
  trims=$(stat_json 2>/dev/null | json '"%d (%.1f ms)" % (sum(int(l.get("memory_trims", 0)) for l in j["loops"]), sum(int(l.get("memory_trim_ns", 0)) for l in j["loops"]) / 1e6)' 2>/dev/null) || trims="daemon died"
  stop_daemon
  echo "| $label | $([[ $values == big ]] && echo "$count × 100 KB" || echo "$count × 8 KB") | $(mib "$rss0") | $(json '" | ".join("—" if v is None else "%.1f" % (v / 1024.0) for v in [j["rss_before_kib"], j["rss_peak_kib"]] + list(j["rss_after_kib"].values()))' <"$name.json") | $trims |" >>"$work/mem.rows"
}

speed_run() {  # ALLOCATOR ROUND: a fresh daemon, a steady load of small then large values
  local alloc="$1" round="$2" name="$work/speed.$1.$2" preload flags malloc_conf label
  allocator_setup "$alloc"
  start_daemon "$name.log" "$preload" - "$(listen_of memcache)" --loops=2 "${flags[@]}"
  local port; port=$(address memcache "$name.log")
  local lg=("${client_pin[@]}" "$bin/loadgen" --server="$port" --protocol=memcache --connections=64 --get_ratio=0.9 --preload --json --duration="${LOAD_SECONDS}s")
  local size keys t0 t1
  for size in 100 32768; do
    keys=10000; [[ $size -le 100 ]] || keys=1000
    t0=$(cpu_ticks)
    "${lg[@]}" --keys="$keys" --key_size=32 --value_size="$size" >"$name.$size.json" || fail "speed $alloc: loadgen ($size B values) reported errors"
    t1=$(cpu_ticks)
    # allocator, value size, round, req/s, daemon CPU µs per request, p99 µs, RSS MiB
    echo "$alloc $size $round $(json '"%d %.2f %d" % (float(j["requests_per_s"]), ('"$t1"' - '"$t0"') / '"$ticks_per_s"' * 1e6 / max(1, j["requests"]), j["latency_us"]["p99"])' <"$name.$size.json") $(( $(rss) / 1024 ))" >>"$work/speed.raw"
  done
  stop_daemon
  echo "$alloc|$label" >>"$work/speed.labels"
}

for scenario in "${scenarios[@]}"; do
  case "$scenario" in
  amplify)
    : >"$work/amp.rows"
    for proto in "${protocol_list[@]}"; do
      log "amplify ($proto): 1 MB value, $AMP_CONNS connections × $AMP_NAMES names, slow readers for ${AMP_SECONDS}s"
      amplify_run "$proto" 1 - "$proto, 1 key"
      amplify_run "$proto" 2 - "$proto, 4 keys on 2 shards"
      amplify_run "$proto" 2 "$AS_LIMIT_KIB" "$proto, 4 keys on 2 shards, 1 GiB address space"
    done
    {
      echo "### Amplification: a 1 MB value named $AMP_NAMES times, $AMP_CONNS slow readers"
      echo
      echo "Each connection sends one \`get\` (memcache) / \`MGET\` (RESP) naming the keys $AMP_NAMES times, reads 64 KiB every 10 ms for ${AMP_SECONDS} s, then resets. RSS: the daemon's VmRSS at start → after the store; growth: the peak while the replies stream (sampled every 100 ms) minus that. Probe: a new connection's \`version\`/\`PING\`, every 200 ms, p50 / max (answered of sent)."
      echo
      echo "| run | loops | address space limit | reply per connection | read per connection | RSS MiB | peak growth | growth / reply bytes | probe | longest stall per loop ms | alive after |"
      echo "|---|---|---|---|---|---|---|---|---|---|---|"
      cat "$work/amp.rows"
      echo
    } >>"$report"
    ;;
  stall)
    : >"$work/stall.rows"
    for proto in "${protocol_list[@]}"; do
      log "stall ($proto): 2 × $STALL_VALUE-byte values, $STALL_GETS pipelined gets each, fast readers"
      stall_run "$proto" 2
      stall_run "$proto" 1
    done
    {
      echo "### Longest stall while streaming: $((STALL_VALUE / 1000000)) MB values"
      echo
      echo "Two values; one reader per value sends $STALL_GETS pipelined gets of it and reads as fast as it can; a third connection sends \`version\`/\`PING\` in a loop. With two loops the values are on different shards and the loops share cpu 0, so an iteration can include time the other loop ran; with one loop (both values on its shard) an iteration is the loop's own work. Per loop (loop 0 / loop 1): the longest stall after the store (storing the values, which comes first), and, from the difference of the iteration_ns histograms, the iterations during the streaming, their p50, p99 and the longest (bucket upper bounds, ≤3.1% over), and the writes cut short by the write budget."
      echo
      echo "| protocol, loops | load | longest stall after the store ms | iterations while streaming | their p50 ms | their p99 ms | their longest ms | write-budget yields | third connection's round trip p50 / p99 / max | readers' throughput |"
      echo "|---|---|---|---|---|---|---|---|---|---|"
      cat "$work/stall.rows"
      echo
    } >>"$report"
    ;;
  memory)
    : >"$work/mem.rows"
    for values in big small; do
      for alloc in "${allocator_list[@]}"; do
        [[ ${#trim_flag[@]} -gt 0 || $alloc != glibc-trim ]] || continue
        log "memory: $alloc, $values values, $BURSTS bursts of 100 connections"
        memory_run "$alloc" "$values"
      done
    done
    marks=$(tr , '\n' <<<"$AFTER" | sed 's/$/ s after/' | paste -sd'|' | sed 's/|/ | /g')
    {
      echo "### Memory after bursts of multi-gets"
      echo
      echo "Two loops. $BURSTS burst(s) of 100 connections; each pipelines 10 \`get\`s naming every item (5 MB a get, 50 MB a connection), reads a random part of the reply (up to 4 MiB) and resets. Values of 16 KiB or more (the 100 KB ones) are sent from the item itself; smaller ones (8 KB) are copied into the output. RSS in MiB: at start, after the store (the baseline), the peak (sampled every 100 ms), and after the last reset. Trims: the loops' malloc_trim calls (time)."
      echo
      echo "| allocator | items | at start | baseline | peak | $marks | trims |"
      echo "|---|---|---|---|---|$(tr , '\n' <<<"$AFTER" | sed 's/.*/---|/' | paste -sd '')---|"
      cat "$work/mem.rows"
      echo
    } >>"$report"
    ;;
  speed)
    : >"$work/speed.raw"; : >"$work/speed.labels"
    for round in $(seq 1 "$SPEED_ROUNDS"); do
      for alloc in "${allocator_list[@]}"; do
        [[ ${#trim_flag[@]} -gt 0 || $alloc != glibc-trim ]] || continue
        log "speed: $alloc, round $round of $SPEED_ROUNDS"
        speed_run "$alloc" "$round"
      done
    done
    {
      echo "### Allocator speed: a steady memcache load"
      echo
      echo "A fresh daemon (two loops) per allocator and round; \`loadgen --protocol=memcache --connections=64 --get_ratio=0.9 --preload --key_size=32 --duration=${LOAD_SECONDS}s\` with 10,000 keys of 100 B, then 1,000 keys of 32 KiB (closed loop, one thread on cpu 1). $SPEED_ROUNDS round(s), allocators interleaved; each cell is the best round (highest req/s, lowest CPU), the range over the rounds in brackets. Daemon CPU: its utime+stime over the run per request, less sensitive than req/s to whatever else the machine runs."
      echo
      echo "| allocator | 100 B: req/s | daemon CPU µs/req | p99 µs | 32 KiB: req/s | MB/s | daemon CPU µs/req | p99 µs | RSS at the end MiB |"
      echo "|---|---|---|---|---|---|---|---|---|"
      python3 - "$work/speed.raw" "$work/speed.labels" <<'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
labels = dict(line.rstrip("\n").split("|", 1) for line in open(sys.argv[2]) if line.strip())
def spread(values, fmt):
    return "" if len(values) < 2 else " [%s–%s]" % (fmt % min(values), fmt % max(values))
for alloc in dict.fromkeys(r[0] for r in rows):
    cells = []
    for size in ("100", "32768"):
        runs = [r for r in rows if r[0] == alloc and r[1] == size]
        rps = [int(r[3]) for r in runs]
        cpu = [float(r[4]) for r in runs]
        best = max(runs, key=lambda r: int(r[3]))
        cell = "%d%s | " % (max(rps), spread(rps, "%d"))
        if size == "32768":
            cell += "%.0f | " % (max(rps) * 32768 / 1e6)
        cell += "%.1f%s | %s" % (min(cpu), spread(cpu, "%.1f"), best[5])
        cells.append(cell)
    rss = max(int(r[6]) for r in rows if r[0] == alloc)
    print("| %s | %s | %s | %d |" % (labels[alloc], cells[0], cells[1], rss))
EOF
      echo
    } >>"$report"
    ;;
  esac
done

echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)." >>"$report"
cat "$report"
if [[ $failures -gt 0 ]]; then echo "largevalues: $failures check(s) failed" >&2; exit 1; fi
