#!/usr/bin/env bash
# Benchmarks percored against its peers (nginx, memcached, redis-server and a bare epoll floor
# server) on this machine: the server runs alone on cpu 0
# (one event loop / one worker), the client on cpu 1, one server after the other, each driven by
# the peer's standard client and by loadgen. For every run it records throughput, latency
# percentiles and the server's CPU microseconds per request (utime+stime from /proc/PID/stat
# before and after, divided by the requests), then writes tools/bench/RESULTS.md and
# tools/bench/results.png.
#
#   tools/bench/compare.sh                 every scenario, 5 s per run (about 10 minutes)
#   tools/bench/compare.sh --quick         2 s per run
#   tools/bench/compare.sh --scenario 4    only scenario 4 (repeatable: --scenario 1 --scenario 5)
#   tools/bench/compare.sh --out DIR       write RESULTS.md and results.png to DIR instead
#   tools/bench/compare.sh --nice -10      run servers and clients at this nice level, so other
#                                          work on a shared machine disturbs them less
#   tools/bench/compare.sh --backend epoll percored's back end wherever a scenario does not name
#                                          one (default: percored's own default)
#   PERCORE_BENCH_BAZEL_FLAGS="..." tools/bench/compare.sh    extra flags for the opt build
#
# Scenarios: 1 HTTP plaintext, 2 memcache get/set, 3 RESP GET/SET, 4 echo vs the floor,
# 5 connection churn, 6 poll vs epoll under idle connections, 7 admin watch overhead,
# 8 memory per idle connection, 9 instructions per request (callgrind.sh), 10 the tests/bench
# microbenchmarks, 11 back ends: io_uring vs epoll beside the bare epoll and io_uring floors
# (best of 3 interleaved rounds; not run by default: --scenario 11), 12 the cost of the
# rebalancer at steady state: --rebalance=off vs load, 2 loops, 3 interleaved rounds.
# A scenario whose percore service does not exist yet is skipped with a note.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../.."
repo=$(pwd)

duration=5
quick=0
nice_level=0
backend_flags=()
scenarios=()
out_dir="$repo/tools/bench"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1; duration=2 ;;
    --nice) nice_level="$2"; shift ;;
    --nice=*) nice_level="${1#*=}" ;;
    --backend) backend_flags=(--backend="$2"); shift ;;
    --backend=*) backend_flags=(--backend="${1#*=}") ;;
    --scenario) scenarios+=("$2"); shift ;;
    --scenario=*) scenarios+=("${1#*=}") ;;
    --out) out_dir="$2"; shift ;;
    -h|--help) sed -n '2,26p' "$self"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ ${#scenarios[@]} -eq 0 ]]; then scenarios=(1 2 3 4 5 6 7 8 9 10 12); fi
wants() { local s; for s in "${scenarios[@]}"; do [[ "$s" == "$1" ]] && return 0; done; return 1; }

SERVER_CPU=0
CLIENT_CPU=1
IDLE_MANY=10000
work=$(mktemp -d /tmp/percore-bench.XXXXXX)
rows="$work/rows.tsv"        # scenario, config, server, client, req/s, p50..max (us), cpu us/req, errors, note
commands="$work/commands.txt"
notes="$work/notes.txt"
: >"$rows"; : >"$commands"; : >"$notes"
server_pid=""
holder_pid=""
watch_pid=""

log() { echo "compare: $*" >&2; }
note() { echo "$*" >>"$notes"; log "$*"; }

cleanup() {
  for p in $watch_pid $holder_pid $server_pid; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

# --- Build and prerequisites ---------------------------------------------------------------
tools/setup.sh --bench
log "building percored, loadgen, floor_server (--config=opt)"
targets=(//tools:percored //tools:loadgen //tools/bench:floor_server //tools/bench:floor_uring_server)
micro_benches=$(sed -n 's/^ *name = "\([a-z_]*_bench\)",/\1/p' tests/bench/BUILD)
for m in $micro_benches; do targets+=("//tests/bench:$m"); done
have_percorectl=0
if grep -q 'name = "percorectl"' tools/BUILD; then targets+=(//tools:percorectl); have_percorectl=1; fi
# PERCORE_BENCH_BAZEL_FLAGS: extra flags for this build (e.g. a --per_file_copt work-around).
read -r -a extra_flags <<<"${PERCORE_BENCH_BAZEL_FLAGS:-}"
# The tree as built, taken now: edits made while the benchmarks run are not in the binaries
# (this report and its chart are about to change, so they do not count).
built_commit=$(git rev-parse --short HEAD 2>/dev/null)
dirty=$(git status --porcelain -- . ':!tools/bench/RESULTS.md' ':!tools/bench/results.png' 2>/dev/null | head -1)
if ! bazel build --config=opt "${extra_flags[@]}" "${targets[@]}" >"$work/build.log" 2>&1; then
  grep -E '^(ERROR|FAILED)|error:' "$work/build.log" | head -20 >&2
  log "build failed; full log in $work/build.log"
  exit 1
fi
# Copies, from the opt output tree itself: other builds may repoint bazel-bin while this runs.
opt_bin=$(bazel info --config=opt "${extra_flags[@]}" bazel-bin 2>/dev/null)
bin="$work/bin"
mkdir -p "$bin"
cp "$opt_bin/tools/percored" "$opt_bin/tools/loadgen" "$opt_bin/tools/bench/floor_server" \
  "$opt_bin/tools/bench/floor_uring_server" "$bin/"
if [[ $have_percorectl -eq 1 ]]; then cp "$opt_bin/tools/percorectl" "$bin/"; fi
for m in $micro_benches; do cp "$opt_bin/tests/bench/$m" "$bin/"; done

ulimit -n "$(ulimit -Hn)"
niced=()
if [[ "$nice_level" != 0 ]]; then niced=(nice -n "$nice_level"); fi
clk_tck=$(getconf CLK_TCK)
percore_services=$({ "$bin/percored" --helpfull 2>&1 || true; } | tr -s '\n ' '  ' | sed -n 's/.*Services: \([a-z, ]*\)\..*/\1/p')
has_service() { [[ ", $percore_services," == *", $1,"* ]]; }
log "percored services: $percore_services"

# --- Servers -------------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 tries=0
  until port_open "$port"; do
    tries=$((tries + 1))
    if [[ $tries -gt 600 ]] || ! kill -0 "$server_pid" 2>/dev/null; then
      log "server on port $port did not come up"; return 1
    fi
    sleep 0.05
  done
}

# start_server PORT COMMAND...: runs COMMAND pinned to the server CPU; server_pid is its pid.
start_server() {
  local port=$1; shift
  if port_open "$port"; then log "port $port is already in use"; exit 1; fi
  echo "taskset -c $SERVER_CPU ${niced[*]} $*" >>"$commands"
  taskset -c "$SERVER_CPU" "${niced[@]}" "$@" >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_port "$port"
}

stop_server() {
  [[ -z "$server_pid" ]] && return
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

PERCORE_HTTP=8080 NGINX_HTTP=8081 FLOOR_HTTP=8082
PERCORE_ECHO=7000 FLOOR_ECHO=7001
PERCORE_MEMCACHE=11311 MEMCACHED=11211
PERCORE_RESP=6380 REDIS=6379

start_percored() {  # start_percored [extra flags...]: every service percored has, one loop
  local listen="echo=127.0.0.1:$PERCORE_ECHO"
  has_service http && listen+=",http=127.0.0.1:$PERCORE_HTTP"
  has_service memcache && listen+=",memcache=127.0.0.1:$PERCORE_MEMCACHE"
  has_service resp && listen+=",resp=127.0.0.1:$PERCORE_RESP"
  start_server "$PERCORE_ECHO" "$bin/percored" --loops=1 --listen="$listen" --drain_timeout=1s \
    ${backend_flags[@]+"${backend_flags[@]}"} "$@"
  if has_service http; then wait_port "$PERCORE_HTTP"; fi
}

nginx_dir="$work/nginx"
start_nginx() {
  mkdir -p "$nginx_dir/logs"
  cat >"$nginx_dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $nginx_dir/nginx.pid;
error_log $nginx_dir/logs/error.log warn;
events { worker_connections 20000; use epoll; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $nginx_dir/client_body;
  proxy_temp_path $nginx_dir/proxy;
  fastcgi_temp_path $nginx_dir/fastcgi;
  uwsgi_temp_path $nginx_dir/uwsgi;
  scgi_temp_path $nginx_dir/scgi;
  server {
    listen 127.0.0.1:$NGINX_HTTP backlog=4096;
    location /plaintext { default_type text/plain; return 200 "Hello, World!"; }
  }
}
EOF
  start_server "$NGINX_HTTP" nginx -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -e "$nginx_dir/logs/error.log"
}
start_memcached() { start_server "$MEMCACHED" memcached -u root -t 1 -l 127.0.0.1 -p "$MEMCACHED" -U 0 -c 20000 -m 1024; }
start_redis() {
  start_server "$REDIS" redis-server --bind 127.0.0.1 --port "$REDIS" --save "" --appendonly no \
    --maxclients 19000 --dir "$work" --logfile "$work/redis.log"
}
start_floor() { start_server "$1" "$bin/floor_server" --mode="$2" --port="$1"; }
start_floor_uring() { start_server "$1" "$bin/floor_uring_server" --mode="$2" --port="$1"; }
FLOOR_URING_HTTP=8083 FLOOR_URING_ECHO=7002

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }

# --- Clients and their output --------------------------------------------------------------
to_us() {  # "180.57us" / "2.25ms" / "1.02s" -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "ms") n *= 1000; else if (u == "s") n *= 1000000; else if (u == "m") n *= 60000000;
    printf "%.1f", n }'
}
json_num() { sed -n "s/.*\"$2\": \([-0-9.eE+]*\).*/\1/p" <<<"$1" | head -1; }

# measure SCENARIO CONFIG SERVER CLIENT COMMAND...: runs COMMAND pinned to the client CPU,
# charges the server's CPU time during it to the requests the client reports, adds a row.
measure() {
  local scenario=$1 config=$2 server=$3 client=$4; shift 4
  echo "taskset -c $CLIENT_CPU ${niced[*]} $*" >>"$commands"
  local t0 t1 output rc=0
  t0=$(cpu_ticks "$server_pid")
  output=$(taskset -c "$CLIENT_CPU" "${niced[@]}" "$@" 2>&1) || rc=$?
  t1=$(cpu_ticks "$server_pid")
  echo "== $scenario $config $server $client (exit $rc)" >>"$work/client.log"
  echo "$output" >>"$work/client.log"
  local requests=0 rps="" p50="–" p90="–" p99="–" p999="–" max="–" errors=0 note=""
  case "$client" in
    loadgen*)
      requests=$(json_num "$output" requests); rps=$(json_num "$output" requests_per_s)
      p50=$(json_num "$output" p50); p90=$(json_num "$output" p90); p99=$(json_num "$output" p99)
      p999=$(json_num "$output" p99.9); max=$(json_num "$output" max); errors=$(json_num "$output" errors)
      if [[ "$*" == *--connect_per_request* ]]; then note="$(json_num "$output" connects_per_s) conn/s"; fi
      ;;
    wrk*)
      requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$output")
      rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$output")
      p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$output")")
      p90=$(to_us "$(awk '$1 == "90%" {print $2}' <<<"$output")")
      p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$output")")
      max=$(to_us "$(awk '$1 == "Latency" && NF >= 4 {print $4; exit}' <<<"$output")")
      errors=$(awk '/Non-2xx/ {e += $NF} /Socket errors/ {gsub(",", ""); e += $4 + $6 + $8 + $10} END {print e + 0}' <<<"$output")
      ;;
    redis-benchmark*)
      # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
      local line; line=$(grep -v '^"test"' <<<"$output" | grep '^"' | tail -1 | tr -d '"')
      requests=$(sed -n 's/.* -n \([0-9]*\) .*/\1/p' <<<"$* ")
      rps=$(cut -d, -f2 <<<"$line")
      p50=$(awk -F, '{printf "%.1f", $5 * 1000}' <<<"$line"); p99=$(awk -F, '{printf "%.1f", $7 * 1000}' <<<"$line")
      max=$(awk -F, '{printf "%.1f", $8 * 1000}' <<<"$line"); note="p95 $(awk -F, '{printf "%.1f", $6 * 1000}' <<<"$line") us"
      ;;
    memaslap*)
      requests=$(sed -n 's/^Run time: .* Ops: \([0-9]*\) .*/\1/p' <<<"$output")
      rps=$(sed -n 's/^Run time: .* TPS: \([0-9]*\) .*/\1/p' <<<"$output")
      note="get_misses $(sed -n 's/^get_misses: *//p' <<<"$output")"
      ;;
  esac
  if [[ -z "$requests" || "$requests" == 0 ]]; then note="client failed (exit $rc); see the client log"; requests=0; fi
  if [[ $rc -ne 0 && "$client" != loadgen* ]]; then note="$note; exit $rc"; fi
  local cpu="–"
  if [[ "$requests" -gt 0 ]]; then
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$clk_tck" -v n="$requests" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}')
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$config" "$server" "$client" \
    "${rps:-–}" "${p50:-–}" "${p90:-–}" "${p99:-–}" "${p999:-–}" "${max:-–}" "$cpu" "${errors:-0}" "$note" >>"$rows"
  log "$scenario | $config | $server | $client | ${rps:-?} req/s | cpu ${cpu} us/req | errors ${errors:-0}"
}

loadgen() { echo "$bin/loadgen" --duration="${duration}s" --threads=1 --json "$@"; }

# hold_idle PORT N: a loadgen that opens N idle connections to PORT and holds them; returns
# once the server process has them all (its fd count grew by N).
hold_idle() {  # port count [protocol: each connection first has one request of it answered]
  local port=$1 n=$2 base tries=0
  local served=()
  [[ -n "${3:-}" ]] && served=(--protocol="$3" --idle_after_request)
  base=$(fd_count "$server_pid")
  echo "taskset -c $CLIENT_CPU $bin/loadgen --server=127.0.0.1:$port --connections=0 --idle_connections=$n ${served[*]} --duration=600s" >>"$commands"
  taskset -c "$CLIENT_CPU" "$bin/loadgen" --server="127.0.0.1:$port" --connections=0 --idle_connections="$n" \
    "${served[@]}" --duration=600s >/dev/null 2>"$work/holder.log" &
  holder_pid=$!
  until [[ $(fd_count "$server_pid") -ge $((base + n)) ]]; do
    tries=$((tries + 1))
    if [[ $tries -gt 1200 ]] || ! kill -0 "$holder_pid" 2>/dev/null; then
      log "idle connections did not all arrive ($(fd_count "$server_pid") fds)"; cat "$work/holder.log" >&2; return 1
    fi
    sleep 0.05
  done
}
release_idle() {
  [[ -z "$holder_pid" ]] && return
  kill "$holder_pid" 2>/dev/null || true
  wait "$holder_pid" 2>/dev/null || true
  holder_pid=""
}

http_servers() {  # name:port:starter
  has_service http && echo "percore:$PERCORE_HTTP:start_percored"
  echo "nginx:$NGINX_HTTP:start_nginx"
  echo "floor:$FLOOR_HTTP:start_floor $FLOOR_HTTP http"
}

# --- Scenarios -----------------------------------------------------------------------------
scenario_1() {  # HTTP plaintext keep-alive
  local config_list=("c16:16:1" "c128:128:1" "c1024:1024:1" "c16 pipelined x16:16:16")
  has_service http || note "Scenario 1: percore has no http service yet; nginx and the floor only."
  local entry name port starter cfg label conns depth
  while IFS= read -r entry; do
    IFS=: read -r name port starter <<<"$entry"
    $starter
    for cfg in "${config_list[@]}"; do
      IFS=: read -r label conns depth <<<"$cfg"
      if [[ $depth -eq 1 ]]; then
        measure 1 "$label" "$name" wrk wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$port/plaintext"
      else
        measure 1 "$label" "$name" wrk wrk -t1 -c"$conns" -d"${duration}s" --latency -s tools/bench/pipeline.lua \
          "http://127.0.0.1:$port/plaintext" -- "$depth"
      fi
      measure 1 "$label" "$name" loadgen $(loadgen --server="127.0.0.1:$port" --protocol=http \
        --connections="$conns" --depth="$depth")
    done
    stop_server
  done < <(http_servers)
}

scenario_2() {  # memcache 90% get / 10% set
  local mc_load=(--protocol=memcache --connections=64 --key_size=32 --value_size=100 --keys=10000
                 --get_ratio=0.9 --preload)
  local servers=("memcached:$MEMCACHED:start_memcached")
  if has_service memcache; then servers=("percore:$PERCORE_MEMCACHE:start_percored" "${servers[@]}")
  else note "Scenario 2: percore has no memcache service yet; memcached only."; fi
  local entry name port starter
  for entry in "${servers[@]}"; do
    IFS=: read -r name port starter <<<"$entry"
    $starter
    measure 2 "64 conns, 90/10" "$name" memaslap memcaslap -s "127.0.0.1:$port" -T 1 -c 64 -t "${duration}s" \
      -F tools/bench/memaslap.cnf
    measure 2 "64 conns, 90/10" "$name" loadgen $(loadgen --server="127.0.0.1:$port" "${mc_load[@]}")
    stop_server
  done
}

scenario_3() {  # RESP GET and SET
  local servers=("redis:$REDIS:start_redis")
  if has_service resp; then servers=("percore:$PERCORE_RESP:start_percored" "${servers[@]}")
  else note "Scenario 3: percore has no resp service yet; redis only."; fi
  # redis-benchmark runs a request count, not a time: sized to last about the run duration here.
  local n1=$((duration * 15000)) n16=$((duration * 150000))
  local entry name port starter depth op n ratio
  for entry in "${servers[@]}"; do
    IFS=: read -r name port starter <<<"$entry"
    $starter
    for depth in 1 16; do
      n=$n1; [[ $depth -eq 16 ]] && n=$n16
      for op in set get; do
        measure 3 "${op^^} P$depth" "$name" redis-benchmark redis-benchmark -h 127.0.0.1 -p "$port" -c 64 -n "$n" \
          -P "$depth" -t "$op" -d 100 -r 10000 --csv
        ratio=0; [[ $op == get ]] && ratio=1
        measure 3 "${op^^} P$depth" "$name" loadgen $(loadgen --server="127.0.0.1:$port" --protocol=resp \
          --connections=64 --depth="$depth" --key_size=32 --value_size=100 --keys=10000 --get_ratio="$ratio" \
          $([[ $op == get ]] && echo --preload))
      done
    done
    stop_server
  done
}

scenario_4() {  # echo vs the floor
  local entry name port starter size
  for entry in "percore:$PERCORE_ECHO:start_percored" "floor:$FLOOR_ECHO:start_floor $FLOOR_ECHO echo"; do
    IFS=: read -r name port starter <<<"$entry"
    $starter
    for size in 64 4096; do
      measure 4 "${size} B, 16 conns" "$name" loadgen $(loadgen --server="127.0.0.1:$port" --protocol=echo \
        --connections=16 --message_size="$size")
    done
    stop_server
  done
}

scenario_5() {  # connection churn: one request per connection
  local entries=("percore echo:$PERCORE_ECHO:start_percored:echo" "floor echo:$FLOOR_ECHO:start_floor $FLOOR_ECHO echo:echo")
  has_service http && entries+=("percore http:$PERCORE_HTTP:start_percored:http"
                                "percore http reuseport:$PERCORE_HTTP:start_percored --balance=reuseport:http")
  entries+=("nginx http:$NGINX_HTTP:start_nginx:http")
  local entry name port starter protocol
  for entry in "${entries[@]}"; do
    IFS=: read -r name port starter protocol <<<"$entry"
    $starter
    measure 5 "16 concurrent" "$name" loadgen $(loadgen --server="127.0.0.1:$port" --protocol="$protocol" \
      --connections=16 --connect_per_request)
    stop_server
  done
}

scenario_6() {  # poll vs epoll with idle connections
  local backend idle
  for backend in epoll poll; do
    for idle in 0 1000 $IDLE_MANY; do
      start_percored --backend="$backend"
      if [[ $idle -gt 0 ]]; then hold_idle "$PERCORE_ECHO" "$idle"; fi
      measure 6 "$idle idle" "percore $backend" loadgen $(loadgen --server="127.0.0.1:$PERCORE_ECHO" \
        --protocol=echo --connections=16)
      release_idle
      stop_server
    done
  done
}

scenario_7() {  # admin overhead: scenario 1 (16 connections) with percorectl watch running
  if [[ $have_percorectl -eq 0 ]]; then note "Scenario 7: //tools:percorectl does not exist yet; skipped."; return; fi
  local protocol=http port=$PERCORE_HTTP
  if ! has_service http; then
    protocol=echo; port=$PERCORE_ECHO
    note "Scenario 7: percore has no http service yet; measured with echo instead."
  fi
  start_percored
  local watching
  for watching in no yes; do
    if [[ $watching == yes ]]; then
      echo "taskset -c $CLIENT_CPU $bin/percorectl --admin=127.0.0.1:9100 --interval=100ms watch" >>"$commands"
      taskset -c "$CLIENT_CPU" "$bin/percorectl" --admin=127.0.0.1:9100 --interval=100ms watch >/dev/null 2>&1 &
      watch_pid=$!
    fi
    if [[ $protocol == http ]]; then measure 7 "watch: $watching" percore wrk wrk -t1 -c16 -d"${duration}s" --latency \
      "http://127.0.0.1:$port/plaintext"; fi
    measure 7 "watch: $watching" percore loadgen $(loadgen --server="127.0.0.1:$port" --protocol="$protocol" --connections=16)
  done
  kill "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; watch_pid=""
  stop_server
}

memory_rows="$work/memory.tsv"
: >"$memory_rows"
scenario_8() {  # RSS per idle connection, each having served one request first
  local entries=("percore (echo):$PERCORE_ECHO:echo:start_percored")
  has_service http && entries+=("percore (http):$PERCORE_HTTP:http:start_percored")
  has_service memcache && entries+=("percore (memcache):$PERCORE_MEMCACHE:memcache:start_percored")
  has_service resp && entries+=("percore (resp):$PERCORE_RESP:resp:start_percored")
  entries+=("nginx:$NGINX_HTTP:http:start_nginx" "memcached:$MEMCACHED:memcache:start_memcached"
            "redis:$REDIS:resp:start_redis" "floor:$FLOOR_ECHO:echo:start_floor $FLOOR_ECHO echo")
  local entry name port protocol starter rest held
  for entry in "${entries[@]}"; do
    IFS=: read -r name port protocol starter <<<"$entry"
    $starter
    sleep 1  # let start-up allocations (threads, the admin service) settle before "at rest"
    rest=$(rss_kib "$server_pid")
    hold_idle "$port" "$IDLE_MANY" "$protocol"
    held=$(rss_kib "$server_pid")
    release_idle
    stop_server
    printf '%s\t%s\t%s\t%s\n' "$name" "$rest" "$held" \
      "$(awk -v a="$rest" -v b="$held" -v n="$IDLE_MANY" 'BEGIN {printf "%.0f", (b - a) * 1024 / n}')" >>"$memory_rows"
    log "8 | $name | rest $rest KiB | with $IDLE_MANY idle $held KiB"
  done
}

callgrind_rows="$work/callgrind.tsv"
: >"$callgrind_rows"
scenario_9() {  # instructions per request under callgrind
  tools/bench/callgrind.sh --bin "$bin" --tsv "$callgrind_rows" --commands "$commands" \
    $([[ $quick -eq 1 ]] && echo --quick) || note "Scenario 9: callgrind.sh failed."
}

micro_rows="$work/micro.tsv"
: >"$micro_rows"
scenario_10() {  # the Google Benchmark microbenchmarks of tests/bench, on the client CPU
  local m min_time=0.3
  if [[ $quick -eq 1 ]]; then min_time=0.05; fi
  for m in $micro_benches; do
    echo "taskset -c $CLIENT_CPU $bin/$m --benchmark_min_time=$min_time --benchmark_format=json" >>"$commands"
    # The JSON reporter writes one field per line; a benchmark's fields end at its "}".
    if ! taskset -c "$CLIENT_CPU" "$bin/$m" --benchmark_min_time="$min_time" --benchmark_format=json \
        >"$work/$m.json" 2>"$work/$m.err"; then
      note "Scenario 10: $m failed: $(tail -1 "$work/$m.err")"
    fi
    awk -v bench="$m" '
      function value(line) { sub(/^[^:]*: */, "", line); sub(/,$/, "", line); gsub(/"/, "", line); return line }
      /"benchmarks": \[/ { inside = 1 }
      inside && /"name":/ { name = value($0); cpu = ""; unit = ""; items = ""; bytes = "" }
      inside && /"cpu_time":/ { cpu = value($0) }
      inside && /"time_unit":/ { unit = value($0) }
      inside && /"items_per_second":/ { items = value($0) }
      inside && /"bytes_per_second":/ { bytes = value($0) }
      inside && /^    }/ && name != "" {
        rate = items != "" ? sprintf("%.1f M items/s", items / 1e6) : (bytes != "" ? sprintf("%.2f GB/s", bytes / 1e9) : "");
        printf "%s\t%s\t%.1f %s\t%s\n", bench, name, cpu, unit, rate; name = "" }' "$work/$m.json" >>"$micro_rows"
    log "10 | $m done"
  done
}

# Kernel entries of percored's loop 0 so far, from its own statistics: io_uring_enter calls on
# io_uring; epoll_wait, read and write calls on epoll.
kernel_entries() {
  "$bin/percorectl" --admin=127.0.0.1:9100 stats --prometheus 2>/dev/null | awk '
    /^percore_loop_uring_enters_total\{loop="0"\}/ { u = $2 }
    /^percore_loop_(poll|read|write)_calls_total\{loop="0"\}/ { e += $2 }
    END { print (u > 0 ? u : e) + 0 }'
}

backend_rows="$work/backends.tsv"  # config, server, kernel entries per request
: >"$backend_rows"
# measure_entries CONFIG SERVER CLIENT COMMAND...: measure, plus percored's kernel entries per request.
measure_entries() {
  local config=$1 server=$2 before after
  before=$(kernel_entries)
  measure 11 "$@"
  after=$(kernel_entries)
  local requests; requests=$(awk -F'\t' -v c="$config" -v s="$server" '$1 == 11 && $2 == c && $3 == s {r = $5} END {print r}' "$rows")
  awk -v c="$config" -v s="$server" -v d=$((after - before)) -v rps="$requests" -v t="$duration" \
    'BEGIN { if (rps > 0) printf "%s\t%s\t%.3f\n", c, s, d / (rps * t) }' >>"$backend_rows"
}

measure_11() { measure 11 "$@"; }
scenario_11() {  # back ends side by side: percore io_uring and epoll, the epoll and io_uring floors
  local rounds=3 round entry name port starter b
  [[ $quick -eq 1 ]] && rounds=1
  for round in $(seq "$rounds"); do
    for entry in "percore io_uring|$PERCORE_HTTP|start_percored --backend=io_uring" \
                 "percore epoll|$PERCORE_HTTP|start_percored --backend=epoll" \
                 "floor epoll|$FLOOR_HTTP|start_floor $FLOOR_HTTP http" \
                 "floor io_uring|$FLOOR_URING_HTTP|start_floor_uring $FLOOR_URING_HTTP http"; do
      IFS='|' read -r name port starter <<<"$entry"
      $starter
      local m=measure_11; [[ $name == percore* ]] && m=measure_entries
      $m "HTTP c64" "$name" wrk wrk -t1 -c64 -d"${duration}s" --latency "http://127.0.0.1:$port/plaintext"
      $m "HTTP c1" "$name" wrk wrk -t1 -c1 -d"${duration}s" --latency "http://127.0.0.1:$port/plaintext"
      $m "HTTP c16 pipelined x16" "$name" wrk wrk -t1 -c16 -d"${duration}s" --latency -s tools/bench/pipeline.lua \
        "http://127.0.0.1:$port/plaintext" -- 16
      stop_server
    done
    for entry in "percore io_uring|$PERCORE_ECHO|start_percored --backend=io_uring" \
                 "percore epoll|$PERCORE_ECHO|start_percored --backend=epoll" \
                 "floor epoll|$FLOOR_ECHO|start_floor $FLOOR_ECHO echo" \
                 "floor io_uring|$FLOOR_URING_ECHO|start_floor_uring $FLOOR_URING_ECHO echo"; do
      IFS='|' read -r name port starter <<<"$entry"
      $starter
      local m=measure_11; [[ $name == percore* ]] && m=measure_entries
      $m "echo 64 B c64" "$name" loadgen $(loadgen --server="127.0.0.1:$port" --protocol=echo --connections=64)
      $m "echo 64 B c1" "$name" loadgen $(loadgen --server="127.0.0.1:$port" --protocol=echo --connections=1)
      stop_server
    done
    for b in io_uring epoll; do
      start_percored --backend="$b"
      sleep 1
      local rest held
      rest=$(rss_kib "$server_pid")
      hold_idle "$PERCORE_ECHO" "$IDLE_MANY"
      held=$(rss_kib "$server_pid")
      measure_entries "echo 64 B c64 + $IDLE_MANY idle" "percore $b" loadgen $(loadgen --server="127.0.0.1:$PERCORE_ECHO" \
        --protocol=echo --connections=64)
      release_idle
      stop_server
      printf '%s\t%s\t%s\n' "memory per idle connection" "percore $b" \
        "$(awk -v a="$rest" -v b="$held" -v n="$IDLE_MANY" 'BEGIN {printf "%.0f B", (b - a) * 1024 / n}')" >>"$backend_rows"
    done
    for entry in "percore io_uring|--backend=io_uring" "percore io_uring, msg_ring hand-off|--backend=io_uring --uring_wake=msg_ring" \
                 "percore epoll|--backend=epoll"; do
      IFS='|' read -r name flags <<<"$entry"
      start_percored $flags
      measure 11 "churn: 1 request per connection, 16 concurrent" "$name" loadgen $(loadgen \
        --server="127.0.0.1:$PERCORE_ECHO" --protocol=echo --connections=16 --connect_per_request)
      stop_server
    done
    # The default back end against the peers people would pick instead.
    if has_service memcache; then
      for entry in "percore (default)|$PERCORE_MEMCACHE|start_percored" "memcached|$MEMCACHED|start_memcached"; do
        IFS='|' read -r name port starter <<<"$entry"
        $starter
        measure 11 "memcache 90/10 c64" "$name" memaslap memcaslap -s "127.0.0.1:$port" -T 1 -c 64 -t "${duration}s" \
          -F tools/bench/memaslap.cnf
        stop_server
      done
    fi
    if has_service resp; then
      for entry in "percore (default)|$PERCORE_RESP|start_percored" "redis|$REDIS|start_redis"; do
        IFS='|' read -r name port starter <<<"$entry"
        $starter
        measure 11 "RESP GET c64" "$name" redis-benchmark redis-benchmark -h 127.0.0.1 -p "$port" -c 64 \
          -n $((duration * 15000)) -t get -d 100 -r 10000 --csv
        stop_server
      done
    fi
  done
}

rebalance_rows="$work/rebalance.tsv"  # round, mode, loads halfway, rebalancer counters at the end
: >"$rebalance_rows"
# Scenario 12: what the rebalancer costs when there is nothing to fix. The load signal (each
# loop's thread CPU over the last 500 ms) is always on and cannot be turned off, so this
# compares --rebalance=off against --rebalance=load: the difference is the rebalancer's own
# work (a load check every --rebalance_interval) and any move it makes. The load is balanced
# (16 echo connections handed out round robin to 2 loops), so a move would be a false alarm;
# the counters say whether there was one. Rounds alternate off and load, so drift on the
# machine hits both alike.
scenario_12() {
  local help; help=$({ "$bin/percored" --helpfull 2>&1 || true; })
  if [[ "$help" != *-rebalance* ]]; then
    note "Scenario 12: this percored has no --rebalance flag; skipped."; return
  fi
  local rounds=3 round mode
  [[ $quick -eq 1 ]] && rounds=1
  for round in $(seq "$rounds"); do
    for mode in off load; do
      start_percored --loops=2 --balance=round_robin --rebalance="$mode"
      # Halfway through the run, the loops' loads: each covers only the last 500 ms, so it is
      # read while the client still runs. Both modes pay for this one admin call alike.
      local snapshot="$work/rebalance-$round-$mode.json"
      if [[ $have_percorectl -eq 1 ]]; then
        (sleep "$(awk -v d="$duration" 'BEGIN {print d / 2}')"
         "$bin/percorectl" --admin=127.0.0.1:9100 --json stats >"$snapshot" 2>/dev/null || true) &
        watch_pid=$!
      fi
      measure 12 "echo 64 B, 16 conns, 2 loops, round $round" "percore rebalance=$mode" loadgen \
        $(loadgen --server="127.0.0.1:$PERCORE_ECHO" --protocol=echo --connections=16)
      if [[ -n "$watch_pid" ]]; then wait "$watch_pid" 2>/dev/null || true; watch_pid=""; fi
      if [[ $have_percorectl -eq 1 ]]; then
        # The counters as of the end of the run, the loads as of its middle.
        "$bin/percorectl" --admin=127.0.0.1:9100 --json stats 2>/dev/null | python3 -c '
import json, sys
end = json.loads(sys.stdin.read())
try:
    middle = json.load(open(sys.argv[3]))
except (OSError, ValueError):
    middle = {"loops": []}
r = end.get("rebalance", {})
loads = "/".join(str(l.get("load_permille", 0)) for l in middle["loops"]) or "–"
print("\t".join([sys.argv[1], sys.argv[2], loads] +
                [str(r.get(k, "–")) for k in ("rounds", "imbalanced_rounds", "moves_started", "moved", "move_failures")]))' \
          "$round" "$mode" "$snapshot" >>"$rebalance_rows" || true
      fi
      stop_server
    done
  done
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for s in 1 2 3 4 5 6 7 8 9 10 11 12; do
  if wants "$s"; then log "scenario $s"; "scenario_$s"; fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Report --------------------------------------------------------------------------------
mkdir -p "$out_dir"
results="$out_dir/RESULTS.md"
chart="$out_dir/results.png"
version() { "$@" 2>&1 | head -1 | tr -d '\r' || true; }
# Sections written by hand (targets, reliability, soak) sit between these markers; a new run
# keeps them, placed before the chart.
kept=""
if [[ -f "$results" ]]; then kept=$(sed -n '/^<!-- kept: begin/,/^<!-- kept: end/p' "$results"); fi
{
  echo "# percore benchmark results"
  echo
  echo "Written by \`tools/bench/compare.sh$([[ $quick -eq 1 ]] && echo ' --quick')$([[ "$nice_level" != 0 ]] && echo " --nice $nice_level")$(for s in "${scenarios[@]}"; do [[ ${#scenarios[@]} -lt 10 ]] && printf ' --scenario %s' "$s"; done)\`; ${duration} s per run."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date | $started |"
  echo "| machine | $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM |"
  echo "| kernel | $(uname -sr) |"
  echo "| load average (1/5/15 min) | before: $load_before; after: $load_after |"
  if [[ "$nice_level" != 0 ]]; then echo "| priority | servers and clients at nice $nice_level (other work on the machine at 0) |"; fi
  echo "| percore | ${built_commit}$([[ -n "$dirty" ]] && echo ' + uncommitted changes'), built with \`bazel build --config=opt\` ($(version gcc --version)) |"
  echo "| nginx | $(version nginx -v) |"
  echo "| memcached | $(version memcached -V) |"
  echo "| redis-server | $(version redis-server --version) |"
  echo "| clients | $(version wrk -v | cut -d' ' -f1-2); $(version redis-benchmark --version); $(version memcaslap -V); loadgen (this tree) |"
  echo
  cat <<'EOF'
Method: each server runs pinned to cpu 0 with one event loop / one worker
(`percored --loops=1`, nginx `worker_processes 1` with `master_process off`, `memcached -t 1`,
redis single-threaded), the client pinned to cpu 1; servers run one after the other.
**CPU µs/req** is the server process's utime+stime (all its threads) during the client run
divided by the requests the client reports: on 2 cores the client is usually the bottleneck, so
this is the figure that compares servers fairly. Latencies are in microseconds as each client
reports them (wrk gives no p99.9; redis-benchmark gives p95 in the notes; memaslap only an
average). loadgen checks every reply; its error column counts wrong or missing replies.
Other work on the machine (see the load average) adds noise to throughput and latency, less to
CPU per request: latency tails that every server shows alike, the floor included, are the
scheduler running that other work, not the server.

EOF
  titles=("" "1. HTTP plaintext, keep-alive" "2. memcache, 90% get / 10% set, 32 B keys, 100 B values"
          "3. RESP GET and SET, 64 connections, 100 B values" "4. echo vs the floor"
          "5. Connection churn: one request per connection (a request is a connection: req/s = connections/s, CPU µs per connection)"
          "6. poll vs epoll: 16 active echo connections beside idle ones" "7. Admin overhead: percorectl watch --interval=100ms")
  for s in 1 2 3 4 5 6 7; do
    wants "$s" || continue
    echo "## ${titles[$s]}"
    echo
    if grep -q "^$s	" "$rows"; then
      echo "| config | server | client | req/s | p50 | p90 | p99 | p99.9 | max | CPU µs/req | errors | notes |"
      echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
      awk -F'\t' -v s="$s" '
        function r(v) { return v ~ /^[0-9.]+$/ ? sprintf("%.0f", v) : v }
        function us(v) { return v ~ /^[0-9.]+$/ ? sprintf(v < 100 ? "%.1f" : "%.0f", v) : v }
        $1 == s {printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s |\n",
                 $2, $3, $4, r($5), us($6), us($7), us($8), us($9), us($10), $11, $12, $13}' "$rows"
    else
      echo "Not run."
    fi
    grep "^Scenario $s:" "$notes" | sed 's/^/> /' || true
    echo
  done
  if wants 8; then
    echo "## 8. Memory per idle connection ($IDLE_MANY idle connections, each after one request answered)"
    echo
    echo "| server | RSS at rest (KiB) | RSS holding $IDLE_MANY (KiB) | bytes per connection |"
    echo "|---|---:|---:|---:|"
    awk -F'\t' '{printf "| %s | %s | %s | **%s** |\n", $1, $2, $3, $4}' "$memory_rows"
    echo
  fi
  if wants 9; then
    echo "## 9. Instructions per request (callgrind, one loop, one connection)"
    echo
    if [[ -s "$callgrind_rows" ]]; then
      echo "| service | requests (runs) | instructions per request |"
      echo "|---|---:|---:|"
      awk -F'\t' '{printf "| %s | %s | **%s** |\n", $1, $2, $3}' "$callgrind_rows"
      echo
      echo "Ir of a run with N2 requests minus a run with N1, divided by N2 - N1: start-up, connection set-up"
      echo "and shutdown cancel out. Counted by \`valgrind --tool=callgrind\` over every thread of percored."
    else
      echo "Not run."
    fi
    grep "^Scenario 9:" "$notes" | sed 's/^/> /' || true
    echo
  fi
  if wants 10; then
    echo "## 10. Microbenchmarks (tests/bench, Google Benchmark, on cpu $CLIENT_CPU)"
    echo
    echo "| binary | benchmark | CPU time | rate |"
    echo "|---|---|---:|---:|"
    awk -F'\t' '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}' "$micro_rows"
    echo
  fi
  if wants 11; then
    echo "## 11. Back ends: io_uring and epoll beside the bare floors (best of $([[ $quick -eq 1 ]] && echo 1 || echo 3) interleaved rounds)"
    echo
    echo "Server CPU µs per request; the ratio is to percore on epoll in the same configuration."
    echo "Kernel entries per request are percored's own counts (io_uring_enter on io_uring; epoll_wait,"
    echo "read and write on epoll)."
    echo
    echo "| configuration | server | client | req/s | p50 µs | p99 µs | CPU µs/req | vs percore epoll | kernel entries/req |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' 'FILENAME == ARGV[1] { entries[$1 "|" $2] = $3; next }
      $1 == 11 && $11 != "–" {
        key = $2 "|" $3 "|" $4
        if (!(key in best) || $11 + 0 < best[key] + 0) { best[key] = $11; line[key] = $0 }
        if (!(key in order)) { order[key] = ++n; keys[n] = key }
      }
      END {
        for (i = 1; i <= n; i++) { split(line[keys[i]], f, "\t"); if (f[3] == "percore epoll") base[f[2] "|" f[4]] = f[11] }
        for (i = 1; i <= n; i++) {
          split(line[keys[i]], f, "\t")
          b = base[f[2] "|" f[4]]
          ratio = (b != "" && b > 0) ? sprintf("%.2f", f[11] / b) : "–"
          e = entries[f[2] "|" f[3]]; if (e == "") e = "–"
          printf "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s |\n", f[2], f[3], f[4], f[5], f[6], f[8], f[11], ratio, e
        }
      }' "$backend_rows" "$rows"
    echo
    # The smallest of the rounds, per back end.
    awk -F'\t' -v n="$IDLE_MANY" '$1 == "memory per idle connection" {
        v = $3 + 0; if (!($2 in m) || v < m[$2]) m[$2] = v; if (!($2 in o)) order[++k] = $2; o[$2] = 1 }
      END { for (i = 1; i <= k; i++) printf "- Memory per idle connection (%s idle echo connections), %s: %d B\n", n, order[i], m[order[i]] }' \
      "$backend_rows"
    echo
  fi
  if wants 12; then
    echo "## 12. The rebalancer's cost at steady state: --rebalance=off vs load (echo 64 B, 16 connections, 2 loops on cpu $SERVER_CPU)"
    echo
    echo "The load signal is always on (it cannot be turned off), so both columns pay for it; the"
    echo "difference is the rebalancer's checks. Rounds alternate off and load."
    echo
    echo "| round | --rebalance | req/s | p99 µs | CPU µs/req | loop loads halfway (‰) | rounds / imbalanced / moves started / moved / failed |"
    echo "|---|---|---:|---:|---:|---|---|"
    awk -F'\t' 'FILENAME == ARGV[1] { c[$1 "|" $2] = $3 "\t" $4 " / " $5 " / " $6 " / " $7 " / " $8; next }
      $1 == 12 {
        split($2, w, "round "); split($3, m, "=")
        split(c[w[2] "|" m[2]], x, "\t")
        printf "| %s | %s | %.0f | %.0f | %s | %s | %s |\n", w[2], m[2], $5, $8, $11, (x[1] == "" ? "–" : x[1]), (x[2] == "" ? "–" : x[2])
      }' "$rebalance_rows" "$rows"
    echo
    awk -F'\t' '$1 == 12 && $11 != "–" { split($3, m, "="); n[m[2]]++; sum[m[2]] += $11
        if (!(m[2] in best) || $11 + 0 < best[m[2]] + 0) best[m[2]] = $11 }
      END {
        if (n["off"] && n["load"]) {
          a = sum["off"] / n["off"]; b = sum["load"] / n["load"]
          printf "Mean CPU µs/req: off %.3f, load %.3f: **%+.1f%%**; best of each: off %s, load %s: %+.1f%%.\n",
            a, b, 100 * (b - a) / a, best["off"], best["load"], 100 * (best["load"] - best["off"]) / best["off"]
        }
      }' "$rows"
    grep "^Scenario 12:" "$notes" | sed 's/^/> /' || true
    echo
  fi
  if [[ -n "$kept" ]]; then
    echo "$kept"
    echo
  fi
  echo "## Chart"
  echo
  echo "![CPU µs per request and throughput, loadgen client](results.png)"
  echo
  echo "## Commands"
  echo
  echo "Binaries are copies of \`bazel build --config=opt\` outputs, shown here by their bazel-bin paths;"
  echo "nginx runs with the nginx.conf that \`start_nginx\` in compare.sh writes to a temporary prefix."
  echo
  echo '```'
  sed -e "s#$bin/floor_server#bazel-bin/tools/bench/floor_server#g" -e "s#$bin/#bazel-bin/tools/#g" \
      -e "s#$work/#\$TMP/#g" -e "s#$repo/##g" "$commands"
  echo '```'
} >"$results"

# Chart: server CPU per request and throughput of every loadgen run, a colour per server.
awk -F'\t' '$4 == "loadgen" && $11 != "–" {
  label = $1 ": " $2 " " $3; gsub(/"/, "", label);
  color = 3896751;                            # percore: #3b75af
  if ($3 ~ /nginx/) color = 5348926;          # #519e3e
  else if ($3 ~ /floor/) color = 10066329;    # #999999
  else if ($3 ~ /memcached/) color = 15697462;  # #ef8636
  else if ($3 ~ /redis/) color = 12925490;    # #c53a32
  printf "\"%s\"\t%s\t%s\t%d\n", label, $11, $5, color }' "$rows" >"$work/chart.dat"
if [[ -s "$work/chart.dat" ]] && command -v gnuplot >/dev/null; then
  bars=$(wc -l <"$work/chart.dat")
  width=$((600 + bars * 28))
  gnuplot -e "data='$work/chart.dat'; output='$chart'; width=$width" \
    -e "title='percore vs peers ($(nproc) CPUs, server on cpu $SERVER_CPU, loadgen on cpu $CLIENT_CPU, $started)'" \
    tools/bench/chart.gp
fi
log "wrote $results$([[ -f "$chart" ]] && echo " and $chart")"
log "raw rows: $rows; client output: $work/client.log"
