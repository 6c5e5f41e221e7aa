#pragma once

// A running percore::Server with the memcache service on 127.0.0.1 (two loops) and the client
// calls the memcache socket tests share.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/connection.h"
#include "reactor/server.h"
#include "services/memcache/memcache_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore::test {

inline constexpr int64_t kFixtureStartTime = 1'700'000'000;

class MemcacheServerTest : public ::testing::Test {
 protected:
  ~MemcacheServerTest() override;

  // Starts the server; the store's clock is now_ (a Unix time the test moves).
  void StartServer(MemcacheOptions options = {}, int loops = 2, ConnectionOptions connection = {});
  void StopServer();

  ScopedFd Connect();
  // Sends `request` and reads exactly `reply_size` bytes.
  std::string Exchange(int fd, std::string_view request, size_t reply_size);
  // Sends `request` and reads until the reply ends with `terminator`.
  std::string ExchangeUntil(int fd, std::string_view request, std::string_view terminator);
  // Sends `request`; the reply must be exactly `reply` (checked by a version probe after it:
  // any stray byte would show up in front of the probe's answer).
  void Expect(int fd, std::string_view request, std::string_view reply);
  // The value of "STAT <name>" in a fresh `stats` reply, or -1.
  int64_t Stat(int fd, std::string_view name);
  // A key "<prefix><n>" that the shard `shard` owns.
  std::string KeyOnShard(size_t shard, std::string_view prefix = "key");

  // The loop serving the connection whose client end is `fd`; -1 if it is not found.
  int LoopOf(int fd);
  // A new connection that the server put on loop `loop`. Round robin alternates loops, so a
  // few tries find one; those that landed elsewhere are closed again.
  ScopedFd ConnectOnLoop(int loop);
  // `n` distinct keys "<prefix><i>" on the shard that loop `loop` owns.
  std::vector<std::string> KeysOwnedByLoop(int loop, size_t n, std::string_view prefix = "key");
  // The output the server holds for the connection whose client end is `fd` (on loop `loop`),
  // read on that loop; SIZE_MAX if the connection is gone or the loop does not answer.
  size_t QueuedOutput(int fd, int loop);
  // The state of that connection, read on its loop; nullopt if it is gone or the loop does not
  // answer.
  std::optional<ConnectionState> StateOf(int fd, int loop);
  // Items that something besides their store still references, over every shard: "key:refs".
  std::vector<std::string> SharedItems();

  // The request states loop `loop` has made, and how many of them its free list holds (the
  // rest are with connections), read on that loop; nullopt if it does not answer.
  struct RequestStateCounts {
    size_t made = 0;
    size_t free = 0;
    bool operator==(const RequestStateCounts&) const = default;
  };
  std::optional<RequestStateCounts> RequestStates(int loop);

  Deadline deadline() const { return Deadline::In(absl::Seconds(20)); }

  std::unique_ptr<Server> server_;
  std::shared_ptr<MemcacheService> service_;
  uint16_t port_ = 0;
  std::atomic<int64_t> now_{kFixtureStartTime};
};

}  // namespace percore::test
