// Proves the request path of the HTTP service allocates nothing once warm: parsing, routing,
// the built-in handlers and serializing run as HttpConnectionHandler::OnData runs them, with
// every heap allocation of the process counted by a replaced global operator new.

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "core/buffer.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "services/http/builtin_routes.h"
#include "services/http/http_date.h"
#include "services/http/http_parser.h"
#include "services/http/http_response.h"

namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace percore {
namespace {

// Serves every complete request in `input` like the connection handler does; returns how many.
int Serve(const Router& router, HttpParser& parser, HttpResponse& response, Buffer& input, Buffer& output) {
  int served = 0;
  while (parser.Parse(input.view()) == HttpParser::Result::kComplete) {
    const HttpRequest& request = parser.request();
    response.Reset();
    const Router::Match match = router.Find(request.method, request.path);
    if (match.handler != nullptr) {
      (*match.handler)(request, response);
    } else {
      SetErrorResponse(match.status, response);
    }
    ResponseFraming framing;
    framing.head = request.method == "HEAD";
    framing.date = CachedHttpDate(MonotonicNanos());
    AppendHttpResponse(response, framing, output);
    input.Consume(parser.consumed());
    parser.Reset();
    ++served;
  }
  return served;
}

TEST(HttpAllocationTest, SteadyStateRequestsDoNotAllocate) {
  HttpOptions options;
  AddBuiltinRoutes(options, options.routes);
  HttpParser parser;
  HttpResponse response;
  Buffer input;
  Buffer output;
  const std::string batch =
      "GET /plaintext HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
      "GET /json HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"
      "HEAD /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n"
      "POST /plaintext HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nbody"
      "GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n";
  // Warm up: buffers, the parser's header vector and the response strings reach working size.
  for (int i = 0; i < 10; ++i) {
    input.Append(batch);
    ASSERT_EQ(Serve(options.routes, parser, response, input, output), 5);
    output.Consume(output.size());
  }
  const long before = allocations.load();
  int served = 0;
  for (int i = 0; i < 1000; ++i) {
    input.Append(batch);
    served += Serve(options.routes, parser, response, input, output);
    output.Consume(output.size());
  }
  const long during = allocations.load() - before;
  EXPECT_EQ(served, 5000);
  EXPECT_EQ(during, 0) << "allocations while serving 5000 requests";
}

}  // namespace
}  // namespace percore
