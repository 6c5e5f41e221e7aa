#include "tests/services/memcache/memcache_server_fixture.h"

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "reactor/connection.h"
#include "reactor/sharded.h"
#include "services/memcache/item.h"
#include "services/memcache/memcache_shard.h"
#include "tests/testing/test_backend.h"
#include "tests/testing/server_probe.h"

namespace percore::test {

MemcacheServerTest::~MemcacheServerTest() { StopServer(); }

void MemcacheServerTest::StartServer(MemcacheOptions options, int loops,
                                     ConnectionOptions connection) {
  options.clock = [this] { return now_.load(std::memory_order_relaxed); };
  service_ = std::make_shared<MemcacheService>(std::move(options));
  ServerOptions server_options;
  server_options.loops = loops;
  server_options.backend = test::TestBackend();
  server_options.connection = connection;
  server_ = std::make_unique<Server>(server_options);
  ASSERT_TRUE(server_->AddService(service_).ok());
  absl::StatusOr<ListenerInfo> info = server_->Listen("memcache", {"127.0.0.1", 0});
  ASSERT_TRUE(info.ok()) << info.status();
  port_ = info->bound.port();
  ASSERT_TRUE(server_->Start().ok());
  // Tests look loops' connections up (LoopOf), which needs every loop running.
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (int i = 0; i < server_->loop_count(); ++i) {
          if (!server_->loop(i).running()) return false;
        }
        return true;
      },
      deadline()));
}

void MemcacheServerTest::StopServer() {
  if (server_ != nullptr) server_->Stop(absl::Seconds(2));
}

ScopedFd MemcacheServerTest::Connect() {
  absl::StatusOr<ScopedFd> fd = ConnectToLoopback(port_, deadline());
  EXPECT_TRUE(fd.ok()) << fd.status();
  return fd.ok() ? std::move(*fd) : ScopedFd();
}

std::string MemcacheServerTest::Exchange(int fd, std::string_view request, size_t reply_size) {
  const absl::Status written = WriteAll(fd, request, deadline());
  EXPECT_TRUE(written.ok()) << written;
  if (reply_size == 0) return "";
  absl::StatusOr<std::string> reply = ReadExactly(fd, reply_size, deadline());
  EXPECT_TRUE(reply.ok()) << reply.status();
  return reply.ok() ? *reply : "<" + std::string(reply.status().message()) + ">";
}

std::string MemcacheServerTest::ExchangeUntil(int fd, std::string_view request,
                                              std::string_view terminator) {
  const absl::Status written = WriteAll(fd, request, deadline());
  EXPECT_TRUE(written.ok()) << written;
  std::string reply;
  const Deadline until = deadline();
  while (reply.size() < terminator.size() ||
         reply.compare(reply.size() - terminator.size(), terminator.size(), terminator) != 0) {
    if (const absl::Status ready = WaitReadable(fd, until); !ready.ok()) {
      ADD_FAILURE() << "no complete reply (" << ready << "); got: " << reply;
      return reply;
    }
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n == 0) {
      ADD_FAILURE() << "EOF; got: " << reply;
      return reply;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      ADD_FAILURE() << absl::ErrnoToStatus(errno, "recv") << "; got: " << reply;
      return reply;
    }
    reply.append(chunk, static_cast<size_t>(n));
  }
  return reply;
}

void MemcacheServerTest::Expect(int fd, std::string_view request, std::string_view reply) {
  const std::string probe = "VERSION " + service_->options().version + "\r\n";
  const std::string got = Exchange(fd, std::string(request) + "version\r\n", reply.size() + probe.size());
  EXPECT_EQ(got, std::string(reply) + probe) << "request: " << request;
}

int64_t MemcacheServerTest::Stat(int fd, std::string_view name) {
  const std::string stats = ExchangeUntil(fd, "stats\r\n", "END\r\n");
  const std::string needle = absl::StrCat("STAT ", std::string(name), " ");
  const size_t at = stats.find(needle);
  if (at == std::string::npos) return -1;
  return std::strtoll(stats.c_str() + at + needle.size(), nullptr, 10);
}

std::string MemcacheServerTest::KeyOnShard(size_t shard, std::string_view prefix) {
  for (int i = 0;; ++i) {
    std::string key = absl::StrCat(std::string(prefix), i);
    if (static_cast<size_t>(service_->shards().OwnerOf(key)) == shard) return key;
  }
}

int MemcacheServerTest::LoopOf(int fd) {
  const absl::StatusOr<uint16_t> port = LocalPort(fd);
  if (!port.ok()) return -1;
  int loop = -1;
  // The distributor hands the connection over asynchronously: wait until a loop has it.
  WaitUntil(
      [&] {
        const std::map<uint16_t, int> loops = LoopByPeerPort(*server_, deadline());
        const auto it = loops.find(*port);
        if (it != loops.end()) loop = it->second;
        return loop >= 0;
      },
      deadline());
  return loop;
}

ScopedFd MemcacheServerTest::ConnectOnLoop(int loop) {
  for (int attempt = 0; attempt < 2 * server_->loop_count(); ++attempt) {
    ScopedFd fd = Connect();
    if (!fd.valid()) break;
    if (LoopOf(fd.get()) == loop) return fd;
  }
  ADD_FAILURE() << "no connection landed on loop " << loop;
  return ScopedFd();
}

std::vector<std::string> MemcacheServerTest::KeysOwnedByLoop(int loop, size_t n,
                                                             std::string_view prefix) {
  // A loop owns the shard of its own index.
  const ShardId owner = server_->loop(loop).index();
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < n; ++i) {
    std::string key = absl::StrCat(std::string(prefix), i);
    if (service_->shards().OwnerOf(key) == owner) keys.push_back(std::move(key));
  }
  return keys;
}

size_t MemcacheServerTest::QueuedOutput(int fd, int loop) {
  const absl::StatusOr<uint16_t> port = LocalPort(fd);
  if (!port.ok()) return SIZE_MAX;
  EventLoop& event_loop = server_->loop(loop);
  auto queued = std::make_shared<std::atomic<size_t>>(SIZE_MAX);
  const bool ran = RunOnLoop(
      event_loop,
      [&event_loop, queued, port = *port] {
        event_loop.ForEachConnection([&](Connection& c) {
          if (c.peer().port() == port) queued->store(c.queued_output());
        });
      },
      deadline());
  return ran ? queued->load() : SIZE_MAX;
}

std::optional<ConnectionState> MemcacheServerTest::StateOf(int fd, int loop) {
  const absl::StatusOr<uint16_t> port = LocalPort(fd);
  if (!port.ok()) return std::nullopt;
  EventLoop& event_loop = server_->loop(loop);
  auto state = std::make_shared<std::optional<ConnectionState>>();
  const bool ran = RunOnLoop(
      event_loop,
      [&event_loop, state, port = *port] {
        event_loop.ForEachConnection([&](Connection& c) {
          if (c.peer().port() == port) *state = c.state();
        });
      },
      deadline());
  return ran ? *state : std::nullopt;
}

std::vector<std::string> MemcacheServerTest::SharedItems() {
  Sharded<memcache::Shard>& shards = service_->shards();
  std::vector<std::string> shared;
  for (ShardId s = 0; s < shards.count(); ++s) {
    auto found = std::make_shared<std::vector<std::string>>();
    const bool ran = RunOnLoop(
        shards.owner_loop(s),
        [&shards, found] {
          shards.local().store.ForEachByRecency([&](const memcache::Item& item) {
            const uint32_t refs = item.refs.load(std::memory_order_acquire);
            if (refs > 1) found->push_back(absl::StrCat(std::string(item.key()), ":", refs));
          });
        },
        deadline());
    if (!ran) {
      shared.push_back(absl::StrCat("shard ", s, " did not answer"));
      continue;
    }
    shared.insert(shared.end(), found->begin(), found->end());
  }
  return shared;
}

std::optional<MemcacheServerTest::RequestStateCounts> MemcacheServerTest::RequestStates(int loop) {
  Sharded<memcache::Shard>& shards = service_->shards();
  auto counts = std::make_shared<RequestStateCounts>();
  const bool ran = RunOnLoop(
      shards.owner_loop(loop),
      [&shards, counts] {
        const FreeList<memcache::RequestState>& states = shards.local().request_states;
        *counts = {states.made(), states.free_count()};
      },
      deadline());
  if (!ran) return std::nullopt;
  return *counts;
}

}  // namespace percore::test
