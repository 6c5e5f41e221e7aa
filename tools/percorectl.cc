// percorectl: the command-line client of percored's admin service (services/admin/admin.proto).
// Prints human-readable tables by default, protobuf JSON with --json. Every call has a deadline
// (--timeout); an unreachable daemon is one clear line on stderr and a non-zero exit.

#include <signal.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "services/admin/admin.grpc.pb.h"
#include "services/admin/admin_text.h"
#include "services/admin/health.grpc.pb.h"

ABSL_FLAG(std::string, admin, "127.0.0.1:9100", "Address of percored's admin service: HOST:PORT or unix:/path.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(3), "Deadline of every call to the admin service.");
ABSL_FLAG(bool, json, false, "Print protobuf JSON (one object per line) instead of tables.");
ABSL_FLAG(bool, prometheus, false, "stats: print the Prometheus text exposition (what /metrics serves).");
ABSL_FLAG(absl::Duration, interval, absl::Seconds(1), "watch: time between snapshots.");
ABSL_FLAG(int, count, 0, "watch: stop after this many snapshots; 0: until SIGINT.");
ABSL_FLAG(int, loop, -1, "conns: only this loop; -1: all.");
ABSL_FLAG(std::string, service, "", "conns: only this service.");
ABSL_FLAG(std::string, state, "", "conns: only this state (reading, writing, paused, closing, open).");
ABSL_FLAG(int, page_size, 500, "conns: connections fetched per call (all pages are fetched).");
ABSL_FLAG(bool, close_idle, false, "drain: also close the loop's idle connections.");
ABSL_FLAG(absl::Duration, wait, absl::Seconds(1),
          "migrate: how long the connection may take to reach a request boundary (within --timeout).");

namespace percore {
namespace {

namespace v1 = admin::v1;

constexpr char kUsage[] =
    "percore admin client.\n"
    "Usage: percorectl [--admin=ADDR] [--timeout=3s] [--json] COMMAND\n"
    "  stats [--prometheus]           one snapshot: loops, accepting, services\n"
    "  watch [--interval=1s] [--count=N]  a snapshot per interval until SIGINT\n"
    "  conns [--loop N] [--service S] [--state S]  open connections\n"
    "  config                         the effective configuration\n"
    "  balance POLICY                 round_robin | least_connections | power_of_two | least_loaded\n"
    "  drain LOOP [--close_idle]      stop handing connections to a loop\n"
    "  resume LOOP                    hand it connections again\n"
    "  close ID                       close one connection (id from conns)\n"
    "  migrate ID LOOP [--wait=1s]    move a connection to another loop at its next request boundary\n"
    "  reload                         re-read the TLS endpoints' certificates and keys (as SIGHUP)\n"
    "  health                         grpc.health.v1 status of the daemon";

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

class Client {
 public:
  explicit Client(std::string address)
      : address_(std::move(address)),
        channel_(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials())),
        admin_(v1::Admin::NewStub(channel_)),
        health_(grpc::health::v1::Health::NewStub(channel_)) {}

  v1::Admin::Stub& admin() { return *admin_; }
  grpc::health::v1::Health::Stub& health() { return *health_; }

  // A context whose call must finish within --timeout.
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_timeout)));
    return context;
  }

  // Prints why a call failed, in one line, and returns the exit code.
  int Fail(std::string_view what, const grpc::Status& status) const {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      std::fprintf(stderr, "percorectl: cannot reach admin at %s: %s\n", address_.c_str(),
                   status.error_message().c_str());
    } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      std::fprintf(stderr, "percorectl: cannot reach admin at %s: no answer within %s\n", address_.c_str(),
                   absl::FormatDuration(absl::GetFlag(FLAGS_timeout)).c_str());
    } else {
      std::fprintf(stderr, "percorectl: %s: %s (%s)\n", std::string(what).c_str(), status.error_message().c_str(),
                   CodeName(status.error_code()));
    }
    return kExitFailure;
  }

 private:
  static const char* CodeName(grpc::StatusCode code) {
    switch (code) {
      case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
      case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
      case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
      case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
      case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
      case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
      case grpc::StatusCode::CANCELLED: return "CANCELLED";
      default: return "error";
    }
  }

  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

void PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) json = "{}";
  std::printf("%s\n", json.c_str());
}

int Stats(Client& client) {
  if (absl::GetFlag(FLAGS_prometheus)) {
    v1::PrometheusText text;
    grpc::Status status = client.admin().GetPrometheus(client.Context().get(), v1::GetPrometheusRequest(), &text);
    if (!status.ok()) return client.Fail("stats", status);
    std::fputs(text.text().c_str(), stdout);
    return 0;
  }
  v1::Stats stats;
  grpc::Status status = client.admin().GetStats(client.Context().get(), v1::GetStatsRequest(), &stats);
  if (!status.ok()) return client.Fail("stats", status);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(stats);
  } else {
    std::fputs(StatsText(stats, nullptr).c_str(), stdout);
  }
  return 0;
}

std::string LocalTime(int64_t unix_ns) {
  const time_t seconds = static_cast<time_t>(unix_ns / 1'000'000'000);
  tm local;
  localtime_r(&seconds, &local);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

int Watch(Client& client, const sigset_t& interrupt) {
  // The stream has no deadline; reachability is checked with one bounded call first.
  v1::Stats probe;
  grpc::Status status = client.admin().GetStats(client.Context().get(), v1::GetStatsRequest(), &probe);
  if (!status.ok()) return client.Fail("watch", status);

  grpc::ClientContext context;
  std::atomic<bool> done{false};
  // SIGINT is blocked in every thread; this one takes it and cancels the stream.
  std::thread interrupter([&] {
    const timespec slice{0, 100'000'000};
    while (!done.load()) {
      if (sigtimedwait(&interrupt, nullptr, &slice) == SIGINT) {
        done.store(true);
        context.TryCancel();
      }
    }
  });
  v1::WatchStatsRequest request;
  request.set_interval_ns(absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_interval)));
  std::unique_ptr<grpc::ClientReader<v1::Stats>> reader = client.admin().WatchStats(&context, request);
  const int count = absl::GetFlag(FLAGS_count);
  const bool json = absl::GetFlag(FLAGS_json);
  v1::Stats previous;
  v1::Stats stats;
  int received = 0;
  while (reader->Read(&stats)) {
    if (json) {
      PrintJson(stats);
    } else {
      if (received > 0) std::printf("\n");
      std::printf("=== %s\n%s", LocalTime(stats.taken_unix_ns()).c_str(),
                  StatsText(stats, received > 0 ? &previous : nullptr).c_str());
    }
    std::fflush(stdout);
    previous = stats;
    if (++received == count) {
      context.TryCancel();
      break;
    }
  }
  const bool interrupted = done.exchange(true);
  interrupter.join();
  status = reader->Finish();
  if (interrupted || received == count || status.ok()) return 0;
  return client.Fail("watch", status);
}

int Connections(Client& client) {
  v1::ListConnectionsRequest request;
  if (const int loop = absl::GetFlag(FLAGS_loop); loop >= 0) request.set_loop(loop);
  request.set_service(absl::GetFlag(FLAGS_service));
  request.set_state(absl::GetFlag(FLAGS_state));
  request.set_page_size(absl::GetFlag(FLAGS_page_size));
  v1::ListConnectionsResponse all;
  while (true) {
    v1::ListConnectionsResponse page;
    grpc::Status status = client.admin().ListConnections(client.Context().get(), request, &page);
    if (!status.ok()) return client.Fail("conns", status);
    for (const v1::ConnectionInfo& c : page.connections()) *all.add_connections() = c;
    for (int loop : page.stalled_loops()) {
      bool seen = false;
      for (int s : all.stalled_loops()) seen |= s == loop;
      if (!seen) all.add_stalled_loops(loop);
    }
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(all);
  } else {
    std::fputs(ConnectionsText(all).c_str(), stdout);
  }
  return 0;
}

int Config(Client& client) {
  v1::Config config;
  grpc::Status status = client.admin().GetConfig(client.Context().get(), v1::GetConfigRequest(), &config);
  if (!status.ok()) return client.Fail("config", status);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(config);
  } else {
    std::fputs(ConfigText(config).c_str(), stdout);
  }
  return 0;
}

// Prints the reply of a control call: JSON, or `done` as one line.
int Report(const google::protobuf::Message& reply, const std::string& done) {
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(reply);
  } else {
    std::printf("%s\n", done.c_str());
  }
  return 0;
}

bool ParseLoop(const std::vector<char*>& args, int* loop) {
  return args.size() == 3 && absl::SimpleAtoi(args[2], loop) && *loop >= 0;
}

int Health(Client& client) {
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse reply;
  grpc::Status status = client.health().Check(client.Context().get(), request, &reply);
  if (!status.ok()) return client.Fail("health", status);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(reply);
  } else {
    std::printf("%s\n", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(reply.status()).c_str());
  }
  return reply.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : kExitFailure;
}

int Usage(const char* why) {
  std::fprintf(stderr, "percorectl: %s\n%s\n", why, kUsage);
  return kExitUsage;
}

int Run(const std::vector<char*>& args, const sigset_t& interrupt) {
  if (args.size() < 2) return Usage("no command");
  const std::string command = args[1];
  Client client(absl::GetFlag(FLAGS_admin));
  if (command == "stats" && args.size() == 2) return Stats(client);
  if (command == "watch" && args.size() == 2) return Watch(client, interrupt);
  if (command == "conns" && args.size() == 2) return Connections(client);
  if (command == "config" && args.size() == 2) return Config(client);
  if (command == "health" && args.size() == 2) return Health(client);
  if (command == "balance" && args.size() == 3) {
    v1::SetBalancePolicyRequest request;
    request.set_policy(args[2]);
    v1::SetBalancePolicyResponse reply;
    grpc::Status status = client.admin().SetBalancePolicy(client.Context().get(), request, &reply);
    if (!status.ok()) return client.Fail("balance", status);
    return Report(reply, absl::StrCat("balance policy: ", reply.previous(), " -> ", reply.current()));
  }
  int loop = 0;
  if (command == "drain" && ParseLoop(args, &loop)) {
    v1::DrainLoopRequest request;
    request.set_loop(loop);
    request.set_close_idle(absl::GetFlag(FLAGS_close_idle));
    v1::DrainLoopResponse reply;
    grpc::Status status = client.admin().DrainLoop(client.Context().get(), request, &reply);
    if (!status.ok()) return client.Fail("drain", status);
    return Report(reply,
                  absl::StrCat("loop ", loop, " draining", request.close_idle() ? " (idle connections closed)" : ""));
  }
  if (command == "resume" && ParseLoop(args, &loop)) {
    v1::ResumeLoopRequest request;
    request.set_loop(loop);
    v1::ResumeLoopResponse reply;
    grpc::Status status = client.admin().ResumeLoop(client.Context().get(), request, &reply);
    if (!status.ok()) return client.Fail("resume", status);
    return Report(reply, absl::StrCat("loop ", loop, " accepting"));
  }
  uint64_t id = 0;
  if (command == "close" && args.size() == 3 && absl::SimpleAtoi(args[2], &id)) {
    v1::CloseConnectionRequest request;
    request.set_id(id);
    v1::CloseConnectionResponse reply;
    grpc::Status status = client.admin().CloseConnection(client.Context().get(), request, &reply);
    if (!status.ok()) return client.Fail("close", status);
    return Report(reply, absl::StrCat("connection ", id, " closed"));
  }
  int target = 0;
  if (command == "migrate" && args.size() == 4 && absl::SimpleAtoi(args[2], &id) && absl::SimpleAtoi(args[3], &target)) {
    if (absl::GetFlag(FLAGS_wait) <= absl::ZeroDuration()) return Usage("--wait must be positive");
    v1::MigrateConnectionRequest request;
    request.set_id(id);
    request.set_loop(target);
    request.set_wait_ns(absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_wait)));
    v1::MigrateConnectionResponse reply;
    grpc::Status status = client.admin().MigrateConnection(client.Context().get(), request, &reply);
    if (!status.ok()) return client.Fail("migrate", status);
    return Report(reply, absl::StrCat("connection ", id, " moved to loop ", reply.loop(), " (now id ", reply.new_id(), ")"));
  }
  if (command == "reload" && args.size() == 2) {
    v1::ReloadCertificatesResponse reply;
    grpc::Status status =
        client.admin().ReloadCertificates(client.Context().get(), v1::ReloadCertificatesRequest(), &reply);
    if (!status.ok()) return client.Fail("reload", status);
    return Report(reply, absl::StrCat("certificates reloaded on ", reply.endpoints(), " TLS endpoint",
                                      reply.endpoints() == 1 ? "" : "s"));
  }
  return Usage(absl::StrCat("bad command line for '", command, "'").c_str());
}

}  // namespace
}  // namespace percore

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(percore::kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  // Blocked before any thread starts, so only `watch`'s own thread ever takes SIGINT; other
  // commands are short calls with deadlines and keep the default action.
  sigset_t interrupt;
  sigemptyset(&interrupt);
  sigaddset(&interrupt, SIGINT);
  if (args.size() >= 2 && std::string(args[1]) == "watch") pthread_sigmask(SIG_BLOCK, &interrupt, nullptr);
  return percore::Run(args, interrupt);
}
