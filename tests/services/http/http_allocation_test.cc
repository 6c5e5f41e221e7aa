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
#include "tests/testing/http_requests.h"

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
// `now` stands for the loop's time, held still so that every Date comes from the cache: the
// once-a-second reformatting (which allocates its text) is not part of the request path.
int Serve(const Router& router, HttpParser& parser, HttpResponse& response, Buffer& input, Buffer& output,
          MonoTime now) {
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
    framing.date = CachedHttpDate(now);
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
  const MonoTime now = MonoTime::Now();
  const std::string batch = test::HttpGet("/plaintext", "User-Agent: bench\r\nAccept: */*\r\n") +
                            test::HttpGet("/json", "Connection: keep-alive\r\n") +
                            test::HttpRequestText("HEAD", "/plaintext") +
                            test::HttpPost("/plaintext", "body") + test::HttpGet("/missing");
  // Warm up: buffers, the parser's header vector and the response strings reach working size.
  for (int i = 0; i < 10; ++i) {
    input.Append(batch);
    ASSERT_EQ(Serve(options.routes, parser, response, input, output, now), 5);
    output.Consume(output.size());
  }
  const long before = allocations.load();
  int served = 0;
  for (int i = 0; i < 1000; ++i) {
    input.Append(batch);
    served += Serve(options.routes, parser, response, input, output, now);
    output.Consume(output.size());
  }
  const long during = allocations.load() - before;
  EXPECT_EQ(served, 5000);
  EXPECT_EQ(during, 0) << "allocations while serving 5000 requests";
}

}  // namespace
}  // namespace percore
