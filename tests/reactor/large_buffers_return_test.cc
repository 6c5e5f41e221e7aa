// After a connection's input buffer grew to megabytes and was freed, the loop's heap does not
// keep those megabytes once the loop has been quiet (EventLoop::ReturnFreeMemory). glibc would:
// once a large block it had mapped on its own is freed, it serves blocks up to that size from
// the loop thread's arena, and the free top of an arena other than the main one is given back
// only above a trim threshold that rose with it, which malloc_trim does not lower. Over real
// sockets, on every back end; the heap is measured with mallinfo2 (its `arena`: the bytes of
// every arena's heaps, mapped blocks apart).

#include <malloc.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/connection.h"
#include "reactor/handler.h"
#include "reactor/server.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/test_backend.h"

namespace percore {
namespace {

using test::Deadline;
using test::WaitUntil;

#ifdef PERCORE_TEST_SANITIZER
// The sanitizers' allocators keep memory by their own rules; mallinfo2 reports glibc's.
constexpr bool kGlibcHeap = false;
#else
constexpr bool kGlibcHeap = true;
#endif

// "N\n" and then N bytes, kept in the input until all have arrived (so the input buffer grows
// to hold them), answered with "ok\n".
class UploadHandler final : public Handler {
 public:
  Action OnData(Connection& conn, Buffer& input) override {
    const std::string_view bytes = input.view();
    const size_t newline = bytes.find('\n');
    if (newline == std::string_view::npos) return Action::Continue();
    size_t length = 0;
    if (!absl::SimpleAtoi(std::string(bytes.substr(0, newline)), &length)) return Action::CloseNow(CloseReason::kProtocolError);
    if (bytes.size() - newline - 1 < length) return Action::Continue();
    input.Consume(newline + 1 + length);
    conn.Send("ok\n");
    conn.RecordRequest();
    return Action::Continue();
  }
};

class UploadService final : public Service {
 public:
  std::string_view name() const override { return "upload"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override { return std::make_unique<UploadHandler>(); }
};

// Sends an upload of `length` bytes on a new connection, waits for its answer and closes.
void Upload(uint16_t port, size_t length) {
  const Deadline deadline = Deadline::In(absl::Seconds(20));
  absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port, deadline);
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(test::WriteAll(fd->get(), absl::StrCat(length, "\n"), deadline).ok());
  // From one small chunk: the test's own thread allocates nothing large.
  const std::string chunk(64 << 10, 'u');
  for (size_t sent = 0; sent < length;) {
    const size_t n = std::min(chunk.size(), length - sent);
    ASSERT_TRUE(test::WriteAll(fd->get(), std::string_view(chunk).substr(0, n), deadline).ok());
    sent += n;
  }
  absl::StatusOr<std::string> answer = test::ReadExactly(fd->get(), 3, deadline);
  ASSERT_TRUE(answer.ok()) << answer.status();
  ASSERT_EQ(*answer, "ok\n");
}

TEST(LargeBuffersReturnTest, TheHeapGivesBackWhatGrownInputBuffersHeld) {
  Server server(ServerOptions{.loops = 1, .backend = test::TestBackend()});
  ASSERT_TRUE(server.AddService(std::make_shared<UploadService>()).ok());
  absl::StatusOr<ListenerInfo> listener = server.Listen("upload", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  const uint16_t port = listener->bound.port();
  ASSERT_TRUE(server.Start().ok());
  const LoopStats& stats = server.loop(0).stats();
  auto closed_and_trimmed = [&](uint64_t trims_before) {
    return WaitUntil([&] { return stats.conns_active.Get() == 0 && stats.memory_trims.Get() > trims_before; },
                     Deadline::In(absl::Seconds(8)));
  };

  // A first large upload: its buffers, each larger than the last, are blocks the allocator maps
  // on their own and unmaps when they are freed. Left to itself, glibc then serves blocks up to
  // 16 MiB from the loop's arena.
  ASSERT_NO_FATAL_FAILURE(Upload(port, 24 << 20));
  ASSERT_TRUE(closed_and_trimmed(0));
  const size_t heap_before = ::mallinfo2().arena;

  // A second one, a quarter of the size: its buffers, up to 8 MiB (about 16 MiB over its
  // growth), are all freed when it is answered.
  const uint64_t trims = stats.memory_trims.Get();
  ASSERT_NO_FATAL_FAILURE(Upload(port, 6 << 20));
  ASSERT_TRUE(closed_and_trimmed(trims)) << "no quiet trim after the second upload";

  const size_t heap_after = ::mallinfo2().arena;
  if (kGlibcHeap) {
    EXPECT_LT(heap_after, heap_before + (size_t{6} << 20))
        << "the heap kept " << (heap_after - std::min(heap_after, heap_before)) << " bytes after a quiet trim";
  }
  server.Stop();
}

}  // namespace
}  // namespace percore
