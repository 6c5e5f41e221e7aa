#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/socket.h"
#include "tests/testing/deadline.h"

namespace percore::test {

// Drives many client connections at once from the calling thread: non-blocking sockets in one
// epoll set, so a test can hold a thousand concurrent conversations with a server without a
// thread per connection.
//
// Each connection follows a script of steps appended with Send/Expect/... and carried out in
// order during Run. A step either completes at once (Send queues bytes; writing then goes on
// in the background whenever the socket takes more) or waits for something (Flush, Expect,
// ShutdownWrite, ExpectEof). Everything the peer sends is read as it arrives (unless reading
// is switched off) and kept in received(), whatever step is current.
//
//   MultiClient client(LoopbackAddress(port));
//   for (int i = 0; i < 1000; ++i) {
//     MultiClient::Id id = client.Connect().value();
//     client.Send(id, request);               // pipelined: send everything,
//     client.Expect(id, request.size());      // then wait for the whole echo
//   }
//   absl::Status run = client.Run(Deadline::In(absl::Seconds(30)));
//   ASSERT_TRUE(run.ok()) << run;
//   // client.received(id) now holds each connection's echo.
//
// A connection fails (and is closed) on a connect error, a reset, or an EOF that arrives while
// an Expect step still waits for bytes; status(id) says why. Not thread-safe: one thread owns
// a MultiClient and everything it returns.
class MultiClient {
 public:
  using Id = size_t;

  explicit MultiClient(const SocketAddress& server);
  ~MultiClient();  // Closes every socket still open (with a FIN).
  MultiClient(const MultiClient&) = delete;
  MultiClient& operator=(const MultiClient&) = delete;

  // Starts a non-blocking connect; it completes during Run, before the connection's first
  // step. Fails only when a socket cannot be created (e.g. out of descriptors); a connect
  // that fails at once returns an id whose status() says why.
  absl::StatusOr<Id> Connect();

  // --- Script steps: appended to connection `id`, carried out in order by Run ---

  // Queues `bytes` and completes at once; they are written as the socket accepts them.
  void Send(Id id, std::string bytes);
  // Waits until everything queued so far has been written to the socket.
  void Flush(Id id);
  // Waits until `n` more bytes have arrived: completes when the total received reaches the sum
  // of all Expect sizes up to and including this step.
  void Expect(Id id, size_t n);
  // Waits until everything queued is written, then shuts the write side down (sends FIN).
  void ShutdownWrite(Id id);
  // Waits for the peer's EOF. Bytes that arrive first are kept, not an error.
  void ExpectEof(Id id);
  // Closes the socket: a FIN, or with `reset` an RST (SO_LINGER 0). Unsent bytes are dropped.
  void Close(Id id, bool reset = false);

  // --- Running ---

  // Runs until every connection's script has finished or failed. OK when all finished;
  // otherwise the first failure (its connection described), or DeadlineExceeded describing
  // the connections still waiting. Steps may be appended between runs.
  absl::Status Run(Deadline deadline);
  // Does I/O for every connection until `stop()` returns true (OK) or `deadline` passes
  // (DeadlineExceeded). `stop` is evaluated at least every millisecond. Scripts finishing or
  // failing does not end it.
  absl::Status RunUntil(absl::FunctionRef<bool()> stop, Deadline deadline);

  // With reading off the driver reads nothing, so the peer's replies back up in the sockets
  // (and in the peer): for backpressure tests. Writing goes on. On by default.
  void set_reading(bool on);
  bool reading() const { return reading_; }

  // --- Results ---

  size_t size() const { return conns_.size(); }
  const std::string& received(Id id) const { return conns_[id].received; }
  // Bytes written to the socket so far, and bytes queued but not yet written.
  uint64_t bytes_sent(Id id) const { return conns_[id].sent; }
  size_t bytes_unsent(Id id) const { return conns_[id].out.size() - conns_[id].out_offset; }
  bool eof(Id id) const { return conns_[id].eof; }
  // The script has no step left (steps appended later make it unfinished again).
  bool finished(Id id) const;
  bool failed(Id id) const { return !conns_[id].status.ok(); }
  const absl::Status& status(Id id) const { return conns_[id].status; }
  // The socket (-1 once closed or failed) and its local port, which the server sees as the
  // peer's port: how a test finds a connection in the server's own listings.
  int fd(Id id) const { return conns_[id].fd; }
  uint16_t local_port(Id id) const { return conns_[id].local_port; }
  uint64_t total_sent() const;
  uint64_t total_received() const;
  // One line on the connection's state, for failure messages.
  std::string Describe(Id id) const;

 private:
  enum class StepKind { kSend, kFlush, kExpect, kShutdownWrite, kExpectEof, kClose };
  struct Step {
    StepKind kind;
    std::string bytes;    // kSend
    uint64_t target = 0;  // kExpect: total received that completes it; kClose: 1 = reset
  };
  struct Conn {
    int fd = -1;
    uint16_t local_port = 0;
    bool connecting = true;
    bool eof = false;
    bool write_shut = false;
    bool closed = false;
    uint32_t interest = 0;  // as registered with epoll; 0 = not registered
    bool parked = false;    // hang-up seen with reading off: unregistered until reading resumes
    std::vector<Step> steps;
    size_t next_step = 0;
    uint64_t expected = 0;  // sum of the Expect sizes appended so far
    std::string out;        // queued bytes; out[out_offset..] not yet written
    size_t out_offset = 0;
    uint64_t sent = 0;
    std::string received;
    absl::Status status;
  };

  void Append(Id id, Step step);
  void HandleEvent(Id id, uint32_t events);
  void Connected(Id id);
  void ReadSome(Id id);
  void WriteSome(Id id);
  // Carries out steps until one has to wait, the script ends or the connection fails.
  void Advance(Id id);
  void Fail(Id id, absl::Status status);
  void CloseSocket(Id id, bool reset);
  void UpdateInterest(Id id);
  bool Waiting(Id id) const {
    return conns_[id].status.ok() && conns_[id].next_step < conns_[id].steps.size();
  }

  SocketAddress server_;
  int epoll_fd_ = -1;
  bool reading_ = true;
  std::vector<Conn> conns_;
};

}  // namespace percore::test
