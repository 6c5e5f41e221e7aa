#pragma once

// The property every parser fuzz target checks: a parser's results do not depend on how its
// input arrives. The input's first byte picks a read size (1 to 64 bytes); the rest is parsed
// all at once and in reads of that size, and the two lists of results must be equal.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace percore::fuzz {

[[noreturn]] inline void Fail(const char* target, const char* what) {
  std::fprintf(stderr, "%s: %s\n", target, what);
  std::abort();
}

// `whole(bytes)` and `in_reads(bytes, step)` return what the parser produced, described as
// strings; a mismatch prints both lists and aborts.
template <typename Whole, typename InReads>
int CheckWholeEqualsSplit(const char* target, const uint8_t* data, size_t size, Whole whole,
                          InReads in_reads) {
  if (size < 1) return 0;
  const size_t step = 1 + data[0] % 64;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::vector<std::string> at_once = whole(bytes);
  const std::vector<std::string> split = in_reads(bytes, step);
  if (at_once != split) {
    for (const std::string& s : at_once) std::fprintf(stderr, "whole: %s\n", s.c_str());
    for (const std::string& s : split) std::fprintf(stderr, "split: %s\n", s.c_str());
    Fail(target, "parsing whole and in reads disagree");
  }
  return 0;
}

}  // namespace percore::fuzz
