// Fuzzes the incremental HTTP/1.x request parser. Input: one byte choosing the read size, then
// the bytes a client sends (any number of pipelined requests).
//
// The bytes are parsed twice: whole, and as a connection would see them arrive in reads of the
// chosen size (each Parse call gets a fresh copy of the unconsumed input, so a view kept from
// an earlier call would point into freed memory and ASan would say so). Checked with abort():
// consumed() stays inside the input, every view of a complete request lies inside the bytes
// given, an error carries a status the parser documents, and both runs produce the same
// sequence of results (errors compared as errors, whatever their status). Whole, it is also
// parsed with the fast path for common heads turned off: both must agree exactly.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "services/http/http_parser.h"
#include "tests/fuzz/whole_vs_split.h"

namespace {

using percore::HttpParser;
using percore::HttpRequest;

// Small limits so that every bound is reachable from short inputs.
percore::HttpParserLimits FuzzLimits() {
  percore::HttpParserLimits limits;
  limits.max_head_bytes = 512;
  limits.max_headers = 8;
  limits.max_body_bytes = 256;
  limits.max_chunk_line_bytes = 64;
  limits.max_chunk_framing_bytes = 256;
  return limits;
}

[[noreturn]] void Fail(const char* what) { percore::fuzz::Fail("http_parser_fuzz", what); }

bool Inside(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

// A result in a form that does not depend on where the bytes were in memory.
std::string Describe(HttpParser::Result result, const HttpParser& parser, size_t offset) {
  // Only the fact of an error is compared: a request that breaks two rules (too long and
  // malformed) may be refused under either, depending on how much of it has arrived; both
  // answers close the connection.
  if (result == HttpParser::Result::kError) return "error";
  const HttpRequest& r = parser.request();
  std::string out = "request at " + std::to_string(offset) + " len " +
                    std::to_string(parser.consumed()) + " " + std::string(r.method) + " " +
                    std::string(r.target) + " path=" + std::string(r.path) +
                    " query=" + std::string(r.query) + " v" + std::to_string(r.version_minor) +
                    " host=" + std::string(r.host) + " cl=" + std::to_string(r.content_length) +
                    " chunked=" + std::to_string(r.chunked) + " ka=" + std::to_string(r.keep_alive) +
                    " expect=" + std::to_string(r.expect_continue) + " body=" + std::string(r.body);
  for (const percore::HttpHeader& h : r.headers) {
    out += "|" + std::string(h.name) + ":" + std::string(h.value);
  }
  return out;
}

void CheckResult(HttpParser::Result result, const HttpParser& parser, std::string_view input) {
  if (result == HttpParser::Result::kError) {
    switch (parser.error_status()) {
      case 400: case 413: case 431: case 501: case 505: return;
      default: Fail("error with an undocumented status");
    }
  }
  if (result != HttpParser::Result::kComplete) return;
  if (parser.consumed() == 0 || parser.consumed() > input.size()) Fail("consumed() outside the input");
  const std::string_view message = input.substr(0, parser.consumed());
  const HttpRequest& r = parser.request();
  // An absolute-form target without a path routes as "/", which the parser supplies itself.
  const bool path_ok = Inside(r.path, message) || r.path == "/";
  if (!Inside(r.method, message) || !Inside(r.target, message) || !path_ok ||
      !Inside(r.query, message) || !Inside(r.host, message)) {
    Fail("a request-line view lies outside the message");
  }
  if (r.method.empty()) Fail("complete request without a method");
  // A chunked body is decoded into the parser's storage; any other body is part of the message.
  if (!r.chunked && !Inside(r.body, message)) Fail("the body lies outside the message");
  if (!r.chunked && r.content_length >= 0 && r.body.size() != static_cast<size_t>(r.content_length)) {
    Fail("body size differs from Content-Length");
  }
  for (const percore::HttpHeader& h : r.headers) {
    if (!Inside(h.name, message) || !Inside(h.value, message)) Fail("a header view lies outside the message");
  }
}

// Parses all of `bytes` in one go per message. With `fast_path` off every head goes through the
// line-by-line parser; `exact_errors` then names each error by its status and detail.
std::vector<std::string> ParseWhole(std::string_view bytes, bool fast_path = true, bool exact_errors = false) {
  std::vector<std::string> results;
  HttpParser parser(FuzzLimits());
  if (!fast_path) parser.DisableFastPathForTesting();
  size_t pos = 0;
  while (pos < bytes.size()) {
    const std::string copy(bytes.substr(pos));
    const HttpParser::Result result = parser.Parse(copy);
    CheckResult(result, parser, copy);
    if (result == HttpParser::Result::kNeedMore) break;
    results.push_back(Describe(result, parser, pos));
    if (result == HttpParser::Result::kError) {
      if (exact_errors) {
        results.back() += " " + std::to_string(parser.error_status()) + " " + std::string(parser.error_detail());
      }
      break;
    }
    pos += parser.consumed();
    parser.Reset();
  }
  return results;
}

// Parses `bytes` as they would arrive in reads of `step` bytes.
std::vector<std::string> ParseInReads(std::string_view bytes, size_t step) {
  std::vector<std::string> results;
  HttpParser parser(FuzzLimits());
  size_t pos = 0;  // first unconsumed byte
  size_t end = std::min(step, bytes.size());  // bytes received so far
  while (true) {
    if (pos == end) {  // everything received so far is consumed: wait for a read
      if (end == bytes.size()) break;
      end = std::min(end + step, bytes.size());
    }
    const std::string copy(bytes.substr(pos, end - pos));
    const HttpParser::Result result = parser.Parse(copy);
    CheckResult(result, parser, copy);
    if (result == HttpParser::Result::kNeedMore) {
      if (end == bytes.size()) break;
      end = std::min(end + step, bytes.size());
      continue;
    }
    results.push_back(Describe(result, parser, pos));
    if (result == HttpParser::Result::kError) break;
    pos += parser.consumed();
    parser.Reset();
  }
  return results;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The one-pass reading of common heads gives what the line-by-line parser gives, down to the
  // error's status and detail.
  if (size >= 1) {
    const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    if (ParseWhole(bytes, true, true) != ParseWhole(bytes, false, true)) Fail("fast path and line parser disagree");
  }
  return percore::fuzz::CheckWholeEqualsSplit(
      "http_parser_fuzz", data, size, [](std::string_view bytes) { return ParseWhole(bytes); },
                                              ParseInReads);
}
