// percored: the percore daemon. Serves the built-in services on the endpoints of --listen with
// one event loop per CPU, and the gRPC admin service on --admin_listen, until SIGINT or SIGTERM,
// then drains gracefully and exits 0.

#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "reactor/server.h"
#include "reactor/uring_poller.h"
#include "services/admin/admin_server.h"
#include "tools/service_catalog.h"

ABSL_FLAG(int, loops, 0, "Event loops (threads), one per core. 0: one per CPU this process may run on.");
ABSL_FLAG(std::string, backend, "auto",
          "Back end of every loop: auto (io_uring where the kernel allows it, else epoll), io_uring, epoll or poll.");
ABSL_FLAG(int, uring_entries, static_cast<int>(percore::UringOptions().entries),
          "io_uring: submission queue entries of each loop's ring, 8 to 32768 (the completion queue has 16 times "
          "that).");
ABSL_FLAG(int, uring_buffers, static_cast<int>(percore::UringOptions().buffers),
          "io_uring: receive buffers in each loop's provided-buffer ring, a power of two from 1 to 32768.");
ABSL_FLAG(int, uring_buffer_size, static_cast<int>(percore::UringOptions().buffer_size),
          "io_uring: bytes per receive buffer, at least 512.");
ABSL_FLAG(std::string, uring_wake, "eventfd",
          "io_uring: how other threads (the distributor, other loops) wake a loop: eventfd (a write the loop's "
          "ring sees as a completed poll) or msg_ring (IORING_OP_MSG_RING into the loop's ring).");
ABSL_FLAG(std::string, balance, "round_robin",
          "How new connections are spread over loops: round_robin, least_connections, power_of_two "
          "(two random loops, the less loaded wins), least_loaded (the loop using the least CPU over "
          "the last 500 ms; equal loads by fewest connections), or reuseport (one SO_REUSEPORT listener per "
          "loop, no distributor thread; the kernel picks).");
ABSL_FLAG(std::string, rebalance, "off",
          "Move connections between loops while they run: off (a connection stays where it was placed), or load "
          "(every --rebalance_interval, connections move at a request boundary from a loop busier than the mean "
          "by more than --rebalance_threshold to the least loaded loop, the busiest first; a connection moves "
          "at most once per interval). Built-in services all move; see README.md for the default.");
ABSL_FLAG(absl::Duration, rebalance_interval, percore::RebalanceOptions().interval,
          "--rebalance=load: how often loads are compared (10ms to 24h).");
ABSL_FLAG(double, rebalance_threshold, percore::RebalanceOptions().threshold,
          "--rebalance=load: a loop whose load is above the mean by more than this fraction of the mean is "
          "overloaded.");
ABSL_FLAG(double, rebalance_min_load, percore::RebalanceOptions().min_load,
          "--rebalance=load: nothing moves while the busiest loop is under this load (0..1).");
ABSL_FLAG(int, rebalance_max_moves, percore::RebalanceOptions().max_moves,
          "--rebalance=load: at most this many connections move per interval.");
ABSL_FLAG(bool, pin, false, "Pin loop i to the i-th CPU this process may run on.");
ABSL_FLAG(std::string, listen, percore::kDefaultListen,
          "Comma-separated SERVICE=HOST:PORT endpoints; SERVICE+tls=HOST:PORT serves TLS there (with "
          "--tls_cert and --tls_key). Services: " + percore::ServiceNames() +
              ". Port 0 picks a free port (the real one is printed).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate for the +tls endpoints: the server's certificate first, then any intermediates. "
          "Read again on SIGHUP.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key matching --tls_cert. Read again on SIGHUP.");
ABSL_FLAG(absl::Duration, tls_handshake_timeout, absl::Seconds(5),
          "Close a TLS connection whose handshake has not completed this long after it was accepted "
          "(counted as tls_handshake_timeout); 0: never.");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(300),
          "Close a connection with no traffic in either direction for this long; 0 disables.");
ABSL_FLAG(absl::Duration, write_timeout, absl::Seconds(60),
          "Close a connection whose queued output makes no progress for this long; 0 disables.");
ABSL_FLAG(int, max_connections, 100000,
          "Connections open at once over all loops; new ones beyond are refused (HTTP: 503). 0: no limit. "
          "With --balance=reuseport each loop accepts on its own and enforces an equal share of it.");
ABSL_FLAG(int, max_connections_per_loop, 0, "Connections open at once on one loop; 0: no limit.");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "On SIGINT/SIGTERM: how long connections may take to finish and flush before they are cut.");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9100",
          "Where the gRPC admin service (stats, connections, control; see percorectl) listens: "
          "HOST:PORT (port 0 picks one; the real address is printed) or unix:/path (made mode 0600). "
          "Empty disables it.");
ABSL_FLAG(bool, return_free_memory, true,
          "After a burst, a quiet loop returns the allocator's free memory to the system (malloc_trim), "
          "and the free top of its own arena, which malloc_trim leaves, so resident memory falls back near its "
          "baseline within seconds. glibc's mmap and trim thresholds are fixed at 32 and 64 MiB unless the "
          "environment sets them.");
ABSL_FLAG(bool, admin_readonly, false, "Refuse the admin's control calls (policy, drain, resume, close, migrate, reload).");

namespace percore {
namespace {

absl::StatusOr<ServerOptions> OptionsFromFlags() {
  ServerOptions options;
  options.loops = absl::GetFlag(FLAGS_loops);
  if (options.loops < 0) return absl::InvalidArgumentError("--loops must be >= 0");
  if (!ParsePollerBackend(absl::GetFlag(FLAGS_backend), &options.backend)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend: '", absl::GetFlag(FLAGS_backend), "' is not auto, io_uring, epoll or poll"));
  }
  // Checked whatever the back end: a size no ring can have is a usage error, never a reason for
  // auto to fall back to epoll.
  const int entries = absl::GetFlag(FLAGS_uring_entries);
  const int buffers = absl::GetFlag(FLAGS_uring_buffers);
  const int buffer_size = absl::GetFlag(FLAGS_uring_buffer_size);
  if (entries < 0 || buffers < 0 || buffer_size < 0) {
    return absl::InvalidArgumentError("--uring_entries, --uring_buffers and --uring_buffer_size cannot be negative");
  }
  options.uring.entries = static_cast<unsigned>(entries);
  options.uring.buffers = static_cast<unsigned>(buffers);
  options.uring.buffer_size = static_cast<unsigned>(buffer_size);
  const std::string wake = absl::GetFlag(FLAGS_uring_wake);
  if (wake != "eventfd" && wake != "msg_ring") {
    return absl::InvalidArgumentError(absl::StrCat("--uring_wake: '", wake, "' is not eventfd or msg_ring"));
  }
  options.uring.wake_by_msg_ring = wake == "msg_ring";
  if (absl::Status s = CheckUringOptions(options.uring); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--uring_*: ", s.message()));
  }
  if (!ParseBalancePolicy(absl::GetFlag(FLAGS_balance), &options.balance)) {
    return absl::InvalidArgumentError(absl::StrCat("--balance: unknown policy '", absl::GetFlag(FLAGS_balance), "'"));
  }
  if (!ParseRebalanceMode(absl::GetFlag(FLAGS_rebalance), &options.rebalance.mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rebalance: '", absl::GetFlag(FLAGS_rebalance), "' is not off or load"));
  }
  options.rebalance.interval = absl::GetFlag(FLAGS_rebalance_interval);
  options.rebalance.threshold = absl::GetFlag(FLAGS_rebalance_threshold);
  options.rebalance.min_load = absl::GetFlag(FLAGS_rebalance_min_load);
  options.rebalance.max_moves = absl::GetFlag(FLAGS_rebalance_max_moves);
  if (absl::Status s = CheckRebalanceOptions(options.rebalance); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--rebalance_*: ", s.message()));
  }
  options.pin = absl::GetFlag(FLAGS_pin);
  options.return_free_memory = absl::GetFlag(FLAGS_return_free_memory);
  options.max_connections = absl::GetFlag(FLAGS_max_connections);
  options.max_connections_per_loop = absl::GetFlag(FLAGS_max_connections_per_loop);
  options.connection.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  options.connection.write_timeout = absl::GetFlag(FLAGS_write_timeout);
  options.connection.tls_handshake_timeout = absl::GetFlag(FLAGS_tls_handshake_timeout);
  return options;
}

// The daemon's flags as GetConfig reports them.
std::vector<std::pair<std::string, std::string>> FlagValues() {
  std::vector<std::pair<std::string, std::string>> values;
  for (const char* name : {"listen", "loops", "backend", "uring_entries", "uring_buffers", "uring_buffer_size",
                           "uring_wake", "balance", "rebalance", "rebalance_interval", "rebalance_threshold",
                           "rebalance_min_load", "rebalance_max_moves", "pin", "idle_timeout", "write_timeout", "max_connections",
                           "max_connections_per_loop", "drain_timeout", "admin_listen", "admin_readonly",
                           "return_free_memory", "tls_cert", "tls_key", "tls_handshake_timeout"}) {
    if (const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name)) {
      values.emplace_back(name, flag->CurrentValue());
    }
  }
  return values;
}

int Main() {
  absl::StatusOr<ServerOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "percored: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<std::vector<Endpoint>> endpoints = ParseListen(absl::GetFlag(FLAGS_listen));
  if (!endpoints.ok()) {
    std::fprintf(stderr, "percored: --listen: %s\n", std::string(endpoints.status().message()).c_str());
    return 2;
  }

  for (const Endpoint& e : *endpoints) {
    if (e.tls && (absl::GetFlag(FLAGS_tls_cert).empty() || absl::GetFlag(FLAGS_tls_key).empty())) {
      std::fprintf(stderr, "percored: --listen: %s+tls=%s needs --tls_cert and --tls_key\n", e.service.c_str(),
                   e.address.ToString().c_str());
      return 2;
    }
  }

  // Signals are taken synchronously by the main thread; every other thread inherits the mask.
  // SIGHUP reloads the TLS certificates; SIGINT and SIGTERM stop.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Server server(*options);
  if (absl::Status s = AddServices(server, *endpoints); !s.ok()) {
    std::fprintf(stderr, "percored: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  for (const Endpoint& e : *endpoints) {
    EndpointOptions endpoint;
    if (e.tls) {
      TlsOptions tls;
      tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
      tls.key_file = absl::GetFlag(FLAGS_tls_key);
      if (e.service == "http") tls.alpn = {"http/1.1"};
      endpoint.tls = tls;
    }
    absl::StatusOr<ListenerInfo> info = server.Listen(e.service, e.address, endpoint);
    if (!info.ok()) {
      std::fprintf(stderr, "percored: cannot listen for %s on %s: %s\n", e.service.c_str(),
                   e.address.ToString().c_str(), std::string(info.status().message()).c_str());
      return 1;
    }
  }
  if (absl::Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "percored: start: %s\n", std::string(s.message()).c_str());
    // Limits that cannot work together are a usage error, like a bad flag.
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  // The back end as Start resolved it, with why: "io_uring (auto: available)".
  std::printf("percored: %d loops, backend %s, balance %s, rebalance %s\n", server.loop_count(),
              server.backend_reason().c_str(), std::string(BalancePolicyName(options->balance)).c_str(),
              std::string(RebalanceModeName(options->rebalance.mode)).c_str());
  for (const ListenerInfo& l : server.listeners()) {
    std::printf("percored: %s listening on %s%s\n", l.service.c_str(), l.bound.ToString().c_str(),
                l.tls ? " (tls)" : "");
  }
  AdminOptions admin_options;
  admin_options.readonly = absl::GetFlag(FLAGS_admin_readonly);
  admin_options.flags = FlagValues();
  AdminServer admin(server, admin_options);
  if (const std::string admin_listen = absl::GetFlag(FLAGS_admin_listen); !admin_listen.empty()) {
    absl::StatusOr<std::string> bound = admin.Start(admin_listen);
    if (!bound.ok()) {
      std::fprintf(stderr, "percored: admin: %s\n", std::string(bound.status().message()).c_str());
      server.Stop(absl::ZeroDuration());
      return 1;
    }
    std::printf("percored: admin listening on %s\n", bound->c_str());
  }
  std::fflush(stdout);

  int signal_number = 0;
  for (;;) {
    sigwait(&stop_signals, &signal_number);
    if (signal_number != SIGHUP) break;
    // New connections get the new certificate; open ones keep theirs. A file that does not
    // load leaves the old one in use.
    if (absl::Status s = server.ReloadCertificates(); s.ok()) {
      std::printf("percored: SIGHUP: certificates reloaded\n");
    } else {
      std::printf("percored: SIGHUP: certificates not reloaded: %s\n", std::string(s.message()).c_str());
    }
    std::fflush(stdout);
  }
  // Health checks fail first, before anything else happens, so that load balancers stop
  // sending before the server stops; the admin stays up (answering stats) until the server has
  // drained.
  admin.SetServing(false);
  std::printf("percored: %s received, draining (up to %s)\n", signal_number == SIGINT ? "SIGINT" : "SIGTERM",
              absl::FormatDuration(absl::GetFlag(FLAGS_drain_timeout)).c_str());
  std::fflush(stdout);
  server.Stop(absl::GetFlag(FLAGS_drain_timeout));
  admin.Shutdown();
  std::printf("percored: stopped\n");
  return 0;
}

}  // namespace
}  // namespace percore

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "percore daemon: serves the built-in services, one event loop per core.\n"
      "Usage: percored [--listen=echo=127.0.0.1:7000,...] [--loops=N] [--backend=auto|io_uring|epoll|poll] "
      "[--uring_entries=N] [--uring_buffers=N] [--uring_buffer_size=BYTES] [--uring_wake=eventfd|msg_ring] [--balance=POLICY] "
      "[--rebalance=off|load] [--admin_listen=127.0.0.1:9100] [--tls_cert=FILE --tls_key=FILE for SERVICE+tls=HOST:PORT endpoints] ...\n"
      "Run with --helpfull for every flag.");
  absl::ParseCommandLine(argc, argv);
  return percore::Main();
}
