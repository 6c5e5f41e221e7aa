// HttpParser on the requests the benchmarks send: wrk's plaintext GET, a browser-sized request,
// and 16 pipelined GETs parsed off one buffer.
//   bazel run --config=opt //tests/bench:http_parser_bench -- --benchmark_out=/tmp/http_parser.json

#include <string>
#include <string_view>

#include "benchmark/benchmark.h"
#include "services/http/http_parser.h"

namespace percore {
namespace {

constexpr std::string_view kPlaintext = "GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

constexpr std::string_view kBrowser =
    "GET /json?lang=en&page=2 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://www.example.com/index.html\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; consent=yes\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "\r\n";

void ParseOne(benchmark::State& state, std::string_view request) {
  HttpParser parser;
  for (auto _ : state) {
    if (parser.Parse(request) != HttpParser::Result::kComplete) state.SkipWithError("not complete");
    benchmark::DoNotOptimize(parser.request().path.data());
    parser.Reset();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * request.size()));
  state.SetItemsProcessed(state.iterations());
}

void BM_HttpParsePlaintext(benchmark::State& state) { ParseOne(state, kPlaintext); }
BENCHMARK(BM_HttpParsePlaintext);

void BM_HttpParseBrowserRequest(benchmark::State& state) { ParseOne(state, kBrowser); }
BENCHMARK(BM_HttpParseBrowserRequest);

void BM_HttpParsePipelined16(benchmark::State& state) {
  std::string input;
  for (int i = 0; i < 16; ++i) input.append(kPlaintext);
  HttpParser parser;
  for (auto _ : state) {
    std::string_view rest = input;
    while (!rest.empty()) {
      if (parser.Parse(rest) != HttpParser::Result::kComplete) {
        state.SkipWithError("not complete");
        break;
      }
      rest.remove_prefix(parser.consumed());
      parser.Reset();
    }
  }
  state.SetItemsProcessed(state.iterations() * 16);
}
BENCHMARK(BM_HttpParsePipelined16);

// The request arriving in two reads split mid-header: the second call must not rescan.
void BM_HttpParseSplitRequest(benchmark::State& state) {
  HttpParser parser;
  const std::string_view first = kBrowser.substr(0, kBrowser.size() / 2);
  for (auto _ : state) {
    if (parser.Parse(first) != HttpParser::Result::kNeedMore) state.SkipWithError("complete too early");
    if (parser.Parse(kBrowser) != HttpParser::Result::kComplete) state.SkipWithError("not complete");
    parser.Reset();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HttpParseSplitRequest);

}  // namespace
}  // namespace percore
