// loadgen: drives echo, HTTP, memcache or RESP servers over many connections and reports
// throughput and latency percentiles. Every reply is checked; a wrong one is an error, not a
// data point, and any error makes the exit status 1.

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tools/loadgen/load_options.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/run.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7000", "Server address, numeric HOST:PORT.");
ABSL_FLAG(std::string, protocol, "echo", "echo, http, memcache or resp.");
ABSL_FLAG(int, connections, 16,
          "Active connections, spread over --threads. 0 only with --idle_connections: just hold those.");
ABSL_FLAG(int, threads, 1, "Client threads; each runs one epoll loop over its share of the connections.");
ABSL_FLAG(int, depth, 1, "Closed loop: requests outstanding per connection (pipelining when > 1).");
ABSL_FLAG(double, rate, 0,
          "Open loop: total requests per second, sent at fixed intended times; latency counts from the "
          "intended time, so a stalled server shows as latency (no coordinated omission). 0: closed loop.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "How long to apply load (unless --requests is set).");
ABSL_FLAG(uint64_t, requests, 0, "Stop after this many requests in total (overrides --duration).");
ABSL_FLAG(bool, connect_per_request, false,
          "Open a new connection for every request and close it after the reply; reports connections/s.");
ABSL_FLAG(int, idle_connections, 0, "Connections opened before the run and held idle through it.");
ABSL_FLAG(bool, idle_after_request, false,
          "Each --idle_connections connection first sends one request of the workload and reads "
          "its reply, then is held idle (a connection that has served a request).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5),
          "Give up (as errors) on outstanding requests after this long without any reply.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the key and operation choices.");
ABSL_FLAG(bool, json, false, "Print one JSON object (latencies in microseconds) instead of text.");
// echo
ABSL_FLAG(int, message_size, 64, "echo: bytes per message.");
// http
ABSL_FLAG(std::string, path, "/plaintext", "http: request target.");
ABSL_FLAG(std::string, host, "localhost", "http: Host header.");
ABSL_FLAG(int, expect_status, 200, "http: status every reply must have.");
ABSL_FLAG(std::string, expect_body, "Hello, World!", "http: body every reply must have.");
ABSL_FLAG(bool, check_body, true, "http: compare the body with --expect_body.");
// memcache, resp
ABSL_FLAG(uint64_t, keys, 10000, "memcache/resp: size of the key space.");
ABSL_FLAG(int, key_size, 32, "memcache/resp: bytes per key.");
ABSL_FLAG(int, value_size, 100, "memcache/resp: bytes per value (derived from the key, so gets are checked).");
ABSL_FLAG(double, get_ratio, 0.9, "memcache/resp: fraction of requests that are gets; the rest are sets.");
ABSL_FLAG(bool, ping, false, "resp: send PING only.");
ABSL_FLAG(bool, preload, false,
          "memcache/resp: set every key once before the run; then a miss counts as an error.");

namespace percore::loadgen {
namespace {

absl::StatusOr<LoadOptions> OptionsFromFlags() {
  LoadOptions o;
  absl::StatusOr<HostPort> server = ParseHostPort(absl::GetFlag(FLAGS_server));
  if (!server.ok()) return server.status();
  o.server = *server;
  Workload& w = o.workload;
  if (!ParseProtocol(absl::GetFlag(FLAGS_protocol), &w.protocol)) {
    return absl::InvalidArgumentError(absl::StrCat("--protocol: '", absl::GetFlag(FLAGS_protocol),
                                                   "' is not echo, http, memcache or resp"));
  }
  if (absl::GetFlag(FLAGS_message_size) < 1 || absl::GetFlag(FLAGS_key_size) < 1 ||
      absl::GetFlag(FLAGS_value_size) < 0) {
    return absl::InvalidArgumentError("--message_size and --key_size must be >= 1, --value_size >= 0");
  }
  w.message_size = static_cast<size_t>(absl::GetFlag(FLAGS_message_size));
  w.path = absl::GetFlag(FLAGS_path);
  w.host = absl::GetFlag(FLAGS_host);
  w.expect_status = absl::GetFlag(FLAGS_expect_status);
  w.expect_body = absl::GetFlag(FLAGS_expect_body);
  w.check_body = absl::GetFlag(FLAGS_check_body);
  w.keys = absl::GetFlag(FLAGS_keys);
  w.key_size = static_cast<size_t>(absl::GetFlag(FLAGS_key_size));
  w.value_size = static_cast<size_t>(absl::GetFlag(FLAGS_value_size));
  w.get_ratio = absl::GetFlag(FLAGS_get_ratio);
  w.ping = absl::GetFlag(FLAGS_ping);
  o.connections = absl::GetFlag(FLAGS_connections);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.depth = absl::GetFlag(FLAGS_depth);
  o.rate = absl::GetFlag(FLAGS_rate);
  o.requests = absl::GetFlag(FLAGS_requests);
  o.duration_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_duration));
  o.connect_per_request = absl::GetFlag(FLAGS_connect_per_request);
  o.idle_connections = absl::GetFlag(FLAGS_idle_connections);
  o.idle_after_request = absl::GetFlag(FLAGS_idle_after_request);
  o.timeout_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_timeout));
  o.preload = absl::GetFlag(FLAGS_preload);
  o.seed = absl::GetFlag(FLAGS_seed);
  return o;
}

int Main() {
  absl::StatusOr<LoadOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<Report> report = RunLoad(*options);
  if (!report.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", std::string(report.status().message()).c_str());
    return 2;
  }
  const std::string text = absl::GetFlag(FLAGS_json) ? FormatJson(*report) : FormatText(*report);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  return report->errors > 0 ? 1 : 0;
}

}  // namespace
}  // namespace percore::loadgen

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "load generator for percore and its peers.\n"
      "Usage: loadgen --server=HOST:PORT --protocol=echo|http|memcache|resp [--connections=N] "
      "[--threads=T] [--depth=D | --rate=R] [--duration=5s | --requests=N] [--json]\n"
      "Exit status: 0 all replies right, 1 some request failed (see the errors), 2 bad flags or no server.\n"
      "Run with --helpfull for every flag.");
  absl::ParseCommandLine(argc, argv);
  return percore::loadgen::Main();
}
