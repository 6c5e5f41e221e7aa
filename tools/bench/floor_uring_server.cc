// floor_uring_server: floor_server's completion twin, the least an io_uring server can do per
// request on this machine. One thread, one ring (SINGLE_ISSUER | DEFER_TASKRUN), a multishot
// accept, one multishot receive per connection into a shared provided-buffer ring, and one
// send per completed receive, every submission of an iteration going in with the wait
// (io_uring_submit_and_wait). No framework, no parser beyond counting request ends, no timers,
// no statistics.
//
//   floor_uring_server --mode=echo --port=7102   writes back every byte it receives
//   floor_uring_server --mode=http --port=7103   answers each request (each "\r\n\r\n" seen)
//                                                with the same canned 200 response as floor_server
//
// Runs until killed. Listens on 127.0.0.1 unless --host says otherwise. A send that the socket
// does not take at once waits in the kernel; a connection then queues what follows in
// userspace until that send completes, so bytes leave in order.

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view kCannedResponse =
    "HTTP/1.1 200 OK\r\n"
    "Server: floor\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Content-Length: 13\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Hello, World!";

constexpr unsigned kEntries = 4096;
constexpr unsigned kBuffers = 4096;
constexpr unsigned kBufferSize = 4096;
constexpr uint64_t kAccept = 1, kRecv = 2, kSend = 3;  // low 2 bits of user_data; fd above

struct Conn {
  int matched = 0;
  std::string sending;  // the bytes of the send in flight
  std::string queued;   // what came after, while it was in flight
  bool in_flight = false;
  bool closing = false;
};

io_uring ring;
io_uring_buf_ring* buf_ring = nullptr;
char* buffers = nullptr;
std::vector<Conn> conns;  // indexed by fd
bool http_mode = false;

io_uring_sqe* Sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  if (sqe == nullptr) {
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
  }
  return sqe;
}

void ArmRecv(int fd) {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = 0;
  io_uring_sqe_set_data64(sqe, (static_cast<uint64_t>(fd) << 2) | kRecv);
}

void ArmAccept(int listen_fd) {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, kAccept);
}

void StartSend(int fd, Conn& c) {
  c.sending.swap(c.queued);
  c.queued.clear();
  c.in_flight = true;
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_send(sqe, fd, c.sending.data(), c.sending.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, (static_cast<uint64_t>(fd) << 2) | kSend);
}

void Close(int fd) {
  Conn& c = conns[fd];
  if (c.in_flight) {  // the send's completion closes it
    c.closing = true;
    return;
  }
  ::close(fd);
  c = Conn{};
}

int CountRequestEnds(const char* data, size_t n, int* matched) {
  static constexpr char kEnd[] = "\r\n\r\n";
  int ends = 0;
  int m = *matched;
  for (size_t i = 0; i < n; ++i) {
    if (data[i] == kEnd[m]) {
      if (++m == 4) {
        ++ends;
        m = 0;
      }
    } else {
      m = data[i] == '\r' ? 1 : 0;
    }
  }
  *matched = m;
  return ends;
}

void OnRecv(int fd, const io_uring_cqe* cqe) {
  Conn& c = conns[fd];
  const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (cqe->res <= 0) {
    if (cqe->res == -ENOBUFS) {
      ArmRecv(fd);
    } else if (!more) {
      Close(fd);  // EOF or error
    }
    return;
  }
  const unsigned id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  const char* data = buffers + static_cast<size_t>(id) * kBufferSize;
  if (http_mode) {
    for (int n = CountRequestEnds(data, static_cast<size_t>(cqe->res), &c.matched); n > 0; --n) {
      c.queued.append(kCannedResponse);
    }
  } else {
    c.queued.append(data, static_cast<size_t>(cqe->res));
  }
  io_uring_buf_ring_add(buf_ring, const_cast<char*>(data), kBufferSize, static_cast<unsigned short>(id),
                        io_uring_buf_ring_mask(kBuffers), 0);
  io_uring_buf_ring_advance(buf_ring, 1);
  if (!c.in_flight && !c.queued.empty()) StartSend(fd, c);
  if (!more) ArmRecv(fd);
}

void OnSend(int fd, const io_uring_cqe* cqe) {
  Conn& c = conns[fd];
  c.in_flight = false;
  if (c.closing || cqe->res < 0) {
    c.closing = false;
    Close(fd);
    return;
  }
  c.sending.erase(0, static_cast<size_t>(cqe->res));
  if (!c.sending.empty()) {  // partial: the rest first, then what queued behind it
    c.queued.insert(0, c.sending);
    c.sending.clear();
  }
  if (!c.queued.empty()) StartSend(fd, c);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 7102;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--mode=http") {
      http_mode = true;
    } else if (arg == "--mode=echo") {
      http_mode = false;
    } else if (arg.substr(0, 7) == "--port=") {
      port = std::atoi(argv[i] + 7);
    } else if (arg.substr(0, 7) == "--host=") {
      host = std::string(arg.substr(7));
    } else {
      std::fprintf(stderr, "usage: floor_uring_server [--mode=echo|http] [--port=N] [--host=ADDR]\n");
      return 2;
    }
  }
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = kEntries * 16;
  if (int rc = io_uring_queue_init_params(kEntries, &ring, &params); rc != 0) {
    std::fprintf(stderr, "floor_uring_server: io_uring_queue_init: %s\n", std::strerror(-rc));
    return 1;
  }
  void* ring_mem = nullptr;
  if (posix_memalign(&ring_mem, 4096, sizeof(io_uring_buf) * kBuffers) != 0) return 1;
  buf_ring = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_ring_init(buf_ring);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(buf_ring);
  reg.ring_entries = kBuffers;
  reg.bgid = 0;
  if (int rc = io_uring_register_buf_ring(&ring, &reg, 0); rc != 0) {
    std::fprintf(stderr, "floor_uring_server: io_uring_register_buf_ring: %s\n", std::strerror(-rc));
    return 1;
  }
  buffers = static_cast<char*>(std::malloc(static_cast<size_t>(kBuffers) * kBufferSize));
  for (unsigned i = 0; i < kBuffers; ++i) {
    io_uring_buf_ring_add(buf_ring, buffers + static_cast<size_t>(i) * kBufferSize, kBufferSize,
                          static_cast<unsigned short>(i), io_uring_buf_ring_mask(kBuffers), static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buf_ring, static_cast<int>(kBuffers));

  const int listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(listen_fd, 4096) != 0) {
    std::perror("floor_uring_server: bind/listen");
    return 1;
  }
  ArmAccept(listen_fd);
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait(&ring, 1);
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const uint64_t data = cqe->user_data;
      const int fd = static_cast<int>(data >> 2);
      switch (data & 3) {
        case kAccept:
          if (cqe->res >= 0) {
            ::setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            if (static_cast<size_t>(cqe->res) >= conns.size()) conns.resize(cqe->res + 1);
            conns[cqe->res] = Conn{};
            ArmRecv(cqe->res);
          }
          if ((cqe->flags & IORING_CQE_F_MORE) == 0) ArmAccept(listen_fd);
          break;
        case kRecv:
          OnRecv(fd, cqe);
          break;
        case kSend:
          OnSend(fd, cqe);
          break;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
