#include "tools/loadgen/run.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/errno_status.h"
#include "tools/loadgen/codec.h"
#include "tools/loadgen/key_space.h"
#include "tools/loadgen/worker.h"

namespace percore::loadgen {
namespace {

bool IsStore(Protocol p) { return p == Protocol::kMemcache || p == Protocol::kResp; }

void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// Connections opened before the run and held, idle, until it ends: they load the server's
// poller (scenario "poll vs epoll") and its memory, not its request path.
class IdleConnections {
 public:
  ~IdleConnections() {
    for (int fd : fds_) CloseFd(fd);
  }
  // With `codec`, each connection first has one request answered (OneRequest).
  absl::Status Open(const SocketAddress& server, int n, const Codec* codec, Protocol protocol) {
    fds_.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const int fd = socket(server.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return ErrnoStatus(errno, absl::StrCat("socket for idle connection ", i));
      fds_.push_back(fd);
      if (connect(fd, reinterpret_cast<const sockaddr*>(&server.storage), server.length) != 0) {
        return ErrnoStatus(errno, absl::StrCat("idle connection ", i));
      }
      if (codec == nullptr) continue;
      if (absl::Status s = OneRequest(fd, *codec, protocol); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("idle connection ", i, ": ", s.message()));
      }
    }
    return absl::OkStatus();
  }
  int size() const { return static_cast<int>(fds_.size()); }

 private:
  // Sends one request on the blocking socket `fd` and reads its whole reply (10 s at most).
  static absl::Status OneRequest(int fd, const Codec& codec, Protocol protocol) {
    Request request;
    switch (protocol) {
      case Protocol::kEcho: request.op = Request::Op::kEcho; break;
      case Protocol::kHttp: request.op = Request::Op::kHttpGet; break;
      case Protocol::kMemcache:
      case Protocol::kResp: request.op = Request::Op::kGet; break;  // a miss is an answer too
    }
    const timeval limit{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
    Buffer out;
    codec.Encode(request, out);
    while (!out.empty()) {
      const ssize_t n = out.WriteToFd(fd);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoStatus(n < 0 ? errno : EPIPE, "send");
    }
    std::string input;
    char chunk[4096];
    for (;;) {
      const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "recv");
      if (n == 0) return absl::UnavailableError("the server closed before replying");
      input.append(chunk, static_cast<size_t>(n));
      const ReplyCheck check = codec.Check(request, input);
      if (check.status == ReplyCheck::Status::kWrong) return absl::DataLossError(check.error);
      if (check.status == ReplyCheck::Status::kNeedMore) continue;
      if (check.server_closes) return absl::UnavailableError("the server closes after its reply");
      return absl::OkStatus();
    }
  }

  std::vector<int> fds_;
};

struct Phase {
  int threads = 0;
  double elapsed_s = 0;
  std::vector<std::unique_ptr<Worker>> workers;
};

// Splits `total` over `parts`, the first ones taking the remainder.
uint64_t Share(uint64_t total, int parts, int i) {
  return total / static_cast<uint64_t>(parts) + (static_cast<uint64_t>(i) < total % static_cast<uint64_t>(parts) ? 1 : 0);
}

absl::StatusOr<Phase> RunPhase(const LoadOptions& o, const Codec& codec, const SocketAddress& server, bool preload) {
  Phase phase;
  phase.threads = std::min(o.threads, o.connections);
  uint64_t first_key = 0;
  for (int i = 0; i < phase.threads; ++i) {
    WorkerPlan plan;
    plan.index = i;
    plan.connections = static_cast<int>(Share(static_cast<uint64_t>(o.connections), phase.threads, i));
    if (preload) {
      plan.preload = true;
      plan.preload_first = first_key;
      plan.preload_end = first_key + Share(o.workload.keys, phase.threads, i);
      first_key = plan.preload_end;
      if (plan.preload_end == plan.preload_first) plan.connections = 0;
    } else {
      plan.quota = o.requests > 0 ? Share(o.requests, phase.threads, i) : 0;
      plan.rate = o.rate / phase.threads;
    }
    auto worker = std::make_unique<Worker>(o, codec, server, plan);
    if (absl::Status s = worker->Open(); !s.ok()) return s;
    phase.workers.push_back(std::move(worker));
  }
  const int64_t start_ns = MonotonicNanos() + 1'000'000;
  const int64_t deadline_ns = (o.requests > 0 || preload) ? 0 : start_ns + o.duration_ns;
  std::vector<std::thread> threads;
  for (auto& w : phase.workers) threads.emplace_back([&w, start_ns, deadline_ns] { w->Run(start_ns, deadline_ns); });
  for (std::thread& t : threads) t.join();
  int64_t last = 0;
  for (auto& w : phase.workers) last = std::max(last, w->result().last_reply_ns);
  if (last < start_ns) last = MonotonicNanos();
  phase.elapsed_s = static_cast<double>(last - start_ns) / 1e9;
  return phase;
}

}  // namespace

absl::Status ValidateOptions(const LoadOptions& o) {
  const Workload& w = o.workload;
  if (o.server.port == 0) return absl::InvalidArgumentError("--server needs a port");
  if (o.connections < 0 || o.idle_connections < 0) return absl::InvalidArgumentError("connection counts must be >= 0");
  if (o.connections == 0 && o.idle_connections == 0) {
    return absl::InvalidArgumentError("--connections must be >= 1 (0 only to hold --idle_connections)");
  }
  if (o.threads < 1) return absl::InvalidArgumentError("--threads must be >= 1");
  if (o.depth < 1) return absl::InvalidArgumentError("--depth must be >= 1");
  if (o.rate < 0) return absl::InvalidArgumentError("--rate must be >= 0");
  if (o.requests == 0 && o.duration_ns <= 0) return absl::InvalidArgumentError("give --requests or a positive --duration");
  if (o.timeout_ns <= 0) return absl::InvalidArgumentError("--timeout must be positive");
  if (o.connect_per_request && o.rate > 0) {
    return absl::InvalidArgumentError("--connect_per_request runs closed loop: --rate is not supported with it");
  }
  if (o.connect_per_request && o.depth != 1) {
    return absl::InvalidArgumentError("--connect_per_request sends one request per connection: --depth must be 1");
  }
  if (w.protocol == Protocol::kEcho && w.message_size == 0) return absl::InvalidArgumentError("--message_size must be >= 1");
  if (w.protocol == Protocol::kHttp && (w.path.empty() || w.path[0] != '/')) {
    return absl::InvalidArgumentError("--path must start with '/'");
  }
  if (IsStore(w.protocol)) {
    if (!KeySpace(w.keys, w.key_size, w.value_size).Valid()) {
      return absl::InvalidArgumentError(absl::StrCat("--key_size=", w.key_size, " cannot hold 'k' and ", w.keys,
                                                     " distinct zero-padded numbers"));
    }
    if (w.get_ratio < 0 || w.get_ratio > 1) return absl::InvalidArgumentError("--get_ratio must be in [0, 1]");
  }
  if (o.preload && !IsStore(w.protocol)) return absl::InvalidArgumentError("--preload is for memcache and resp");
  return absl::OkStatus();
}

absl::StatusOr<Report> RunLoad(const LoadOptions& options_in) {
  if (absl::Status s = ValidateOptions(options_in); !s.ok()) return s;
  signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit();
  LoadOptions options = options_in;
  absl::StatusOr<SocketAddress> server = ResolveNumeric(options.server);
  if (!server.ok()) return server.status();

  Report report;
  IdleConnections idle;
  const std::unique_ptr<Codec> idle_codec = options.idle_after_request ? NewCodec(options.workload) : nullptr;
  if (absl::Status s = idle.Open(*server, options.idle_connections, idle_codec.get(), options.workload.protocol); !s.ok()) {
    return s;
  }
  report.idle_connections = idle.size();

  if (options.preload && options.connections > 0) {
    LoadOptions preload = options;
    preload.depth = std::max(options.depth, 32);
    preload.connections = std::min(options.connections, options.threads);
    preload.threads = preload.connections;
    preload.rate = 0;
    preload.connect_per_request = false;
    const std::unique_ptr<Codec> codec = NewCodec(preload.workload);
    absl::StatusOr<Phase> phase = RunPhase(preload, *codec, *server, /*preload=*/true);
    if (!phase.ok()) return phase.status();
    for (const auto& w : phase->workers) {
      const WorkerResult& r = w->result();
      if (r.errors > 0) {
        return absl::UnavailableError(absl::StrCat("preload failed: ", r.error_samples.empty() ? "" : r.error_samples[0]));
      }
      report.preloaded += r.ok;
    }
    report.preload_s = phase->elapsed_s;
    // Every key is stored now: a miss during the run means the server lost or never kept it.
    options.workload.misses_are_errors = true;
  }

  report.options = options;
  if (options.connections == 0) {
    // Only hold the idle connections, for the duration.
    const int64_t start = MonotonicNanos();
    timespec ts{static_cast<time_t>(options.duration_ns / 1'000'000'000),
                static_cast<long>(options.duration_ns % 1'000'000'000)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    report.elapsed_s = static_cast<double>(MonotonicNanos() - start) / 1e9;
    return report;
  }

  const std::unique_ptr<Codec> codec = NewCodec(options.workload);
  absl::StatusOr<Phase> phase = RunPhase(options, *codec, *server, /*preload=*/false);
  if (!phase.ok()) return phase.status();
  report.threads = phase->threads;
  report.elapsed_s = phase->elapsed_s;
  for (const auto& w : phase->workers) {
    const WorkerResult& r = w->result();
    report.latency_ns.Merge(r.latency_ns);
    report.issued += r.issued;
    report.ok += r.ok;
    report.misses += r.misses;
    report.errors += r.errors;
    report.reissued += r.reissued;
    report.connects += r.connects;
    report.connect_failures += r.connect_failures;
    report.bytes_in += r.bytes_in;
    report.bytes_out += r.bytes_out;
    for (const std::string& e : r.error_samples) {
      if (report.error_samples.size() < 10) report.error_samples.push_back(e);
    }
  }
  return report;
}

}  // namespace percore::loadgen
