#include "tests/services/memcache/memcache_server_fixture.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "services/memcache/memcache_shards.h"

namespace percore::test {

MemcacheServerTest::~MemcacheServerTest() { StopServer(); }

void MemcacheServerTest::StartServer(MemcacheOptions options, int loops) {
  options.clock = [this] { return now_.load(std::memory_order_relaxed); };
  service_ = std::make_shared<MemcacheService>(std::move(options));
  ServerOptions server_options;
  server_options.loops = loops;
  server_ = std::make_unique<Server>(server_options);
  ASSERT_TRUE(server_->AddService(service_).ok());
  absl::StatusOr<ListenerInfo> info = server_->Listen("memcache", {"127.0.0.1", 0});
  ASSERT_TRUE(info.ok()) << info.status();
  port_ = info->bound.port();
  ASSERT_TRUE(server_->Start().ok());
  // Every loop registers with the service as it starts; the first connection fixes the shard
  // set, so wait until all loops run before connecting.
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
  if (server_ != nullptr) server_->Stop(2'000'000'000);
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
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, until.PollTimeoutMs()) <= 0) {
      ADD_FAILURE() << "no complete reply; got: " << reply;
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
      ADD_FAILURE() << "recv failed; got: " << reply;
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
  memcache::ShardDirectory& directory = service_->directory();
  directory.Seal();
  for (int i = 0;; ++i) {
    std::string key = absl::StrCat(std::string(prefix), i);
    if (directory.ShardIndexFor(key) == shard) return key;
  }
}

}  // namespace percore::test
