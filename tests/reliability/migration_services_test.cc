// Live migration under load for every built-in service, on the back end PERCORE_TEST_BACKEND
// names (each back end has its own variant): clients pipeline requests whose replies they can
// check byte for byte (HTTP POSTs echoed by a route, memcache and RESP sets and gets of random
// values), while the test moves their connections between loops thousands of times. Nothing
// may be lost, duplicated or reordered; every connection is still served at the end; and the
// per-loop connection counts of the services add up.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/migration.h"
#include "reactor/server.h"
#include "services/echo/echo_service.h"
#include "services/http/http_service.h"
#include "services/memcache/memcache_service.h"
#include "services/resp/resp_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/random_bytes.h"
#include "tests/testing/server_probe.h"
#include "tests/testing/test_backend.h"

namespace percore {
namespace {

using test::Deadline;
using test::ScopedFd;

#ifdef PERCORE_TEST_SANITIZER
constexpr int kForcedMigrations = 1000;
#else
constexpr int kForcedMigrations = 10000;
#endif
constexpr int kLoops = 3;
constexpr int kClients = 4;

std::string Printable(std::mt19937_64& rng, size_t n) {
  std::string out(n, 'a');
  for (char& c : out) c = static_cast<char>('a' + rng() % 26);
  return out;
}

// One service's traffic: a burst of pipelined requests and a check of the replies, read from
// the socket as they come.
class Protocol {
 public:
  virtual ~Protocol() = default;
  virtual std::shared_ptr<Service> MakeService() = 0;
  // Appends a burst of requests to `out`; the replies expected, in order, go to `expect`.
  virtual void Burst(std::mt19937_64& rng, int client, std::string& out, std::vector<std::string>& expect) = 0;
  // Reads one reply from `fd` (with `pending` holding bytes read ahead) and compares it.
  virtual bool CheckReply(int fd, std::string& pending, const std::string& expected) {
    return ReadMore(fd, pending, expected.size()) && TakeFront(pending, expected.size()) == expected;
  }

 protected:
  static bool ReadMore(int fd, std::string& pending, size_t at_least) {
    while (pending.size() < at_least) {
      char chunk[65536];
      const Deadline deadline = Deadline::In(absl::Seconds(20));
      if (!test::WaitReadable(fd, deadline).ok()) return false;
      const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) return false;
      pending.append(chunk, static_cast<size_t>(n));
    }
    return true;
  }
  static std::string TakeFront(std::string& pending, size_t n) {
    std::string front = pending.substr(0, n);
    pending.erase(0, n);
    return front;
  }
};

class EchoProtocol final : public Protocol {
 public:
  std::shared_ptr<Service> MakeService() override { return NewEchoService(); }
  void Burst(std::mt19937_64& rng, int, std::string& out, std::vector<std::string>& expect) override {
    const std::string bytes = test::RandomBytes(rng, 1 + rng() % 8192);
    out += bytes;
    expect.push_back(bytes);
  }
};

// POST /echo with a random body; the reply's body must be the request's (its headers carry a
// date, so only the status line and the body are compared).
class HttpProtocol final : public Protocol {
 public:
  std::shared_ptr<Service> MakeService() override {
    HttpOptions options;
    options.routes.Post("/echo", [](const HttpRequest& request, HttpResponse& response) {
      response.set_body(request.body);
    });
    return NewHttpService(std::move(options));
  }
  void Burst(std::mt19937_64& rng, int, std::string& out, std::vector<std::string>& expect) override {
    const int requests = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < requests; ++i) {
      const std::string body = Printable(rng, rng() % 3000);
      absl::StrAppend(&out, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
      expect.push_back(body);
    }
  }
  bool CheckReply(int fd, std::string& pending, const std::string& body) override {
    size_t end;
    while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadMore(fd, pending, pending.size() + 1)) return false;
    }
    const std::string head = TakeFront(pending, end + 4);
    if (head.rfind("HTTP/1.1 200 ", 0) != 0) return false;
    const size_t at = head.find("Content-Length: ");
    size_t length = 0;
    if (at == std::string::npos ||
        !absl::SimpleAtoi(head.substr(at + 16, head.find("\r\n", at) - at - 16), &length)) {
      return false;
    }
    return ReadMore(fd, pending, length) && TakeFront(pending, length) == body;
  }
};

// set then get of one of the client's own keys, with a new random value each time.
class MemcacheProtocol final : public Protocol {
 public:
  std::shared_ptr<Service> MakeService() override { return NewMemcacheService(); }
  void Burst(std::mt19937_64& rng, int client, std::string& out, std::vector<std::string>& expect) override {
    const int pairs = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < pairs; ++i) {
      const std::string key = absl::StrCat("c", client, "k", rng() % 50);
      const std::string value = Printable(rng, 1 + rng() % 2000);
      absl::StrAppend(&out, "set ", key, " 0 0 ", value.size(), "\r\n", value, "\r\nget ", key, "\r\n");
      expect.push_back("STORED\r\n");
      expect.push_back(absl::StrCat("VALUE ", key, " 0 ", value.size(), "\r\n", value, "\r\nEND\r\n"));
    }
  }
};

class RespProtocol final : public Protocol {
 public:
  std::shared_ptr<Service> MakeService() override { return NewRespService(); }
  void Burst(std::mt19937_64& rng, int client, std::string& out, std::vector<std::string>& expect) override {
    const int pairs = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < pairs; ++i) {
      const std::string key = absl::StrCat("c", client, "k", rng() % 50);
      const std::string value = test::RandomBytes(rng, 1 + rng() % 2000);
      absl::StrAppend(&out, "*3\r\n$3\r\nSET\r\n$", key.size(), "\r\n", key, "\r\n$", value.size(), "\r\n", value,
                      "\r\n*2\r\n$3\r\nGET\r\n$", key.size(), "\r\n", key, "\r\n");
      expect.push_back("+OK\r\n");
      expect.push_back(absl::StrCat("$", value.size(), "\r\n", value, "\r\n"));
    }
  }
};

std::unique_ptr<Protocol> ProtocolFor(const std::string& name) {
  if (name == "http") return std::make_unique<HttpProtocol>();
  if (name == "memcache") return std::make_unique<MemcacheProtocol>();
  if (name == "resp") return std::make_unique<RespProtocol>();
  return std::make_unique<EchoProtocol>();
}

class MigrationServicesTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MigrationServicesTest, NothingIsLostUnderForcedMigrations) {
  std::unique_ptr<Protocol> protocol = ProtocolFor(GetParam());
  ServerOptions options;
  options.loops = kLoops;
  options.backend = test::TestBackend();
  Server server(options);
  std::shared_ptr<Service> service = protocol->MakeService();
  ASSERT_TRUE(server.AddService(service).ok());
  absl::StatusOr<ListenerInfo> listener = server.Listen(GetParam(), HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(server.Start().ok());
  const uint16_t port = listener->bound.port();

  std::vector<ScopedFd> fds;
  for (int c = 0; c < kClients; ++c) {
    absl::StatusOr<ScopedFd> fd = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(10)));
    ASSERT_TRUE(fd.ok()) << fd.status();
    fds.push_back(std::move(*fd));
  }
  // One exchange each, so that every connection is open on the server before its id is read.
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<uint64_t> replies{0};
  std::vector<std::atomic<bool>> ready(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(1000 + c);
      std::string pending;
      bool first = true;
      while (first || !stop.load()) {
        std::string out;
        std::vector<std::string> expect;
        protocol->Burst(rng, c, out, expect);
        if (!test::WriteAll(fds[c].get(), out, Deadline::In(absl::Seconds(20))).ok()) {
          failures.fetch_add(1);
          return;
        }
        for (const std::string& e : expect) {
          if (!protocol->CheckReply(fds[c].get(), pending, e)) {
            ADD_FAILURE() << GetParam() << " client " << c << ": a reply was lost, altered or out of order";
            failures.fetch_add(1);
            return;
          }
          replies.fetch_add(1);
        }
        if (first) ready[c].store(true);
        first = false;
      }
    });
  }
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        for (auto& r : ready) {
          if (!r.load()) return false;
        }
        return true;
      },
      Deadline::In(absl::Seconds(20))));
  std::vector<uint64_t> ids;
  {
    const std::map<uint16_t, uint64_t> by_port = test::IdByPeerPort(server, Deadline::In(absl::Seconds(10)));
    for (const ScopedFd& fd : fds) ids.push_back(by_port.at(test::LocalPort(fd.get()).value_or(0)));
  }

  int moved = 0;
  int waited_out = 0;
  std::mt19937_64 rng(5);
  const Deadline deadline = Deadline::In(absl::Seconds(300));
  while (moved < kForcedMigrations && failures.load() == 0 && !deadline.expired()) {
    const size_t c = rng() % kClients;
    const int target = static_cast<int>(((ids[c] >> 48) + 1 + rng() % (kLoops - 1)) % kLoops);
    const MigrationResult r = server.MigrateConnection(ids[c], target, absl::Milliseconds(200));
    if (r.status == MigrationStatus::kMoved) {
      ids[c] = r.new_id;
      ++moved;
    } else {
      // A request under way (a reply owed, a call to another loop's shard) that outlasted the wait.
      ASSERT_TRUE(r.status == MigrationStatus::kNotAtBoundary || r.status == MigrationStatus::kPaused)
          << MigrationStatusName(r.status) << ": " << r.detail;
      ++waited_out;
    }
  }
  stop.store(true);
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(moved, kForcedMigrations) << "not at a boundary within the wait: " << waited_out;
  EXPECT_GT(replies.load(), 0u);
  EXPECT_EQ(server.Totals().conns_active, kClients);
  EXPECT_EQ(server.Totals().closed_total(), 0u);

  // Every connection still answers, wherever it ended up; then all close, counted once each.
  for (int c = 0; c < kClients; ++c) {
    std::mt19937_64 last(77 + c);
    std::string out;
    std::vector<std::string> expect;
    protocol->Burst(last, c, out, expect);
    ASSERT_TRUE(test::WriteAll(fds[c].get(), out, Deadline::In(absl::Seconds(20))).ok());
    std::string pending;
    for (const std::string& e : expect) ASSERT_TRUE(protocol->CheckReply(fds[c].get(), pending, e));
  }
  fds.clear();
  ASSERT_TRUE(test::WaitUntil([&] { return server.Totals().closed_total() == kClients; },
                              Deadline::In(absl::Seconds(20))));
  server.Stop();
}

INSTANTIATE_TEST_SUITE_P(Services, MigrationServicesTest, ::testing::Values("echo", "http", "memcache", "resp"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace percore
