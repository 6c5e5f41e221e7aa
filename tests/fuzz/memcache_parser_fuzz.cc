// Fuzzes the memcached text protocol parser. Input: one byte choosing the read size, then the
// bytes a client sends (any number of pipelined requests).
//
// The bytes are parsed twice: whole, and as a connection would see them arrive in reads of the
// chosen size (each Parse call gets a fresh copy of the unconsumed input, so ASan catches a
// view kept across calls). Checked with abort(): *consumed stays inside the input, a command's
// views lie inside the bytes given, and both runs produce the same sequence of commands at the
// same offsets (except where an oversized data block ends: it is swallowed as it arrives).
// The whole input is also parsed with the one-key get fast path off, which must not change
// a single result.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "services/memcache/memcache_parser.h"
#include "tests/fuzz/whole_vs_split.h"

namespace {

using percore::memcache::Command;
using percore::memcache::MemcacheParser;
using percore::memcache::ParseError;
using percore::memcache::ParseStatus;

// Small limits so that every bound is reachable from short inputs.
percore::memcache::ParserLimits FuzzLimits(bool fast = true) {
  percore::memcache::ParserLimits limits;
  limits.single_get_fast_path = fast;
  limits.max_item_size = 300;
  limits.max_line = 64;
  limits.max_retrieval_line = 128;
  return limits;
}

[[noreturn]] void Fail(const char* what) { percore::fuzz::Fail("memcache_parser_fuzz", what); }

bool Inside(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

std::string Describe(ParseStatus status, const Command& c, size_t end) {
  std::string out = status == ParseStatus::kClose ? "close" : "command";
  out += " kind=" + std::to_string(static_cast<int>(c.kind)) +
         " error=" + std::to_string(static_cast<int>(c.error));
  if (status == ParseStatus::kClose) return out;
  // Where a too-large command ends depends on how much of its block had arrived.
  if (c.error != ParseError::kTooLarge) out += " end=" + std::to_string(end);
  out += " noreply=" + std::to_string(c.noreply) + " key=" + std::string(c.key) +
         " keys=" + std::string(c.keys) + " flags=" + std::to_string(c.flags) +
         " exptime=" + std::to_string(c.exptime) + " delay=" + std::to_string(c.has_delay) +
         " cas=" + std::to_string(c.cas_unique) + " delta=" + std::to_string(c.delta) +
         " value=" + std::string(c.value) + " args=" + std::string(c.args);
  return out;
}

void Check(ParseStatus status, const Command& c, size_t consumed, std::string_view input) {
  if (consumed > input.size()) Fail("*consumed exceeds the input");
  if (status != ParseStatus::kCommand) return;
  if (consumed == 0) Fail("a command consumed nothing");
  const std::string_view used = input.substr(0, consumed);
  if (!Inside(c.key, used) || !Inside(c.keys, used) || !Inside(c.value, used) || !Inside(c.args, used)) {
    Fail("a command view lies outside the consumed bytes");
  }
}

// Feeds `bytes` in reads of `step` bytes (step >= bytes.size(): all at once).
std::vector<std::string> Run(std::string_view bytes, size_t step, bool fast = true) {
  std::vector<std::string> results;
  MemcacheParser parser(FuzzLimits(fast));
  size_t pos = 0;
  size_t end = std::min(step, bytes.size());
  // Every call either consumes bytes or waits for a read; bound the loop regardless.
  for (size_t calls = 0; calls < 4 * bytes.size() + 4; ++calls) {
    const std::string copy(bytes.substr(pos, end - pos));
    Command cmd;
    size_t consumed = 0;
    const ParseStatus status = parser.Parse(copy, &cmd, &consumed);
    Check(status, cmd, consumed, copy);
    pos += consumed;
    if (status == ParseStatus::kClose) {
      results.push_back(Describe(status, cmd, pos));
      return results;
    }
    if (status == ParseStatus::kCommand) {
      results.push_back(Describe(status, cmd, pos));
      continue;
    }
    if (end == bytes.size()) return results;
    end = std::min(end + step, bytes.size());
  }
  Fail("the parser made no progress");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto whole = [](std::string_view bytes) {
    std::vector<std::string> results = Run(bytes, bytes.size() + 1);
    if (results != Run(bytes, bytes.size() + 1, /*fast=*/false)) {
      Fail("the one-key get fast path disagrees with the tokenizer");
    }
    return results;
  };
  auto in_reads = [](std::string_view bytes, size_t step) { return Run(bytes, step); };
  return percore::fuzz::CheckWholeEqualsSplit("memcache_parser_fuzz", data, size, whole, in_reads);
}
