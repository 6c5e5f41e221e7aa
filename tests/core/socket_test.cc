// Socket helpers: endpoint parsing, listening on port 0, bind conflicts, address formatting,
// and the small setters, on real loopback sockets.

#include "core/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

constexpr int kWaitMs = 5000;

// Owns one fd.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// --- ParseHostPort ---

TEST(ParseHostPortTest, Ipv4) {
  absl::StatusOr<HostPort> hp = ParseHostPort("127.0.0.1:8080");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 8080);
}

TEST(ParseHostPortTest, BracketedIpv6) {
  absl::StatusOr<HostPort> hp = ParseHostPort("[::1]:9000");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 9000);

  hp = ParseHostPort("[fe80::1:2]:1");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "fe80::1:2");
  EXPECT_EQ(hp->port, 1);
}

TEST(ParseHostPortTest, PortOnlyMeansAllInterfaces) {
  absl::StatusOr<HostPort> hp = ParseHostPort(":11211");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "0.0.0.0");
  EXPECT_EQ(hp->port, 11211);
}

TEST(ParseHostPortTest, LocalhostIsLoopback) {
  absl::StatusOr<HostPort> hp = ParseHostPort("localhost:6379");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 6379);
}

TEST(ParseHostPortTest, PortBounds) {
  absl::StatusOr<HostPort> hp = ParseHostPort("1.2.3.4:0");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->port, 0);
  hp = ParseHostPort("1.2.3.4:65535");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->port, 65535);
}

TEST(ParseHostPortTest, NonNumericHostIsKeptForTheResolverToReject) {
  absl::StatusOr<HostPort> hp = ParseHostPort("example.com:80");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "example.com");
  EXPECT_EQ(hp->port, 80);
}

TEST(ParseHostPortTest, RejectsMalformedEndpoints) {
  for (const char* text : {
           "",                  // nothing
           "127.0.0.1",         // missing colon
           "8080",              // missing colon
           "[::1]",             // v6 without port
           "[::1]8080",         // v6 without colon
           "[::1",              // unterminated bracket
           "[::1:8080",         // unterminated bracket
           "[::1]:",            // empty port
           "127.0.0.1:",        // empty port
           ":",                 // empty port
           "1.2.3.4:65536",     // out of range
           "1.2.3.4:99999999999",
           "1.2.3.4:-1",        // negative
           "1.2.3.4:http",      // not a number
           "1.2.3.4:80x",       // trailing garbage
           "1.2.3.4:0x50",      // hex
           "1.2.3.4:8 0",       // inner space
       }) {
    absl::StatusOr<HostPort> hp = ParseHostPort(text);
    EXPECT_FALSE(hp.ok()) << "'" << text << "' parsed as " << hp->ToString();
    if (!hp.ok()) {
      EXPECT_EQ(hp.status().code(), absl::StatusCode::kInvalidArgument) << text;
    }
  }
}

// A port is one to five ASCII digits and nothing else: no sign, no surrounding space (which a
// number parser would otherwise skip).
TEST(ParseHostPortTest, RejectsPortsThatAreNotPlainDigits) {
  for (const char* text : {"1.2.3.4: 80", "1.2.3.4:80 ", "1.2.3.4:\t80", "1.2.3.4:80\n", "1.2.3.4:+80",
                           "[::1]:+443", "[::1]: 443", ": 80", ":+0"}) {
    absl::StatusOr<HostPort> hp = ParseHostPort(text);
    EXPECT_FALSE(hp.ok()) << "'" << text << "' parsed as " << hp->ToString();
  }
}

// An IPv6 address must be bracketed: "::1:80" could be the address ::1:80 with no port, or ::1
// with port 80; guessing the second silently is how a server ends up on the wrong endpoint.
// Empty brackets name no host at all.
TEST(ParseHostPortTest, RejectsUnbracketedIpv6AndEmptyBrackets) {
  for (const char* text : {"::1:80", "fe80::1:443", "::ffff:1.2.3.4:80", "[]:80"}) {
    absl::StatusOr<HostPort> hp = ParseHostPort(text);
    EXPECT_FALSE(hp.ok()) << "'" << text << "' parsed as " << hp->ToString();
  }
}

TEST(ParseHostPortTest, ErrorNamesTheInput) {
  absl::StatusOr<HostPort> hp = ParseHostPort("10.0.0.1:abc");
  ASSERT_FALSE(hp.ok());
  EXPECT_NE(Message(hp.status()).find("10.0.0.1:abc"), std::string::npos) << hp.status();
}

TEST(ParseHostPortTest, RoundTripsThroughToString) {
  for (const char* text : {"127.0.0.1:80", "[::1]:443", "[2001:db8::7]:65535", "10.1.2.3:0"}) {
    absl::StatusOr<HostPort> hp = ParseHostPort(text);
    ASSERT_TRUE(hp.ok()) << text;
    EXPECT_EQ(hp->ToString(), text);
  }
}

TEST(HostPortTest, ToStringBracketsIpv6) {
  EXPECT_EQ((HostPort{"::", 7}).ToString(), "[::]:7");
  EXPECT_EQ((HostPort{"0.0.0.0", 7}).ToString(), "0.0.0.0:7");
}

// --- ResolveNumeric / SocketAddress ---

TEST(ResolveNumericTest, Ipv4AndIpv6) {
  absl::StatusOr<SocketAddress> v4 = ResolveNumeric(HostPort{"192.168.1.20", 8080});
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->storage.ss_family, AF_INET);
  EXPECT_EQ(v4->length, sizeof(sockaddr_in));
  EXPECT_EQ(v4->port(), 8080);
  EXPECT_EQ(v4->ToString(), "192.168.1.20:8080");

  absl::StatusOr<SocketAddress> v6 = ResolveNumeric(HostPort{"2001:db8::1", 443});
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->storage.ss_family, AF_INET6);
  EXPECT_EQ(v6->length, sizeof(sockaddr_in6));
  EXPECT_EQ(v6->port(), 443);
  EXPECT_EQ(v6->ToString(), "[2001:db8::1]:443");
}

TEST(ResolveNumericTest, RejectsNames) {
  for (const char* host : {"example.com", "", "1.2.3", "::g", "1.2.3.4.5"}) {
    absl::StatusOr<SocketAddress> a = ResolveNumeric(HostPort{host, 1});
    EXPECT_FALSE(a.ok()) << host;
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(SocketAddressTest, ToStringOfOtherFamilies) {
  SocketAddress unix_addr;
  unix_addr.storage.ss_family = AF_UNIX;
  unix_addr.length = sizeof(sockaddr_un);
  EXPECT_EQ(unix_addr.ToString(), "unix");
  EXPECT_EQ(unix_addr.port(), 0);

  SocketAddress none;
  EXPECT_EQ(none.ToString(), "?");
  EXPECT_EQ(none.port(), 0);
}

TEST(SocketAddressTest, ToStringOfMappedAndZeroAddresses) {
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(1);
  in->sin_addr.s_addr = htonl(INADDR_ANY);
  a.length = sizeof(sockaddr_in);
  EXPECT_EQ(a.ToString(), "0.0.0.0:1");

  SocketAddress b;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&b.storage);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(65535);
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:10.0.0.1", &in6->sin6_addr), 1);
  b.length = sizeof(sockaddr_in6);
  EXPECT_EQ(b.ToString(), "[::ffff:10.0.0.1]:65535");
  EXPECT_EQ(b.port(), 65535);
}

// --- ListenTcp and friends ---

TEST(ListenTcpTest, PortZeroGetsARealPortAndAcceptsConnections) {
  absl::StatusOr<int> listener = ListenTcp(HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  Fd lfd(*listener);

  absl::StatusOr<SocketAddress> local = LocalAddress(lfd.get());
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->storage.ss_family, AF_INET);
  const uint16_t port = local->port();
  EXPECT_NE(port, 0);
  EXPECT_EQ(local->ToString(), "127.0.0.1:" + std::to_string(port));

  // Non-blocking and close-on-exec, as documented.
  EXPECT_TRUE(::fcntl(lfd.get(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(lfd.get(), F_GETFD) & FD_CLOEXEC);

  // It really listens: a client connects, the listener accepts, addresses agree both ways.
  absl::StatusOr<test::ScopedFd> client = test::ConnectTo(*local, test::Deadline::In(absl::Seconds(5)));
  ASSERT_TRUE(client.ok()) << client.status();
  pollfd p{lfd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, kWaitMs), 1);
  Fd accepted(::accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_GE(accepted.get(), 0) << std::strerror(errno);

  // TCP_NODELAY is set on the listener, and the accepted socket inherits it.
  int nodelay = 0;
  socklen_t nodelay_len = sizeof(nodelay);
  ASSERT_EQ(::getsockopt(accepted.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &nodelay_len), 0);
  EXPECT_EQ(nodelay, 1);

  absl::StatusOr<SocketAddress> peer = PeerAddress(accepted.get());
  absl::StatusOr<SocketAddress> client_local = LocalAddress(client->get());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE(client_local.ok()) << client_local.status();
  EXPECT_EQ(peer->ToString(), client_local->ToString());
  absl::StatusOr<SocketAddress> client_peer = PeerAddress(client->get());
  ASSERT_TRUE(client_peer.ok());
  EXPECT_EQ(client_peer->ToString(), local->ToString());
}

TEST(ListenTcpTest, Ipv6LoopbackWhenAvailable) {
  absl::StatusOr<int> listener = ListenTcp(HostPort{"::1", 0});
  if (!listener.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << listener.status();
  Fd lfd(*listener);
  absl::StatusOr<SocketAddress> local = LocalAddress(lfd.get());
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->storage.ss_family, AF_INET6);
  EXPECT_NE(local->port(), 0);
  EXPECT_EQ(local->ToString(), "[::1]:" + std::to_string(local->port()));
}

TEST(ListenTcpTest, BindConflictIsAnErrorStatus) {
  absl::StatusOr<int> first = ListenTcp(HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(first.ok()) << first.status();
  Fd lfd(*first);
  const uint16_t port = LocalAddress(lfd.get())->port();

  absl::StatusOr<int> second = ListenTcp(HostPort{"127.0.0.1", port});
  ASSERT_FALSE(second.ok());
  if (second.ok()) ::close(*second);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists) << second.status();
  EXPECT_NE(Message(second.status()).find("bind"), std::string::npos) << second.status();
  EXPECT_NE(Message(second.status()).find(std::to_string(port)), std::string::npos) << second.status();
}

TEST(ListenTcpTest, ReusePortListenersShareAPort) {
  ListenOptions options;
  options.reuse_port = true;
  absl::StatusOr<int> first = ListenTcp(HostPort{"127.0.0.1", 0}, options);
  ASSERT_TRUE(first.ok()) << first.status();
  Fd a(*first);
  const uint16_t port = LocalAddress(a.get())->port();
  absl::StatusOr<int> second = ListenTcp(HostPort{"127.0.0.1", port}, options);
  ASSERT_TRUE(second.ok()) << second.status();
  Fd b(*second);
  EXPECT_EQ(LocalAddress(b.get())->port(), port);

  // Without SO_REUSEPORT on the newcomer the port is still taken.
  absl::StatusOr<int> third = ListenTcp(HostPort{"127.0.0.1", port});
  EXPECT_FALSE(third.ok());
  if (third.ok()) ::close(*third);
}

TEST(ListenTcpTest, NonNumericHostIsInvalidArgument) {
  absl::StatusOr<int> listener = ListenTcp(HostPort{"localhost.invalid", 0});
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SocketHelpersTest, AddressesOfANonSocketAreErrors) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Fd r(fds[0]);
  Fd w(fds[1]);
  EXPECT_FALSE(LocalAddress(r.get()).ok());
  EXPECT_FALSE(PeerAddress(r.get()).ok());
  EXPECT_FALSE(LocalAddress(-1).ok());
}

TEST(SocketHelpersTest, PeerAddressOfAListenerIsAnError) {
  absl::StatusOr<int> listener = ListenTcp(HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok());
  Fd lfd(*listener);
  EXPECT_FALSE(PeerAddress(lfd.get()).ok());
}

TEST(SocketHelpersTest, SettersTakeEffect) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_GE(fd.get(), 0);

  ASSERT_TRUE(SetNoDelay(fd.get(), true).ok());
  int value = 0;
  socklen_t len = sizeof(value);
  ASSERT_EQ(::getsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &value, &len), 0);
  EXPECT_NE(value, 0);
  ASSERT_TRUE(SetNoDelay(fd.get(), false).ok());
  ASSERT_EQ(::getsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &value, &len), 0);
  EXPECT_EQ(value, 0);

  ASSERT_TRUE(SetNonBlocking(fd.get(), true).ok());
  EXPECT_TRUE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK);
  ASSERT_TRUE(SetNonBlocking(fd.get(), true).ok());  // idempotent
  EXPECT_TRUE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK);
  ASSERT_TRUE(SetNonBlocking(fd.get(), false).ok());
  EXPECT_FALSE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK);

  EXPECT_EQ(PendingSocketError(fd.get()), 0);
}

TEST(SocketHelpersTest, SettersReportBadFds) {
  EXPECT_EQ(SetNoDelay(-1, true).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetNonBlocking(-1, true).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PendingSocketError(-1), EBADF);
}

TEST(SocketHelpersTest, PendingSocketErrorReportsARefusedConnect) {
  // A port that was just free: bind one, note it, close it, and connect there.
  absl::StatusOr<int> listener = ListenTcp(HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<SocketAddress> addr = LocalAddress(*listener);
  ::close(*listener);
  ASSERT_TRUE(addr.ok());

  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  ASSERT_GE(client.get(), 0);
  const int rc = ::connect(client.get(), reinterpret_cast<const sockaddr*>(&addr->storage), addr->length);
  ASSERT_NE(rc, 0) << "something else took the port";
  if (errno == ECONNREFUSED) {  // refused at once: nothing is left pending
    EXPECT_EQ(PendingSocketError(client.get()), 0);
    return;
  }
  ASSERT_EQ(errno, EINPROGRESS) << std::strerror(errno);
  pollfd p{client.get(), POLLOUT, 0};
  ASSERT_EQ(::poll(&p, 1, kWaitMs), 1);
  EXPECT_EQ(PendingSocketError(client.get()), ECONNREFUSED);
  EXPECT_EQ(PendingSocketError(client.get()), 0);  // reading SO_ERROR clears it
}

TEST(SocketHelpersTest, CloseFdKeepsErrno) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  errno = EAGAIN;
  CloseFd(fd);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);  // really closed
  errno = ENOTCONN;
  CloseFd(-1);  // fails with EBADF internally
  EXPECT_EQ(errno, ENOTCONN);
}

}  // namespace
}  // namespace percore
