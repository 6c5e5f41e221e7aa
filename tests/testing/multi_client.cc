#include "tests/testing/multi_client.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/errno_status.h"
#include "tests/testing/client_socket.h"

namespace percore::test {
namespace {

// Per wake-up, so that one busy connection cannot starve the others of the driver's time.
constexpr size_t kIoBudget = 256 * 1024;
constexpr int kMaxEvents = 256;

absl::string_view StepName(int kind) {
  static constexpr absl::string_view kNames[] = {"send",           "flush",      "expect",
                                                 "shutdown_write", "expect_eof", "close"};
  return kNames[kind];
}

}  // namespace

MultiClient::MultiClient(const SocketAddress& server)
    : server_(server), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {}

MultiClient::~MultiClient() {
  for (Conn& c : conns_) {
    if (c.fd >= 0) ::close(c.fd);
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

absl::StatusOr<MultiClient::Id> MultiClient::Connect() {
  if (epoll_fd_ < 0) return ErrnoStatus(errno, "epoll_create1");
  absl::StatusOr<ScopedFd> fd = NewClientSocket(server_.storage.ss_family);
  if (!fd.ok()) return fd.status();
  const Id id = conns_.size();
  conns_.emplace_back();
  Conn& c = conns_.back();
  if (absl::Status s = StartConnect(fd->get(), server_); !s.ok()) {
    c.status = std::move(s);
    c.closed = true;
    return id;
  }
  c.fd = fd->release();
  if (absl::StatusOr<uint16_t> port = LocalPort(c.fd); port.ok()) c.local_port = *port;
  UpdateInterest(id);
  return id;
}

void MultiClient::Append(Id id, Step step) { conns_[id].steps.push_back(std::move(step)); }

void MultiClient::Send(Id id, std::string bytes) { Append(id, Step{StepKind::kSend, std::move(bytes)}); }

void MultiClient::Flush(Id id) { Append(id, Step{StepKind::kFlush, {}}); }

void MultiClient::Expect(Id id, size_t n) {
  conns_[id].expected += n;
  Append(id, Step{StepKind::kExpect, {}, conns_[id].expected});
}

void MultiClient::ShutdownWrite(Id id) { Append(id, Step{StepKind::kShutdownWrite, {}}); }

void MultiClient::ExpectEof(Id id) { Append(id, Step{StepKind::kExpectEof, {}}); }

void MultiClient::Close(Id id, bool reset) { Append(id, Step{StepKind::kClose, {}, reset ? 1u : 0u}); }

bool MultiClient::finished(Id id) const { return conns_[id].next_step >= conns_[id].steps.size(); }

void MultiClient::set_reading(bool on) {
  if (reading_ == on) return;
  reading_ = on;
  for (Id id = 0; id < conns_.size(); ++id) {
    conns_[id].parked = false;
    UpdateInterest(id);
  }
}

uint64_t MultiClient::total_sent() const {
  uint64_t total = 0;
  for (const Conn& c : conns_) total += c.sent;
  return total;
}

uint64_t MultiClient::total_received() const {
  uint64_t total = 0;
  for (const Conn& c : conns_) total += c.received.size();
  return total;
}

std::string MultiClient::Describe(Id id) const {
  const Conn& c = conns_[id];
  std::string step = "finished";
  if (c.next_step < c.steps.size()) {
    const Step& s = c.steps[c.next_step];
    step =
        absl::StrCat("step ", c.next_step + 1, "/", c.steps.size(), " ", StepName(static_cast<int>(s.kind)));
    if (s.kind == StepKind::kExpect) absl::StrAppend(&step, " (until ", s.target, " bytes received)");
  }
  return absl::StrCat("connection ", id, " (local port ", c.local_port, "): ", step, "; sent ", c.sent,
                      ", unsent ", c.out.size() - c.out_offset, ", received ", c.received.size(),
                      c.connecting ? ", connecting" : "", c.eof ? ", eof" : "", c.closed ? ", closed" : "",
                      c.status.ok() ? "" : absl::StrCat("; ", c.status.ToString()));
}

absl::Status MultiClient::Run(Deadline deadline) {
  size_t waiting = 0;
  for (Id id = 0; id < conns_.size(); ++id) {
    Advance(id);
    if (Waiting(id)) ++waiting;
  }
  epoll_event events[kMaxEvents];
  while (waiting > 0) {
    if (deadline.expired()) {
      size_t shown = 0;
      std::string detail;
      for (Id id = 0; id < conns_.size() && shown < 3; ++id) {
        if (!Waiting(id)) continue;
        absl::StrAppend(&detail, shown++ == 0 ? "" : "; ", Describe(id));
      }
      return absl::DeadlineExceededError(
          absl::StrCat(waiting, " of ", conns_.size(), " connections still waiting: ", detail));
    }
    const int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, deadline.PollTimeoutMs(100));
    if (n < 0 && errno != EINTR) return ErrnoStatus(errno, "epoll_wait");
    for (int i = 0; i < n; ++i) {
      const Id id = events[i].data.u64;
      const bool was_waiting = Waiting(id);
      HandleEvent(id, events[i].events);
      if (was_waiting && !Waiting(id)) --waiting;
    }
  }
  size_t failures = 0;
  Id first = 0;
  for (Id id = 0; id < conns_.size(); ++id) {
    if (failed(id) && failures++ == 0) first = id;
  }
  if (failures == 0) return absl::OkStatus();
  return absl::Status(
      conns_[first].status.code(),
      absl::StrCat(failures, " of ", conns_.size(), " connections failed; first: ", Describe(first)));
}

absl::Status MultiClient::RunUntil(absl::FunctionRef<bool()> stop, Deadline deadline) {
  for (Id id = 0; id < conns_.size(); ++id) Advance(id);
  epoll_event events[kMaxEvents];
  for (;;) {
    if (stop()) return absl::OkStatus();
    if (deadline.expired())
      return absl::DeadlineExceededError("the condition did not hold before the deadline");
    const int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, deadline.PollTimeoutMs(1));
    if (n < 0 && errno != EINTR) return ErrnoStatus(errno, "epoll_wait");
    for (int i = 0; i < n; ++i) HandleEvent(events[i].data.u64, events[i].events);
  }
}

void MultiClient::HandleEvent(Id id, uint32_t events) {
  Conn& c = conns_[id];
  if (c.closed) return;
  if (c.connecting) {
    const int err = PendingSocketError(c.fd);
    if (err != 0) {
      Fail(id, ErrnoStatus(err, absl::StrCat("connect ", server_.ToString())));
      return;
    }
    c.connecting = false;
  } else {
    const bool trouble = events & (EPOLLHUP | EPOLLERR);
    if (reading_ && !c.eof && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) ReadSome(id);
    if (c.closed) return;
    if (c.out_offset < c.out.size() && !c.write_shut && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
      WriteSome(id);
    if (c.closed) return;
    // A hang-up that could not be acted on (reading is off, nothing to write) would be reported
    // again at once by every epoll_wait: stop watching until reading resumes.
    if (trouble && !reading_ && !c.eof) c.parked = true;
  }
  Advance(id);
}

void MultiClient::ReadSome(Id id) {
  Conn& c = conns_[id];
  char chunk[64 * 1024];
  size_t budget = kIoBudget;
  while (budget > 0) {
    const ssize_t n = ::recv(c.fd, chunk, std::min(sizeof(chunk), budget), 0);
    if (n > 0) {
      c.received.append(chunk, static_cast<size_t>(n));
      budget -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      c.eof = true;
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    Fail(id, ErrnoStatus(errno, "read"));
    return;
  }
}

void MultiClient::WriteSome(Id id) {
  Conn& c = conns_[id];
  size_t budget = kIoBudget;
  while (c.out_offset < c.out.size() && budget > 0) {
    const size_t len = std::min(c.out.size() - c.out_offset, budget);
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_offset, len, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_offset += static_cast<size_t>(n);
      c.sent += static_cast<uint64_t>(n);
      budget -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    Fail(id, ErrnoStatus(errno, "write"));
    return;
  }
  if (c.out_offset == c.out.size()) {
    c.out.clear();
    c.out_offset = 0;
  } else if (c.out_offset > (1 << 20) && c.out_offset > c.out.size() / 2) {
    c.out.erase(0, c.out_offset);  // keeps memory proportional to what is still unsent
    c.out_offset = 0;
  }
}

void MultiClient::Advance(Id id) {
  Conn& c = conns_[id];
  while (!c.connecting && c.status.ok() && c.next_step < c.steps.size()) {
    Step& step = c.steps[c.next_step];
    if (c.closed && step.kind != StepKind::kClose) {
      Fail(id, absl::FailedPreconditionError(
                   absl::StrCat(StepName(static_cast<int>(step.kind)), " after close")));
      return;
    }
    bool done = false;
    switch (step.kind) {
      case StepKind::kSend:
        if (c.write_shut) {
          Fail(id, absl::FailedPreconditionError("send after shutdown_write"));
          return;
        }
        c.parked = false;
        c.out.append(step.bytes);
        std::string().swap(step.bytes);
        WriteSome(id);  // most sends fit in the socket at once: skip a round trip through epoll
        done = true;
        break;
      case StepKind::kFlush:
        done = c.out_offset == c.out.size();
        break;
      case StepKind::kExpect:
        done = c.received.size() >= step.target;
        if (!done && c.eof) {
          Fail(id, absl::OutOfRangeError(
                       absl::StrCat("EOF after ", c.received.size(), " bytes, expected ", step.target)));
          return;
        }
        break;
      case StepKind::kShutdownWrite:
        if (c.out_offset == c.out.size()) {
          if (!c.closed && !c.write_shut && ::shutdown(c.fd, SHUT_WR) != 0) {
            Fail(id, ErrnoStatus(errno, "shutdown(SHUT_WR)"));
            return;
          }
          c.write_shut = true;
          done = true;
        }
        break;
      case StepKind::kExpectEof:
        done = c.eof;
        break;
      case StepKind::kClose:
        CloseSocket(id, step.target != 0);
        done = true;
        break;
    }
    if (!c.status.ok()) return;
    if (!done) break;
    ++c.next_step;
  }
  UpdateInterest(id);
}

void MultiClient::Fail(Id id, absl::Status status) {
  Conn& c = conns_[id];
  if (c.status.ok()) c.status = std::move(status);
  CloseSocket(id, false);
}

void MultiClient::CloseSocket(Id id, bool reset) {
  Conn& c = conns_[id];
  if (c.closed) return;
  if (c.interest != 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  c.interest = 0;
  if (reset) (void)ResetOnClose(c.fd);
  ::close(c.fd);
  c.fd = -1;
  c.closed = true;
  c.out.clear();
  c.out_offset = 0;
}

void MultiClient::UpdateInterest(Id id) {
  Conn& c = conns_[id];
  if (c.closed) return;
  uint32_t wanted = 0;
  if (c.connecting) {
    wanted = EPOLLOUT;
  } else if (!c.parked) {
    if (reading_ && !c.eof) wanted |= EPOLLIN;
    if (c.out_offset < c.out.size() && !c.write_shut) wanted |= EPOLLOUT;
  }
  if (wanted == c.interest) return;
  epoll_event ev{};
  ev.events = wanted;
  ev.data.u64 = id;
  // An fd with no interest is taken out of the set: epoll reports hang-ups whatever the
  // interest, and a level-triggered hang-up nobody acts on would spin the driver.
  const int op = wanted == 0 ? EPOLL_CTL_DEL : (c.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD);
  if (::epoll_ctl(epoll_fd_, op, c.fd, wanted == 0 ? nullptr : &ev) != 0) {
    c.interest = 0;
    Fail(id, ErrnoStatus(errno, "epoll_ctl"));
    return;
  }
  c.interest = wanted;
}

}  // namespace percore::test
