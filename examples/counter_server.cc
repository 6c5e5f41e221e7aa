// Serves the counter protocol (README.md) until SIGINT or SIGTERM, then drains and exits 0.
//
//   counter_server --loops=4 --listen=127.0.0.1:7200

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/time.h"
#include "core/socket.h"
#include "counter_service.h"
#include "reactor/server.h"

ABSL_FLAG(int, loops, 0, "Event loops (threads), each owning a share of the keys. 0: one per CPU.");
ABSL_FLAG(std::string, listen, "127.0.0.1:7200", "HOST:PORT to listen on; port 0 takes any free port.");
ABSL_FLAG(size_t, max_line, counter::CounterOptions().max_line, "Longest request line in bytes.");
ABSL_FLAG(size_t, max_keys, counter::CounterOptions().max_keys, "Distinct keys held over all loops.");
ABSL_FLAG(absl::Duration, line_timeout, counter::CounterOptions().line_timeout,
          "How long a request line may take to arrive once begun.");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(5), "On SIGINT/SIGTERM, how long connections may take to finish.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::StatusOr<percore::HostPort> endpoint = percore::ParseHostPort(absl::GetFlag(FLAGS_listen));
  if (!endpoint.ok()) {
    std::fprintf(stderr, "counter_server: --listen: %s\n", endpoint.status().ToString().c_str());
    return 2;
  }

  // Blocked before any thread starts, so every loop thread inherits the mask and the signals
  // reach the sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  counter::CounterOptions options;
  options.max_line = absl::GetFlag(FLAGS_max_line);
  options.max_keys = absl::GetFlag(FLAGS_max_keys);
  options.line_timeout = absl::GetFlag(FLAGS_line_timeout);
  percore::Server server(percore::ServerOptions{.loops = absl::GetFlag(FLAGS_loops)});
  absl::Status status = server.AddService(std::make_shared<counter::CounterService>(options));
  const absl::StatusOr<percore::ListenerInfo> listener =
      status.ok() ? server.Listen("counter", *endpoint) : absl::StatusOr<percore::ListenerInfo>(status);
  if (!listener.ok()) {
    std::fprintf(stderr, "counter_server: %s\n", listener.status().ToString().c_str());
    return 1;
  }
  status = server.Start();
  if (!status.ok()) {
    std::fprintf(stderr, "counter_server: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("counter_server: %d loops, backend %s\n", server.loop_count(),
              server.backend_reason().c_str());
  std::printf("counter_server: counter listening on %s\n", listener->bound.ToString().c_str());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server.Stop(absl::GetFlag(FLAGS_drain_timeout));
  return 0;
}
