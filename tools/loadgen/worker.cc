#include "tools/loadgen/worker.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/errno_status.h"

namespace percore::loadgen {
namespace {

constexpr int kMaxEvents = 256;
constexpr int kReadsPerWakeup = 4;
constexpr size_t kReadChunk = 256 * 1024;
constexpr size_t kMaxErrorSamples = 5;

uint64_t Cookie(uint32_t index, uint32_t generation) { return (uint64_t{index} << 32) | generation; }

void SleepUntil(int64_t when_ns) {
  timespec ts{static_cast<time_t>(when_ns / 1'000'000'000), static_cast<long>(when_ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

std::string Errno(const char* what, int err) { return absl::StrCat(what, ": ", strerror(err)); }

}  // namespace

Worker::Worker(const LoadOptions& options, const Codec& codec, const SocketAddress& server, WorkerPlan plan)
    : options_(options),
      codec_(codec),
      server_(server),
      plan_(plan),
      source_(options.workload, options.seed * 0x100000001b3 + static_cast<uint64_t>(plan.index)) {
  if (plan_.preload) {
    source_.SetSequential(plan_.preload_first, plan_.preload_end);
    plan_.quota = plan_.preload_end - plan_.preload_first;
  }
}

Worker::~Worker() {
  for (Conn& c : conns_) Close(c);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

absl::Status Worker::Open() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return ErrnoStatus(errno, "epoll_create1");
  conns_.resize(static_cast<size_t>(plan_.connections));
  live_ = plan_.connections;
  for (size_t i = 0; i < conns_.size(); ++i) {
    Conn& c = conns_[i];
    c.index = static_cast<uint32_t>(i);
    if (options_.connect_per_request) continue;
    // Blocking connect before the clock starts: setting up is not part of the measurement.
    c.fd = socket(server_.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return ErrnoStatus(errno, "socket");
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&server_.storage), server_.length) != 0) {
      return ErrnoStatus(errno, absl::StrCat("connect to ", server_.ToString()));
    }
    if (absl::Status s = SetNoDelay(c.fd, true); !s.ok()) return s;
    if (absl::Status s = SetNonBlocking(c.fd, true); !s.ok()) return s;
    c.state = Conn::State::kOpen;
    SetInterest(c, EPOLLIN);
  }
  return absl::OkStatus();
}

bool Worker::MoreToIssue(int64_t now) const {
  if (gave_up_) return false;
  if (plan_.quota > 0 && result_.issued >= plan_.quota) return false;
  if (deadline_ns_ > 0 && now >= deadline_ns_) return false;
  return true;
}

bool Worker::Done(int64_t now) const {
  if (live_ == 0) return true;
  return outstanding_ == 0 && !MoreToIssue(now);
}

void Worker::Run(int64_t start_ns, int64_t deadline_ns) {
  start_ns_ = start_ns;
  deadline_ns_ = deadline_ns;
  if (plan_.rate > 0) interval_ns_ = 1e9 / plan_.rate;
  SleepUntil(start_ns);
  int64_t now = MonotonicNanos();
  last_progress_ns_ = now;
  if (plan_.rate == 0) {
    for (Conn& c : conns_) {
      if (c.state == Conn::State::kOpen) {
        Fill(c, now);
        Flush(c);
      } else if (c.state == Conn::State::kClosed) {
        Restart(c, now);
      }
    }
  }

  epoll_event events[kMaxEvents];
  while (true) {
    now = MonotonicNanos();
    if (plan_.rate > 0) IssueDue(now);
    if (Done(now)) break;
    if (outstanding_ > 0 && now - last_progress_ns_ >= options_.timeout_ns) {
      GiveUp();
      break;
    }
    const int64_t wait = WaitTimeoutNs(now);
    timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    const int n = epoll_pwait2(epoll_fd_, events, kMaxEvents, &ts, nullptr);
    if (n < 0 && errno != EINTR) {
      CountErrors(std::max<uint64_t>(outstanding_, 1), Errno("epoll_pwait2", errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      const uint32_t index = static_cast<uint32_t>(events[i].data.u64 >> 32);
      const uint32_t generation = static_cast<uint32_t>(events[i].data.u64);
      Conn& c = conns_[index];
      if (c.generation != generation || c.fd < 0) continue;  // an earlier socket of this slot
      OnEvent(c, events[i].events, MonotonicNanos());
    }
  }
  for (Conn& c : conns_) Close(c);
  result_.latency_ns = latency_.Snapshot();
}

int64_t Worker::WaitTimeoutNs(int64_t now) const {
  int64_t wait = outstanding_ > 0 ? last_progress_ns_ + options_.timeout_ns - now : 1'000'000'000;
  if (deadline_ns_ > now) wait = std::min(wait, deadline_ns_ - now);
  if (plan_.rate > 0 && MoreToIssue(now)) {
    const int64_t next = start_ns_ + static_cast<int64_t>(static_cast<double>(scheduled_) * interval_ns_);
    wait = std::min(wait, next - now);
  }
  return std::max<int64_t>(wait, 0);
}

void Worker::Issue(Conn& c, int64_t start_ns) {
  Request r = source_.Next();
  r.seq = c.next_seq++;
  codec_.Encode(r, c.out);
  c.pending.push_back({r, start_ns});
  ++result_.issued;
  ++outstanding_;
}

void Worker::Fill(Conn& c, int64_t now) {
  while (c.pending.size() < static_cast<size_t>(options_.depth) && MoreToIssue(now)) Issue(c, now);
}

void Worker::IssueDue(int64_t now) {
  std::vector<Conn*>& touched = touched_;
  while (true) {
    const int64_t intended = start_ns_ + static_cast<int64_t>(static_cast<double>(scheduled_) * interval_ns_);
    if (intended > now || !MoreToIssue(intended)) break;
    Conn* target = nullptr;
    for (size_t tries = 0; tries < conns_.size() && target == nullptr; ++tries) {
      Conn& c = conns_[next_conn_];
      next_conn_ = (next_conn_ + 1) % conns_.size();
      if (c.state == Conn::State::kOpen || c.state == Conn::State::kConnecting) target = &c;
    }
    if (target == nullptr) break;
    // Timed from when it should have been sent, however late this loop got to it.
    Issue(*target, intended);
    ++scheduled_;
    if (!target->touched) {
      target->touched = true;
      touched.push_back(target);
    }
  }
  for (Conn* c : touched) {
    c->touched = false;
    Flush(*c);
  }
  touched.clear();
}

void Worker::OnEvent(Conn& c, uint32_t events, int64_t now) {
  if (c.state == Conn::State::kConnecting) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    if (const int err = PendingSocketError(c.fd); err != 0) {
      ++result_.connect_failures;
      const uint64_t lost = c.pending.size();
      outstanding_ -= lost;
      c.pending.clear();
      CountErrors(std::max<uint64_t>(lost, 1), Errno("connect", err));
      Close(c);
      c.state = Conn::State::kDead;  // a server that refuses is not retried in a tight loop
      --live_;
      return;
    }
    c.state = Conn::State::kOpen;
    ++result_.connects;
    (void)SetNoDelay(c.fd, true);
    Flush(c);
    if ((events & EPOLLIN) == 0) return;
  }
  if (c.state != Conn::State::kOpen) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    ReadReplies(c, now);
    return;  // ReadReplies flushes
  }
  if (events & EPOLLOUT) Flush(c);
}

void Worker::ReadReplies(Conn& c, int64_t now) {
  bool eof = false;
  for (int i = 0; i < kReadsPerWakeup; ++i) {
    c.in.Reserve(16 * 1024);
    const ssize_t n = c.in.ReadFromFd(c.fd, kReadChunk);
    if (n > 0) {
      result_.bytes_in += static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    Fail(c, Errno("read", errno), now);
    return;
  }

  while (!c.pending.empty() && !c.in.empty()) {
    const Pending& p = c.pending.front();
    ReplyCheck check = codec_.Check(p.request, c.in.view());
    if (check.status == ReplyCheck::Status::kNeedMore) break;
    if (check.status == ReplyCheck::Status::kWrong) {
      c.pending.pop_front();
      --outstanding_;
      CountErrors(1, check.error);
      Fail(c, "requests lost on a connection dropped after a wrong reply", now, /*counted=*/true);
      return;
    }
    latency_.Record(static_cast<uint64_t>(std::max<int64_t>(0, now - p.start_ns)));
    if (check.status == ReplyCheck::Status::kOk) {
      ++result_.ok;
    } else {
      ++result_.misses;
    }
    c.in.Consume(check.consumed);
    c.pending.pop_front();
    --outstanding_;
    last_progress_ns_ = now;
    result_.last_reply_ns = now;
    if (check.server_closes) {
      Reissue(c, now);
      return;
    }
    if (options_.connect_per_request) {
      Close(c);
      Restart(c, now);
      return;
    }
    if (plan_.rate == 0) Fill(c, now);
  }
  if (!c.in.empty() && c.pending.empty()) {
    CountErrors(1, absl::StrCat("bytes with no request outstanding: ", Excerpt(c.in.view())));
    Fail(c, "connection dropped after unsolicited bytes", now, /*counted=*/true);
    return;
  }
  if (eof) {
    Fail(c, c.pending.empty() ? "server closed the connection"
                              : "server closed the connection with requests outstanding",
         now);
    return;
  }
  Flush(c);
}

void Worker::Flush(Conn& c) {
  if (c.state != Conn::State::kOpen) return;
  while (!c.out.empty()) {
    const ssize_t n = c.out.WriteToFd(c.fd);
    if (n > 0) {
      result_.bytes_out += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    Fail(c, Errno("write", n < 0 ? errno : EIO), MonotonicNanos());
    return;
  }
  SetInterest(c, EPOLLIN | (c.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT)));
}

void Worker::SetInterest(Conn& c, uint32_t interest) {
  if (interest == c.interest) return;
  epoll_event ev{};
  ev.events = interest;
  ev.data.u64 = Cookie(c.index, c.generation);
  const int op = c.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(epoll_fd_, op, c.fd, &ev) == 0) c.interest = interest;
}

bool Worker::StartConnect(Conn& c, int64_t now) {
  ++c.generation;
  c.fd = socket(server_.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int err = c.fd < 0 ? errno : 0;
  if (err == 0 && connect(c.fd, reinterpret_cast<const sockaddr*>(&server_.storage), server_.length) != 0) {
    err = errno;
  }
  if (err == 0) {
    c.state = Conn::State::kOpen;
    ++result_.connects;
    (void)SetNoDelay(c.fd, true);
    SetInterest(c, EPOLLIN);
    return true;
  }
  if (err == EINPROGRESS) {
    c.state = Conn::State::kConnecting;
    SetInterest(c, EPOLLOUT);
    return true;
  }
  ++result_.connect_failures;
  CountErrors(1, Errno("connect", err));
  Close(c);
  c.state = Conn::State::kDead;
  --live_;
  return false;
}

void Worker::Restart(Conn& c, int64_t now) {
  if (!MoreToIssue(now) || !StartConnect(c, now)) return;
  if (options_.connect_per_request) {
    Issue(c, now);  // timed from the connect: the accept is part of what is measured
  } else if (plan_.rate == 0) {
    Fill(c, now);
  }
  Flush(c);
}

void Worker::Close(Conn& c) {
  if (c.fd >= 0) {
    CloseFd(c.fd);  // also leaves the epoll set
    c.fd = -1;
  }
  c.interest = 0;
  c.in.Clear();
  c.out.Clear();
  if (c.state != Conn::State::kDead) c.state = Conn::State::kClosed;
}

void Worker::Fail(Conn& c, const std::string& why, int64_t now, bool counted) {
  const uint64_t lost = c.pending.size();
  outstanding_ -= lost;
  c.pending.clear();
  const uint64_t errors = counted ? lost : std::max<uint64_t>(lost, 1);
  if (errors > 0) CountErrors(errors, why);
  Close(c);
  Restart(c, now);
}

void Worker::Reissue(Conn& c, int64_t now) {
  const uint64_t dropped = c.pending.size();
  outstanding_ -= dropped;
  result_.issued -= dropped;
  result_.reissued += dropped;
  c.pending.clear();
  Close(c);
  Restart(c, now);
}

void Worker::GiveUp() {
  gave_up_ = true;
  const std::string why = absl::StrCat("no reply within ", options_.timeout_ns / 1'000'000, " ms");
  for (Conn& c : conns_) {
    if (!c.pending.empty()) CountErrors(c.pending.size(), why);
    outstanding_ -= c.pending.size();
    c.pending.clear();
    Close(c);
  }
}

void Worker::CountErrors(uint64_t n, const std::string& why) {
  result_.errors += n;
  if (result_.error_samples.size() < kMaxErrorSamples) {
    result_.error_samples.push_back(n > 1 ? absl::StrCat(why, " (x", n, ")") : why);
  }
}

}  // namespace percore::loadgen
