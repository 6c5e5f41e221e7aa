// MemcacheParser on the scenario-2 workload: "get" of a 32-byte key, "set" of a 100-byte value,
// and 16 pipelined gets.
//   bazel run --config=opt //tests/bench:memcache_parser_bench -- --benchmark_out=/tmp/memcache_parser.json

#include <string>
#include <string_view>

#include "benchmark/benchmark.h"
#include "services/memcache/memcache_parser.h"

namespace percore::memcache {
namespace {

const std::string kKey = "k0000000000000000000000000001234";  // 32 bytes
const std::string kGet = "get " + kKey + "\r\n";
const std::string kSet = "set " + kKey + " 0 0 100\r\n" + std::string(100, 'v') + "\r\n";

void ParseOne(benchmark::State& state, const std::string& request) {
  MemcacheParser parser;
  Command cmd;
  size_t consumed = 0;
  for (auto _ : state) {
    if (parser.Parse(request, &cmd, &consumed) != ParseStatus::kCommand) state.SkipWithError("no command");
    benchmark::DoNotOptimize(cmd.key.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_MemcacheParseGet(benchmark::State& state) { ParseOne(state, kGet); }
BENCHMARK(BM_MemcacheParseGet);

void BM_MemcacheParseSet(benchmark::State& state) { ParseOne(state, kSet); }
BENCHMARK(BM_MemcacheParseSet);

void BM_MemcacheParsePipelinedGets16(benchmark::State& state) {
  std::string input;
  for (int i = 0; i < 16; ++i) input += kGet;
  MemcacheParser parser;
  Command cmd;
  for (auto _ : state) {
    std::string_view rest = input;
    size_t consumed = 0;
    while (!rest.empty() && parser.Parse(rest, &cmd, &consumed) == ParseStatus::kCommand) {
      rest.remove_prefix(consumed);
    }
  }
  state.SetItemsProcessed(state.iterations() * 16);
}
BENCHMARK(BM_MemcacheParsePipelinedGets16);

}  // namespace
}  // namespace percore::memcache
