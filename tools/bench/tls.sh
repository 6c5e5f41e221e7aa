#!/usr/bin/env bash
# TLS side by side: percored's http+tls endpoint against nginx (ssl), same certificate, same
# protocol and cipher, one loop / one worker pinned to cpu 0, the client on cpu 1. For each
# certificate type (ECDSA P-256, RSA-2048; key exchange X25519, TLS 1.3):
#
#   full      new connections per second, each a full handshake and one GET /plaintext
#             (HTTP/1.0, so the server closes): openssl s_time -new -www /plaintext
#   resumed   the same with the session resumed from a ticket: openssl s_time -reuse
#   keepalive HTTPS requests on 64 kept-alive connections: wrk -t1 -c64 https://.../plaintext
#
# and the server's CPU microseconds per handshake or request (utime+stime from /proc/PID/stat
# before and after, divided by what the client counted). Prints a Markdown table.
#
#   tools/bench/tls.sh                  5 s per run
#   tools/bench/tls.sh --quick          2 s per run
#   tools/bench/tls.sh --bin DIR        prebuilt percored in DIR (else bazel build --config=opt)
#   tools/bench/tls.sh --rounds N       best of N interleaved rounds (default 1)
#   tools/bench/tls.sh --balance P      percored's --balance policy (default: the daemon's)
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../.."

duration=5
bin=""
rounds=1
balance=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) duration=2 ;;
    --bin) bin="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --balance) balance=(--balance="$2"); shift ;;
    -h|--help) sed -n '2,18p' "$self"; exit 0 ;;
    *) echo "tls.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

SERVER_CPU=0
CLIENT_CPU=1
PERCORE=18443
NGINX=18444
work=$(mktemp -d /tmp/percore-tls-bench.XXXXXX)
server_pid=""
cleanup() { [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; true; }
trap cleanup EXIT
log() { echo "tls.sh: $*" >&2; }

tools/setup.sh --bench
if [[ -z "$bin" ]]; then
  log "building percored (--config=opt)"
  bazel build --config=opt //tools:percored >"$work/build.log" 2>&1 || { tail -20 "$work/build.log" >&2; exit 1; }
  bin="$work/bin"
  mkdir -p "$bin"
  cp "$(bazel info --config=opt bazel-bin 2>/dev/null)/tools/percored" "$bin/"
fi

# Certificates for 127.0.0.1: one ECDSA P-256, one RSA-2048, self-signed.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$work/ecdsa.key" -out "$work/ecdsa.pem" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout "$work/rsa.key" -out "$work/rsa.pem" 2>/dev/null

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local tries=0
  until port_open "$1"; do
    tries=$((tries + 1))
    if [[ $tries -gt 400 ]] || ! kill -0 "$server_pid" 2>/dev/null; then log "server on $1 did not start"; cat "$work/server.log" >&2; exit 1; fi
    sleep 0.05
  done
}
start_percore() {  # KEYTYPE
  taskset -c "$SERVER_CPU" "$bin/percored" --loops=1 --backend=epoll --admin_listen= --listen="http+tls=127.0.0.1:$PERCORE" \
    --tls_cert="$work/$1.pem" --tls_key="$work/$1.key" --drain_timeout=1s "${balance[@]}" >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_port "$PERCORE"
}
start_nginx() {  # KEYTYPE
  mkdir -p "$work/nginx/logs"
  cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; use epoll; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $work/nginx/client_body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$NGINX ssl backlog=4096;
    ssl_certificate $work/$1.pem;
    ssl_certificate_key $work/$1.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519;
    ssl_session_tickets on;
    location /plaintext { default_type text/plain; return 200 "Hello, World!"; }
  }
}
EOF
  taskset -c "$SERVER_CPU" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_port "$NGINX"
}
stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)

rows="$work/rows.tsv"  # keytype, test, server, count per s, cpu us per unit
: >"$rows"
# run KEYTYPE TEST SERVER PORT: one measurement, appended to rows.
run() {
  local key=$1 test=$2 server=$3 port=$4 output count t0 t1 real=$duration
  local client=()
  case "$test" in
    full) client=(openssl s_time -connect "127.0.0.1:$port" -new -www /plaintext -time "$duration") ;;
    resumed) client=(openssl s_time -connect "127.0.0.1:$port" -reuse -www /plaintext -time "$duration") ;;
    keepalive) client=(wrk -t1 -c64 -d"${duration}s" "https://127.0.0.1:$port/plaintext") ;;
  esac
  echo "taskset -c $CLIENT_CPU ${client[*]}" >>"$work/commands.txt"
  t0=$(cpu_ticks "$server_pid")
  output=$(taskset -c "$CLIENT_CPU" "${client[@]}" 2>&1 </dev/null) || true
  t1=$(cpu_ticks "$server_pid")
  echo "== $key $test $server" >>"$work/client.log"
  echo "$output" >>"$work/client.log"
  if [[ "$test" == keepalive ]]; then
    count=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$output")
    if grep -q "Socket errors\|Non-2xx" <<<"$output"; then log "$key $test $server: wrk reported errors"; fi
  else
    # "N connections in R real seconds, B bytes read per connection" (the other line's time is
    # the client's user time)
    count=$(sed -n 's/^\([0-9]*\) connections in [0-9]* real seconds.*/\1/p' <<<"$output" | tail -1)
    real=$(sed -n 's/^[0-9]* connections in \([0-9]*\) real seconds.*/\1/p' <<<"$output" | tail -1)
  fi
  count=${count:-0}
  if [[ "$count" -eq 0 ]]; then log "$key $test $server: the client counted nothing (see $work/client.log)"; fi
  awk -v k="$key" -v t="$test" -v s="$server" -v n="$count" -v d=$((t1 - t0)) -v hz="$clk_tck" -v secs="${real:-$duration}" \
    'BEGIN { printf "%s\t%s\t%s\t%.0f\t%s\n", k, t, s, n / secs, (n > 0 ? sprintf("%.1f", d * 1e6 / hz / n) : "-") }' >>"$rows"
  log "$key $test $server: $count in ${duration}s, server cpu $(tail -1 "$rows" | cut -f5) us each"
}

for round in $(seq 1 "$rounds"); do
  for key in ecdsa rsa; do
    for server in percore nginx; do
      if [[ $server == percore ]]; then start_percore "$key"; port=$PERCORE; else start_nginx "$key"; port=$NGINX; fi
      for test in full resumed keepalive; do run "$key" "$test" "$server" "$port"; done
      stop_server
    done
  done
done

echo "TLS side by side ($(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD), ${duration} s per run, best of $rounds;"
echo "percored --backend=epoll --loops=1 ${balance[*]} and nginx one worker on cpu $SERVER_CPU; client on cpu $CLIENT_CPU; TLS 1.3, X25519):"
echo
echo "| certificate | test | percore /s | nginx /s | percore CPU µs | nginx CPU µs | ratio (CPU) |"
echo "|---|---|---:|---:|---:|---:|---:|"
for key in ecdsa rsa; do
  for test in full resumed keepalive; do
    awk -F'\t' -v k="$key" -v t="$test" '
      $1 == k && $2 == t && $5 != "-" {
        if (!($3 in cpu) || $5 + 0 < cpu[$3] + 0) { cpu[$3] = $5; rate[$3] = $4 }
      }
      END {
        name = (k == "ecdsa") ? "ECDSA P-256" : "RSA-2048"
        what = (t == "full") ? "new full handshakes" : (t == "resumed") ? "resumed handshakes" : "keep-alive HTTPS requests, 64 connections"
        ratio = ("percore" in cpu && "nginx" in cpu && cpu["nginx"] > 0) ? sprintf("%.2f", cpu["percore"] / cpu["nginx"]) : "-"
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", name, what, rate["percore"], rate["nginx"], cpu["percore"], cpu["nginx"], ratio
      }' "$rows"
  done
done
echo
echo "Commands:"
echo
sort -u "$work/commands.txt" | sed 's/^/    /'
