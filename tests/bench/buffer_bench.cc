// core::Buffer on the paths a connection takes per message: appending replies, consuming parsed
// requests, and one read or write syscall per wake-up.
//   bazel run --config=opt //tests/bench:buffer_bench -- --benchmark_out=/tmp/buffer.json

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "benchmark/benchmark.h"
#include "core/buffer.h"

namespace percore {
namespace {

// One message in, consumed at once: the steady state of a request/response connection.
void BM_BufferAppendConsume(benchmark::State& state) {
  const std::string message(static_cast<size_t>(state.range(0)), 'x');
  BufferPool pool;
  Buffer buffer;
  pool.Attach(buffer);
  for (auto _ : state) {
    buffer.Append(message);
    benchmark::DoNotOptimize(buffer.data());
    buffer.Consume(buffer.size());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_BufferAppendConsume)->Arg(16)->Arg(64)->Arg(512)->Arg(4096)->Arg(65536);

// 16 pipelined replies of 128 bytes appended, then one write takes them all.
void BM_BufferAppendPipelinedReplies(benchmark::State& state) {
  const std::string reply(128, 'r');
  BufferPool pool;
  Buffer buffer;
  pool.Attach(buffer);
  for (auto _ : state) {
    for (int i = 0; i < 16; ++i) buffer.Append(reply);
    benchmark::DoNotOptimize(buffer.data());
    buffer.Consume(buffer.size());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 16);
}
BENCHMARK(BM_BufferAppendPipelinedReplies);

// A request consumed in pieces as a parser finds message ends, the tail kept for the next read.
void BM_BufferPartialConsume(benchmark::State& state) {
  const std::string chunk(4096, 'p');
  BufferPool pool;
  Buffer buffer;
  pool.Attach(buffer);
  for (auto _ : state) {
    buffer.Append(chunk);
    while (buffer.size() >= 100) buffer.Consume(100);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 4096);
}
BENCHMARK(BM_BufferPartialConsume);

// Attach/Release through the per-loop pool: what a connection pays when it goes idle and back.
void BM_BufferPoolCycle(benchmark::State& state) {
  BufferPool pool;
  Buffer buffer;
  for (auto _ : state) {
    pool.Attach(buffer);
    benchmark::DoNotOptimize(buffer.capacity());
    pool.Release(buffer);
  }
}
BENCHMARK(BM_BufferPoolCycle);

struct SocketPair {
  SocketPair() {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) std::abort();
    const int size = 1 << 20;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  ~SocketPair() {
    close(fds[0]);
    close(fds[1]);
  }
  int fds[2];
};

// write() of `n` bytes by the peer, then ReadFromFd: the read path of one wake-up, syscalls
// included (the peer's write is in the figure too).
void BM_BufferReadFromFd(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::string bytes(n, 'i');
  SocketPair pair;
  BufferPool pool;
  Buffer buffer;
  pool.Attach(buffer);
  for (auto _ : state) {
    if (write(pair.fds[0], bytes.data(), n) != static_cast<ssize_t>(n)) state.SkipWithError("write");
    size_t got = 0;
    while (got < n) {
      const ssize_t r = buffer.ReadFromFd(pair.fds[1], 256 * 1024);
      if (r <= 0) {
        state.SkipWithError("read");
        break;
      }
      got += static_cast<size_t>(r);
    }
    buffer.Consume(buffer.size());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_BufferReadFromFd)->Arg(64)->Arg(4096)->Arg(65536);

// WriteToFd of `n` queued bytes, then the peer drains them.
void BM_BufferWriteToFd(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::string bytes(n, 'o');
  std::string sink(n, '\0');
  SocketPair pair;
  BufferPool pool;
  Buffer buffer;
  pool.Attach(buffer);
  for (auto _ : state) {
    buffer.Append(bytes);
    while (!buffer.empty()) {
      if (buffer.WriteToFd(pair.fds[0]) <= 0) {
        state.SkipWithError("write");
        break;
      }
    }
    size_t got = 0;
    while (got < n) {
      const ssize_t r = read(pair.fds[1], sink.data(), n - got);
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_BufferWriteToFd)->Arg(64)->Arg(4096)->Arg(65536);

}  // namespace
}  // namespace percore
