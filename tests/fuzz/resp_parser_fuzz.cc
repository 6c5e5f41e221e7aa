// Fuzzes the RESP2 request parser (multibulk and inline). Input: one byte choosing the read
// size, then the bytes a client sends (any number of pipelined requests).
//
// The bytes are parsed twice: whole, and as a connection would see them arrive in reads of the
// chosen size (each Parse call gets a fresh copy of the unconsumed input, so ASan catches a
// view kept across calls). Checked with abort(): consumed() stays inside the input, an
// argument that is a view lies inside the request's bytes, and both runs produce the same
// sequence of requests and errors at the same offsets.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "services/resp/resp_options.h"
#include "services/resp/resp_parser.h"
#include "tests/fuzz/whole_vs_split.h"

namespace {

using percore::RespParser;

// Small limits so that every bound is reachable from short inputs.
percore::RespOptions FuzzOptions() {
  percore::RespOptions options;
  options.max_bulk_bytes = 64;
  options.max_inline_bytes = 128;
  options.max_args = 16;
  options.max_request_bytes = 512;
  return options;
}

[[noreturn]] void Fail(const char* what) { percore::fuzz::Fail("resp_parser_fuzz", what); }

// Feeds `bytes` in reads of `step` bytes (step > bytes.size(): all at once).
std::vector<std::string> Run(std::string_view bytes, size_t step) {
  std::vector<std::string> results;
  RespParser parser(FuzzOptions());
  size_t pos = 0;
  size_t end = std::min(step, bytes.size());
  while (true) {
    if (pos == end) {  // everything received so far is consumed: wait for a read
      if (end == bytes.size()) break;
      end = std::min(end + step, bytes.size());
    }
    const std::string copy(bytes.substr(pos, end - pos));
    const RespParser::Result result = parser.Parse(copy);
    if (result == RespParser::Result::kIncomplete) {
      if (end == bytes.size()) break;
      end = std::min(end + step, bytes.size());
      continue;
    }
    if (result == RespParser::Result::kError) {
      if (parser.error().empty()) Fail("an error without a message");
      results.push_back("error at " + std::to_string(pos) + ": " + std::string(parser.error()));
      break;
    }
    if (parser.consumed() == 0 || parser.consumed() > copy.size()) Fail("consumed() outside the input");
    std::string out = "command at " + std::to_string(pos) + " len " + std::to_string(parser.consumed());
    for (std::string_view arg : parser.args()) {
      // Quoted inline arguments live in the parser's scratch string; all others are views.
      const bool in_input = arg.data() >= copy.data() && arg.data() <= copy.data() + copy.size();
      if (in_input && !arg.empty() && arg.data() + arg.size() > copy.data() + parser.consumed()) {
        Fail("an argument runs past the request");
      }
      out += " [" + std::string(arg) + "]";
    }
    results.push_back(std::move(out));
    pos += parser.consumed();
  }
  return results;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto whole = [](std::string_view bytes) { return Run(bytes, bytes.size() + 1); };
  return percore::fuzz::CheckWholeEqualsSplit("resp_parser_fuzz", data, size, whole, Run);
}
