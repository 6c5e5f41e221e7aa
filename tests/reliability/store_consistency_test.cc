// Many connections on different loops set and get the same keys at once. Every value carries its
// own checksum, so a reply that mixed two writes, lost bytes or came from a half-applied SET is
// caught: each GET returns either nothing (before the first SET) or a whole value some writer
// wrote. Run for the RESP store and the memcache store, both sharded across loops.

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "reactor/server.h"
#include "services/memcache/memcache_service.h"
#include "services/resp/resp_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

using test::Deadline;

#ifdef PERCORE_TEST_SANITIZER
constexpr int kOpsPerClient = 150;
#else
constexpr int kOpsPerClient = 600;
#endif
constexpr int kClients = 16;
constexpr int kKeys = 50;

uint32_t Fnv1a(std::string_view bytes) {
  uint32_t h = 2166136261u;
  for (unsigned char c : bytes) h = (h ^ c) * 16777619u;
  return h;
}

// "<writer>:<seq>:<filler>#<checksum of everything before '#'>"
std::string MakeValue(int writer, int seq, std::mt19937& rng) {
  std::string body = absl::StrCat(writer, ":", seq, ":");
  body.append(std::uniform_int_distribution<size_t>(1, 4096)(rng), static_cast<char>('a' + seq % 26));
  return absl::StrCat(body, "#", Fnv1a(body));
}

bool ValueIsWhole(std::string_view value) {
  const size_t hash = value.rfind('#');
  if (hash == std::string_view::npos) return false;
  uint32_t sum = 0;
  const std::string_view digits = value.substr(hash + 1);
  if (!absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &sum)) return false;
  return sum == Fnv1a(value.substr(0, hash));
}

// A blocking line/byte reader over a test socket, with one deadline for the whole test.
class Reader {
 public:
  Reader(int fd, Deadline deadline) : fd_(fd), deadline_(deadline) {}
  bool Line(std::string* line) {
    for (;;) {
      const size_t crlf = buffered_.find("\r\n");
      if (crlf != std::string::npos) {
        *line = buffered_.substr(0, crlf);
        buffered_.erase(0, crlf + 2);
        return true;
      }
      if (!Fill()) return false;
    }
  }
  bool Bytes(size_t n, std::string* out) {
    while (buffered_.size() < n) {
      if (!Fill()) return false;
    }
    *out = buffered_.substr(0, n);
    buffered_.erase(0, n);
    return true;
  }

 private:
  bool Fill() {
    if (!test::WaitReadable(fd_, deadline_).ok()) return false;
    char chunk[8192];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffered_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  int fd_;
  Deadline deadline_;
  std::string buffered_;
};

struct Tally {
  std::atomic<int> torn{0};       // a value whose checksum failed
  std::atomic<int> errors{0};     // a protocol or socket failure
  std::atomic<int> hits{0};
  std::atomic<int> sets{0};
};

// One protocol's SET and GET over a connection. GET returns false on failure; *found says
// whether the key held a value.
class StoreClient {
 public:
  virtual ~StoreClient() = default;
  virtual bool Set(int fd, Reader& in, const std::string& key, const std::string& value, Deadline d) = 0;
  virtual bool Get(int fd, Reader& in, const std::string& key, std::string* value, bool* found, Deadline d) = 0;
};

class RespClient final : public StoreClient {
 public:
  bool Set(int fd, Reader& in, const std::string& key, const std::string& value, Deadline d) override {
    const std::string request = absl::StrCat("*3\r\n$3\r\nSET\r\n$", key.size(), "\r\n", key, "\r\n$",
                                             value.size(), "\r\n", value, "\r\n");
    std::string line;
    return test::WriteAll(fd, request, d).ok() && in.Line(&line) && line == "+OK";
  }
  bool Get(int fd, Reader& in, const std::string& key, std::string* value, bool* found, Deadline d) override {
    const std::string request = absl::StrCat("*2\r\n$3\r\nGET\r\n$", key.size(), "\r\n", key, "\r\n");
    std::string line;
    if (!test::WriteAll(fd, request, d).ok() || !in.Line(&line) || line.empty() || line[0] != '$') return false;
    if (line == "$-1") {
      *found = false;
      return true;
    }
    size_t len = 0;
    if (!absl::SimpleAtoi(absl::string_view(line).substr(1), &len)) return false;
    std::string crlf;
    *found = true;
    return in.Bytes(len, value) && in.Bytes(2, &crlf) && crlf == "\r\n";
  }
};

class MemcacheClient final : public StoreClient {
 public:
  bool Set(int fd, Reader& in, const std::string& key, const std::string& value, Deadline d) override {
    const std::string request = absl::StrCat("set ", key, " 0 0 ", value.size(), "\r\n", value, "\r\n");
    std::string line;
    return test::WriteAll(fd, request, d).ok() && in.Line(&line) && line == "STORED";
  }
  bool Get(int fd, Reader& in, const std::string& key, std::string* value, bool* found, Deadline d) override {
    std::string line;
    if (!test::WriteAll(fd, absl::StrCat("get ", key, "\r\n"), d).ok() || !in.Line(&line)) return false;
    if (line == "END") {
      *found = false;
      return true;
    }
    // VALUE <key> <flags> <bytes>
    const size_t last_space = line.rfind(' ');
    size_t len = 0;
    if (line.rfind("VALUE " + key + " ", 0) != 0 ||
        !absl::SimpleAtoi(absl::string_view(line).substr(last_space + 1), &len)) {
      return false;
    }
    std::string crlf;
    *found = true;
    return in.Bytes(len, value) && in.Bytes(2, &crlf) && crlf == "\r\n" && in.Line(&line) && line == "END";
  }
};

void RunClients(uint16_t port, StoreClient& client, Tally& tally) {
  const Deadline deadline = Deadline::In(absl::Seconds(50));
  std::vector<std::thread> threads;
  for (int writer = 0; writer < kClients; ++writer) {
    threads.emplace_back([&, writer] {
      auto fd = test::ConnectToLoopback(port, deadline);
      if (!fd.ok()) {
        tally.errors++;
        return;
      }
      Reader in(fd->get(), deadline);
      std::mt19937 rng(writer + 1);
      for (int op = 0; op < kOpsPerClient; ++op) {
        const std::string key = absl::StrCat("key", rng() % kKeys);
        if (rng() % 2 == 0) {
          if (!client.Set(fd->get(), in, key, MakeValue(writer, op, rng), deadline)) {
            tally.errors++;
            return;
          }
          tally.sets++;
        } else {
          std::string value;
          bool found = false;
          if (!client.Get(fd->get(), in, key, &value, &found, deadline)) {
            tally.errors++;
            return;
          }
          if (found) {
            tally.hits++;
            if (!ValueIsWhole(value)) tally.torn++;
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

void CheckStore(std::shared_ptr<Service> service, StoreClient& client) {
  ServerOptions options;
  options.loops = 2;
  Server server(options);
  ASSERT_TRUE(server.AddService(service).ok());
  auto listener = server.Listen(std::string(service->name()), {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(server.Start().ok());
  Tally tally;
  RunClients(listener->bound.port(), client, tally);
  server.Stop();
  EXPECT_EQ(tally.errors.load(), 0);
  EXPECT_EQ(tally.torn.load(), 0) << "values that were not whole writes";
  EXPECT_GT(tally.hits.load(), 0);
  EXPECT_GT(tally.sets.load(), 0);
}

TEST(StoreConsistencyTest, RespValuesAreAlwaysWholeWrites) {
  RespClient client;
  CheckStore(NewRespService(), client);
}

TEST(StoreConsistencyTest, MemcacheValuesAreAlwaysWholeWrites) {
  MemcacheClient client;
  CheckStore(NewMemcacheService(), client);
}

}  // namespace
}  // namespace percore
