// RespParser on scenario 3's requests: multibulk GET and SET (32-byte key, 100-byte value),
// the inline form, and 16 pipelined GETs.
//   bazel run --config=opt //tests/bench:resp_parser_bench -- --benchmark_out=/tmp/resp_parser.json

#include <string>
#include <string_view>

#include "benchmark/benchmark.h"
#include "services/resp/resp_options.h"
#include "services/resp/resp_parser.h"

namespace percore {
namespace {

const std::string kKey = "k0000000000000000000000000001234";  // 32 bytes
const std::string kGet = "*2\r\n$3\r\nGET\r\n$32\r\n" + kKey + "\r\n";
const std::string kSet = "*3\r\n$3\r\nSET\r\n$32\r\n" + kKey + "\r\n$100\r\n" + std::string(100, 'v') + "\r\n";
const std::string kInlineGet = "GET " + kKey + "\r\n";

void ParseOne(benchmark::State& state, const std::string& request) {
  RespOptions options;
  RespParser parser(options);
  for (auto _ : state) {
    if (parser.Parse(request) != RespParser::Result::kCommand) state.SkipWithError("no command");
    benchmark::DoNotOptimize(parser.args().data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RespParseGet(benchmark::State& state) { ParseOne(state, kGet); }
BENCHMARK(BM_RespParseGet);

void BM_RespParseSet(benchmark::State& state) { ParseOne(state, kSet); }
BENCHMARK(BM_RespParseSet);

void BM_RespParseInlineGet(benchmark::State& state) { ParseOne(state, kInlineGet); }
BENCHMARK(BM_RespParseInlineGet);

void BM_RespParsePipelinedGets16(benchmark::State& state) {
  std::string input;
  for (int i = 0; i < 16; ++i) input += kGet;
  RespOptions options;
  RespParser parser(options);
  for (auto _ : state) {
    std::string_view rest = input;
    while (!rest.empty() && parser.Parse(rest) == RespParser::Result::kCommand) rest.remove_prefix(parser.consumed());
  }
  state.SetItemsProcessed(state.iterations() * 16);
}
BENCHMARK(BM_RespParsePipelinedGets16);

}  // namespace
}  // namespace percore
