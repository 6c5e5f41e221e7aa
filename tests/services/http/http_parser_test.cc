#include "services/http/http_parser.h"

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "gtest/gtest.h"

namespace percore {
namespace {

using Result = HttpParser::Result;

// Everything a handler could read from a request, as one comparable string.
std::string Summary(const HttpRequest& r) {
  std::string s = std::string(r.method) + " " + std::string(r.target) + " path=" +
                  std::string(r.path) + " query=" + std::string(r.query) +
                  " v1." + std::to_string(r.version_minor) + " ka=" + (r.keep_alive ? "1" : "0") +
                  " host=" + std::string(r.host) + " cl=" + std::to_string(r.content_length) +
                  " chunked=" + (r.chunked ? "1" : "0") + " [";
  for (const HttpHeader& h : r.headers) {
    s += std::string(h.name) + ":" + std::string(h.value) + ";";
  }
  s += "] body=" + std::string(r.body);
  return s;
}

// The requests and the error (if any) a parser finds in a byte stream.
struct Outcome {
  std::vector<std::string> requests;
  int error = 0;
  std::string detail;  // not compared: a split may change which rule an input breaks first
  bool operator==(const Outcome& other) const { return requests == other.requests && error == other.error; }
};

void PrintTo(const Outcome& outcome, std::ostream* os) {
  *os << "{error=" << outcome.error << " " << outcome.detail;
  for (const std::string& request : outcome.requests) *os << "\n  " << request;
  *os << "}";
}

// Feeds `stream` to one parser in pieces that end at `cuts` (and at the end), the way a
// connection does: bytes accumulate in a Buffer, complete requests are consumed. Each Parse call
// sees a fresh copy at a different address, so views must survive the input moving.
Outcome Feed(std::string_view stream, const std::vector<size_t>& cuts, HttpParserLimits limits = {},
             bool fast_path = true) {
  Outcome outcome;
  HttpParser parser(limits);
  if (!fast_path) parser.DisableFastPathForTesting();
  Buffer input;
  std::string scratch[2];
  int flip = 0;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    if (end < from) continue;
    input.Append(stream.substr(from, end - from));
    from = end;
    for (;;) {
      std::string& copy = scratch[flip ^= 1];
      copy.assign(input.view());
      const Result result = parser.Parse(copy);
      if (result == Result::kNeedMore) break;
      if (result == Result::kError) {
        outcome.error = parser.error_status();
        outcome.detail = std::string(parser.error_detail());
        return outcome;
      }
      outcome.requests.push_back(Summary(parser.request()));
      input.Consume(parser.consumed());
      parser.Reset();
    }
  }
  return outcome;
}

Outcome FeedWhole(std::string_view stream, HttpParserLimits limits = {}) {
  return Feed(stream, {}, limits);
}

Outcome FeedByteByByte(std::string_view stream, HttpParserLimits limits = {}) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  return Feed(stream, cuts, limits);
}

// Parses one complete message given whole; fails the test otherwise.
HttpRequest ParseOne(HttpParser& parser, std::string_view message) {
  EXPECT_EQ(parser.Parse(message), Result::kComplete) << parser.error_detail();
  EXPECT_EQ(parser.consumed(), message.size());
  return parser.request();
}

int ErrorOf(std::string_view message, HttpParserLimits limits = {}) {
  HttpParser parser(limits);
  const Result result = parser.Parse(message);
  if (result != Result::kError) return 0;
  return parser.error_status();
}

// --- Request line ---

TEST(HttpParserTest, ParsesSimpleGet) {
  HttpParser parser;
  const HttpRequest r = ParseOne(parser, "GET /plaintext HTTP/1.1\r\nHost: example.com\r\n"
                                         "Accept: */*\r\n\r\n");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/plaintext");
  EXPECT_EQ(r.path, "/plaintext");
  EXPECT_EQ(r.query, "");
  EXPECT_EQ(r.version_minor, 1);
  EXPECT_EQ(r.host, "example.com");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(r.chunked);
  EXPECT_EQ(r.content_length, -1);
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[1].name, "Accept");
  EXPECT_EQ(r.headers[1].value, "*/*");
  EXPECT_EQ(r.body, "");
  EXPECT_TRUE(parser.head_complete());
}

TEST(HttpParserTest, SplitsPathAndQuery) {
  HttpParser parser;
  HttpRequest r = ParseOne(parser, "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(r.path, "/a/b");
  EXPECT_EQ(r.query, "x=1&y=2");
  parser.Reset();
  r = ParseOne(parser, "GET /? HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(r.path, "/");
  EXPECT_EQ(r.query, "");
}

TEST(HttpParserTest, AbsoluteFormIsReducedToItsPath) {
  HttpParser parser;
  HttpRequest r = ParseOne(parser, "GET http://example.com:8080/json?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.target, "http://example.com:8080/json?q=1");
  EXPECT_EQ(r.path, "/json");
  EXPECT_EQ(r.query, "q=1");
  parser.Reset();
  r = ParseOne(parser, "GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.path, "/");
  parser.Reset();
  r = ParseOne(parser, "GET http://example.com?a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.path, "/");
  EXPECT_EQ(r.query, "a");
}

TEST(HttpParserTest, AsteriskAndAuthorityFormsKeepTheTargetAsPath) {
  HttpParser parser;
  HttpRequest r = ParseOne(parser, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.path, "*");
  parser.Reset();
  r = ParseOne(parser, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  EXPECT_EQ(r.method, "CONNECT");
  EXPECT_EQ(r.path, "example.com:443");
}

TEST(HttpParserTest, RequestTargetMustFitAFormTheMethodMayUse) {
  const std::string_view bad[] = {
      "GET plaintext HTTP/1.1\r\nHost: x\r\n\r\n",        // no form at all
      "GET * HTTP/1.1\r\nHost: x\r\n\r\n",                // asterisk-form is OPTIONS only
      "options * HTTP/1.1\r\nHost: x\r\n\r\n",            // methods are case-sensitive
      "GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n",             // authority-form is CONNECT only
      "GET *x HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET ://x/ HTTP/1.1\r\nHost: x\r\n\r\n",            // absolute-form without a scheme
      "GET 1http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",       // a scheme starts with a letter
      "GET ht_tp://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET http:/x HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n",            // CONNECT has authority-form only
      "CONNECT * HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT http://x:80/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT x HTTP/1.1\r\nHost: x\r\n\r\n",            // the port is required
      "CONNECT x: HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT :443 HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT x:0 HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT x:65536 HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT x:443a HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT x:4:4 HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT [::1:443 HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT u@x:443 HTTP/1.1\r\nHost: x\r\n\r\n",      // no userinfo (RFC 9110 §9.3.6)
  };
  for (std::string_view message : bad) {
    EXPECT_EQ(ErrorOf(message), 400) << message;
  }
  const std::string_view good[] = {
      "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
      "OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT [::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT 127.0.0.1:65535 HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT x:00080 HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET HTTPS://x/a HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET svn+ssh.v-2://x/a HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (std::string_view message : good) {
    HttpParser parser;
    EXPECT_EQ(parser.Parse(message), Result::kComplete) << message << parser.error_detail();
  }
}

TEST(HttpParserTest, MethodIsAnyTokenAndCaseSensitive) {
  HttpParser parser;
  HttpRequest r = ParseOne(parser, "get / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.method, "get");
  parser.Reset();
  r = ParseOne(parser, "M-SEARCH! / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.method, "M-SEARCH!");
}

TEST(HttpParserTest, VersionsAndPersistence) {
  struct Case {
    std::string_view message;
    int minor;
    bool keep_alive;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, true},
      {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1, false},
      {"GET / HTTP/1.1\r\nHost: x\r\nConnection: CLOSE\r\n\r\n", 1, false},
      {"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\n\r\n", 1, false},
      {"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", 1, true},
      {"GET / HTTP/1.0\r\n\r\n", 0, false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, true},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, false},
      {"GET / HTTP/1.9\r\nHost: x\r\n\r\n", 1, true},  // highest minor we implement
  };
  for (const Case& c : cases) {
    HttpParser parser;
    const HttpRequest r = ParseOne(parser, c.message);
    EXPECT_EQ(r.version_minor, c.minor) << c.message;
    EXPECT_EQ(r.keep_alive, c.keep_alive) << c.message;
  }
}

TEST(HttpParserTest, RejectsMalformedRequestLines) {
  const std::string_view bad[] = {
      "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",       // two spaces
      "GET /  HTTP/1.1\r\nHost: x\r\n\r\n",
      " GET / HTTP/1.1\r\nHost: x\r\n\r\n",       // leading space
      "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",       // trailing space
      "GET /\r\nHost: x\r\n\r\n",                 // no version (HTTP/0.9 style)
      "GET\r\nHost: x\r\n\r\n",
      "GET / http/1.1\r\nHost: x\r\n\r\n",        // version is case-sensitive
      "GET / HTTP/1\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.10\r\nHost: x\r\n\r\n",
      "GET / HTTP/a.1\r\nHost: x\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",        // method not a token
      "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n",   // control character in target
      "GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n",    // bare CR
      "GET / HTTP/1.1\r\r\nHost: x\r\n\r\n",
      "\r\n\rGET / HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (std::string_view message : bad) {
    EXPECT_EQ(ErrorOf(message), 400) << message;
  }
}

TEST(HttpParserTest, RejectsOtherMajorVersionsWith505) {
  EXPECT_EQ(ErrorOf("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
  EXPECT_EQ(ErrorOf("GET / HTTP/0.9\r\nHost: x\r\n\r\n"), 505);
}

TEST(HttpParserTest, RejectsGarbageBeforeTheLineEnds) {
  // A TLS ClientHello, binary noise and a NUL are refused at once, without a line end.
  EXPECT_EQ(ErrorOf(std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)), 400);
  EXPECT_EQ(ErrorOf(std::string_view("GE\0T", 4)), 400);
  EXPECT_EQ(ErrorOf("{\"json\": true}"), 400);
  EXPECT_EQ(ErrorOf(" "), 400);
  HttpParser parser;
  EXPECT_EQ(parser.Parse("GET /still-typing"), Result::kNeedMore);
}

TEST(HttpParserTest, IgnoresEmptyLinesBeforeTheRequestLine) {
  HttpParser parser;
  const std::string message = "\r\n\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
  const HttpRequest r = ParseOne(parser, message);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(parser.consumed(), message.size());
  HttpParser partial;
  EXPECT_EQ(partial.Parse("\r"), Result::kNeedMore);
  EXPECT_EQ(partial.Parse("\r\n"), Result::kNeedMore);
}

TEST(HttpParserTest, AcceptsBareLineFeeds) {
  HttpParser parser;
  const HttpRequest r = ParseOne(parser, "GET /x HTTP/1.1\nHost: h\nA: b\n\n");
  EXPECT_EQ(r.path, "/x");
  EXPECT_EQ(r.Header("a"), "b");
}

// --- Header fields ---

TEST(HttpParserTest, TrimsFieldValuesAndLooksUpNamesCaseInsensitively) {
  HttpParser parser;
  const HttpRequest r =
      ParseOne(parser, "GET / HTTP/1.1\r\nHost:x\r\nX-A: \t spaced value \t\r\nX-Empty:\r\n"
                       "X-Utf8: caf\xc3\xa9\r\n\r\n");
  EXPECT_EQ(r.host, "x");
  EXPECT_EQ(r.Header("x-a"), "spaced value");
  EXPECT_EQ(r.Header("X-EMPTY"), "");
  EXPECT_TRUE(r.has_header("x-empty"));
  EXPECT_FALSE(r.has_header("x-missing"));
  EXPECT_EQ(r.Header("X-Utf8"), "caf\xc3\xa9");
}

TEST(HttpParserTest, RejectsMalformedFieldLines) {
  const std::string_view bad[] = {
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",   // obs-fold
      "GET / HTTP/1.1\r\n Host: x\r\n\r\n",                        // whitespace after start line
      "GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n",              // space before colon
      "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX(A): a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",            // bare CR
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n",
  };
  for (std::string_view message : bad) {
    EXPECT_EQ(ErrorOf(message), 400) << message;
  }
  static constexpr char kNul[] = "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n";
  EXPECT_EQ(ErrorOf(std::string_view(kNul, sizeof(kNul) - 1)), 400);
}

TEST(HttpParserTest, EnforcesHostRules) {
  EXPECT_EQ(ErrorOf("GET / HTTP/1.1\r\n\r\n"), 400);                        // missing in 1.1
  EXPECT_EQ(ErrorOf("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);  // twice
  EXPECT_EQ(ErrorOf("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);           // invalid
  EXPECT_EQ(ErrorOf("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
  HttpParser parser;
  EXPECT_EQ(ParseOne(parser, "GET / HTTP/1.0\r\n\r\n").host, "");  // optional in 1.0
  parser.Reset();
  EXPECT_EQ(ParseOne(parser, "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").host, "[::1]:8080");
  parser.Reset();
  EXPECT_EQ(ParseOne(parser, "GET / HTTP/1.1\r\nHost:\r\n\r\n").host, "");  // empty authority
}

TEST(HttpParserTest, HostMustBeUriHostWithAnOptionalPort) {
  const std::string_view bad[] = {
      "a:b:c", "[::1", "a:-1", ":80", "a:80a", "[::1]x", "a b", "a::80",
      ":", "[]", "[::1]:x", "[::1]]", "a]", "[a]", "a@b", "a%2", "a%zz", "a%",
      "[1::2::3]", "[1:2:3:4:5:6:7:8:9]", "[1:2:3:4:5:6:7]", "[1:2:3:4:5:6:7::8]", "[12345::]",
      "[1:]", "[:1]", "[::1.2.3.256]", "[::01.2.3.4]", "[::1.2.3]", "[1.2.3.4::]",
      "[::1%25eth0]", "[v1]", "[v.x]", "[vz.x]", "[v1.]", "[v1.a/b]", "a\x80",
  };
  for (std::string_view host : bad) {
    EXPECT_EQ(ErrorOf("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"), 400) << host;
  }
  const std::string_view good[] = {
      "localhost", "localhost:8080", "127.0.0.1:80", "[::1]", "[::1]:8080", "example.com:",
      "a.b-c_d~e", "a%20b", "!$&'()*+,;=", "999.1.1.1", "[::]", "[::]:", "[1:2:3:4:5:6:7:8]",
      "[1:2:3:4:5:6::]", "[::2:3:4:5:6:7:8]", "[FE80::a:b]", "[::ffff:192.0.2.1]",
      "[1:2:3:4:5:6:0.0.0.0]", "[v1.fe80::a+en1]", "[V1F.x]:1",
  };
  for (std::string_view host : good) {
    HttpParser parser;
    EXPECT_EQ(ParseOne(parser, "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n").host,
              host);
  }
}

TEST(HttpParserTest, ReportsExpectContinueOnceTheHeadIsIn) {
  HttpParser parser;
  const std::string head =
      "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n";
  EXPECT_EQ(parser.Parse(head), Result::kNeedMore);
  EXPECT_TRUE(parser.head_complete());
  EXPECT_TRUE(parser.request().expect_continue);
  const std::string whole = head + "hello";
  EXPECT_EQ(parser.Parse(whole), Result::kComplete);
  EXPECT_EQ(parser.request().body, "hello");
}

// --- Content-Length bodies ---

TEST(HttpParserTest, ReadsContentLengthBodies) {
  HttpParser parser;
  const std::string message = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world";
  EXPECT_EQ(parser.Parse(message.substr(0, message.size() - 1)), Result::kNeedMore);
  EXPECT_TRUE(parser.head_complete());
  const HttpRequest r = ParseOne(parser, message);
  EXPECT_EQ(r.content_length, 11);
  EXPECT_EQ(r.body, "hello world");

  HttpParser zero;
  EXPECT_EQ(ParseOne(zero, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").body, "");
}

TEST(HttpParserTest, LeavesPipelinedBytesAfterTheBody) {
  HttpParser parser;
  const std::string first = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
  const std::string input = first + "GET / HTTP/1.1\r\n";  // views point into it: keep it alive
  EXPECT_EQ(parser.Parse(input), Result::kComplete);
  EXPECT_EQ(parser.consumed(), first.size());
  EXPECT_EQ(parser.request().body, "abc");
}

TEST(HttpParserTest, ContentLengthRules) {
  HttpParser parser;
  EXPECT_EQ(ParseOne(parser, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc").body,
            "abc");
  parser.Reset();
  EXPECT_EQ(ParseOne(parser, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                             "Content-Length: 3\r\n\r\nabc").body,
            "abc");
  const std::string_view bad[] = {
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nx",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
  };
  for (std::string_view message : bad) {
    EXPECT_EQ(ErrorOf(message), 400) << message;
  }
}

TEST(HttpParserTest, RejectsBodiesOverTheLimitBeforeReadingThem) {
  HttpParserLimits limits;
  limits.max_body_bytes = 100;
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", limits), 413);
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
                    limits),
            413);
  HttpParser parser(limits);
  const std::string at_limit = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" +
                               std::string(100, 'b');
  EXPECT_EQ(ParseOne(parser, at_limit).body.size(), 100u);
  // The default limit is 1 MiB.
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n"), 413);
  HttpParser defaults;
  EXPECT_EQ(defaults.Parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"),
            Result::kNeedMore);
}

// --- Chunked bodies ---

TEST(HttpParserTest, DecodesChunkedBodies) {
  HttpParser parser;
  const HttpRequest r = ParseOne(parser,
                                 "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "5\r\nhello\r\n1;ext\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n");
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.body, "hello 0123456789");
  EXPECT_EQ(r.content_length, -1);
}

TEST(HttpParserTest, ChunkExtensionsAreCheckedAndIgnored) {
  HttpParser parser;
  const HttpRequest r = ParseOne(
      parser,
      "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;name=value;flag ; q = \"quoted \\\"string\\\"; here\"\r\nabc\r\n"
      "0;last=1\r\n\r\n");
  EXPECT_EQ(r.body, "abc");
  const std::string_view bad[] = {
      "3;\r\nabc\r\n0\r\n\r\n",
      "3;=v\r\nabc\r\n0\r\n\r\n",
      "3;n=\r\nabc\r\n0\r\n\r\n",
      "3;n=\"open\r\nabc\r\n0\r\n\r\n",
      "3 x\r\nabc\r\n0\r\n\r\n",
      "3;n=a b\r\nabc\r\n0\r\n\r\n",
  };
  for (std::string_view chunks : bad) {
    const std::string message =
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(chunks);
    EXPECT_EQ(ErrorOf(message), 400) << chunks;
  }
}

TEST(HttpParserTest, TrailersAreCheckedAndDiscarded) {
  HttpParser parser;
  const HttpRequest r = ParseOne(parser,
                                 "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n");
  EXPECT_EQ(r.body, "hi");
  EXPECT_FALSE(r.has_header("X-Checksum"));
  EXPECT_EQ(ErrorOf("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "0\r\nBad Trailer\r\n\r\n"),
            400);
  EXPECT_EQ(ErrorOf("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "0\r\n folded: x\r\n\r\n"),
            400);
  HttpParserLimits limits;
  limits.max_head_bytes = 256;
  EXPECT_EQ(ErrorOf("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "0\r\nX-Big: " + std::string(300, 'a') + "\r\n\r\n",
                    limits),
            431);
}

TEST(HttpParserTest, ChunkedFramingErrors) {
  const std::string head = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(ErrorOf(head + "xyz\r\n"), 400);                      // not hex
  EXPECT_EQ(ErrorOf(head + "\r\n"), 400);                         // empty size
  EXPECT_EQ(ErrorOf(head + "-1\r\n"), 400);
  EXPECT_EQ(ErrorOf(head + "3\r\nabcX"), 400);                    // no CRLF after data
  EXPECT_EQ(ErrorOf(head + "3\r\nabc\rX"), 400);
  EXPECT_EQ(ErrorOf(head + "1;" + std::string(5000, 'a')), 400);  // endless size line
  HttpParserLimits limits;
  limits.max_body_bytes = 10;
  EXPECT_EQ(ErrorOf(head + "B\r\n", limits), 413);                       // one chunk too big
  EXPECT_EQ(ErrorOf(head + "6\r\nabcdef\r\n5\r\n", limits), 413);        // the sum too big
  EXPECT_EQ(ErrorOf(head + "ffffffffffffffffffffffff\r\n", limits), 413);  // no overflow
  HttpParserLimits framing;
  framing.max_chunk_framing_bytes = 64;
  std::string tiny_chunks;
  for (int i = 0; i < 40; ++i) tiny_chunks += "1\r\na\r\n";
  EXPECT_EQ(ErrorOf(head + tiny_chunks, framing), 413);
}

TEST(HttpParserTest, ChunkedAcceptsUppercaseHexAndBareLineFeeds) {
  HttpParser parser;
  const HttpRequest r = ParseOne(parser,
                                 "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
                                 "0000B\nhello world\n0\n\n");
  EXPECT_EQ(r.body, "hello world");
}

TEST(HttpParserTest, TransferEncodingRules) {
  const std::string tail = "\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked" + tail), 501);
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
                    "Transfer-Encoding: chunked" + tail),
            501);
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip" + tail), 400);
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip" + tail), 400);
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked" + tail), 400);
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:" + tail), 400);
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                    "Transfer-Encoding: chunked" + tail),
            400);
  EXPECT_EQ(ErrorOf("POST / HTTP/1.0\r\nTransfer-Encoding: chunked" + tail), 400);
  HttpParser parser;
  EXPECT_EQ(ParseOne(parser, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , chunked" + tail).body,
            "abc");
}

TEST(HttpParserTest, TransferCodingParametersAreNotImplemented) {
  // chunked defines no parameters: a parametrized chunked is a coding of its own, unknown here.
  const std::string tail = "\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  const std::string head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ";
  EXPECT_EQ(ErrorOf(head + "chunked;q=1" + tail), 501);
  EXPECT_EQ(ErrorOf(head + "chunked ; foo=bar" + tail), 501);
  EXPECT_EQ(ErrorOf(head + "Chunked;x=\"y\"" + tail), 501);
  EXPECT_EQ(ErrorOf(head + "chunked;" + tail), 501);
  EXPECT_EQ(ErrorOf(head + "gzip;level=1, chunked" + tail), 501);
  EXPECT_EQ(ErrorOf(head + "chunked\r\nTransfer-Encoding: chunked;q=1" + tail), 400);  // repeated
  EXPECT_EQ(ErrorOf(head + "chunked;q=1, chunked" + tail), 400);
  EXPECT_EQ(ErrorOf(head + "chunked;q=1, gzip" + tail), 400);  // not final
  EXPECT_EQ(ErrorOf(head + "identity" + tail), 400);
  HttpParser parser;
  EXPECT_EQ(ParseOne(parser, head + "\tCHUNKED ,\t" + tail).body, "abc");  // bare, any case, OWS
}

// --- Limits ---

// A request whose head (request line + fields + final CRLF) is exactly `head_size` bytes.
std::string RequestWithHeadSize(size_t head_size) {
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  const size_t fixed = head.size() + 4;  // "\r\n\r\n"
  head += std::string(head_size - fixed, 'p');
  head += "\r\n\r\n";
  return head;
}

TEST(HttpParserTest, HeadSizeLimitIs8KiBByDefault) {
  HttpParser parser;
  const std::string at_limit = RequestWithHeadSize(8192);
  ASSERT_EQ(at_limit.size(), 8192u);
  EXPECT_EQ(parser.Parse(at_limit), Result::kComplete);
  EXPECT_EQ(ErrorOf(RequestWithHeadSize(8193)), 431);
  EXPECT_EQ(FeedByteByByte(RequestWithHeadSize(8193)).error, 431);
  EXPECT_EQ(FeedByteByByte(at_limit).requests.size(), 1u);
}

TEST(HttpParserTest, OversizeRequestLineWithoutEndIs431) {
  const std::string endless = "GET /" + std::string(9000, 'a');
  EXPECT_EQ(ErrorOf(endless), 431);
  EXPECT_EQ(FeedByteByByte(endless).error, 431);
  EXPECT_EQ(ErrorOf(std::string(9000, '\n')), 431);  // endless empty lines are bounded too
}

TEST(HttpParserTest, FieldCountLimit) {
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 99; ++i) head += "X: y\r\n";
  HttpParser parser;
  EXPECT_EQ(parser.Parse(head + "\r\n"), Result::kComplete);  // 100 fields
  EXPECT_EQ(ErrorOf(head + "X: y\r\n\r\n"), 431);            // 101
}

// --- Pipelining, splits, truncation ---

std::string PipelinedSequence() {
  return "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"
         "POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
         "\r\n"  // a stray empty line between messages is ignored
         "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "4;x=\"y\"\r\nwiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n"
         "HEAD /json HTTP/1.1\nHost: a\nX-Many:   spaces  \n\n"
         "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
         "GET http://a/abs?q HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
}

TEST(HttpParserTest, ParsesAPipelinedSequenceInOrder) {
  const Outcome outcome = FeedWhole(PipelinedSequence());
  EXPECT_EQ(outcome.error, 0);
  ASSERT_EQ(outcome.requests.size(), 6u);
  EXPECT_EQ(outcome.requests[0],
            "GET /plaintext path=/plaintext query= v1.1 ka=1 host=a cl=-1 chunked=0 [Host:a;] body=");
  EXPECT_EQ(outcome.requests[1],
            "POST /echo?x=1 path=/echo query=x=1 v1.1 ka=1 host=a cl=5 chunked=0 "
            "[Host:a;Content-Length:5;] body=hello");
  EXPECT_EQ(outcome.requests[2],
            "PUT /c path=/c query= v1.1 ka=1 host=a cl=-1 chunked=1 "
            "[Host:a;Transfer-Encoding:chunked;] body=wikipedia");
  EXPECT_EQ(outcome.requests[3],
            "HEAD /json path=/json query= v1.1 ka=1 host=a cl=-1 chunked=0 [Host:a;X-Many:spaces;] body=");
  EXPECT_EQ(outcome.requests[4],
            "GET /old path=/old query= v1.0 ka=1 host= cl=-1 chunked=0 [Connection:keep-alive;] body=");
  EXPECT_EQ(outcome.requests[5],
            "GET http://a/abs?q path=/abs query=q v1.1 ka=0 host=a cl=-1 chunked=0 "
            "[Host:a;Connection:close;] body=");
}

TEST(HttpParserTest, SplitAtEveryBytePipelinedGivesTheSameRequests) {
  const std::string stream = PipelinedSequence();
  const Outcome whole = FeedWhole(stream);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ASSERT_EQ(Feed(stream, {cut}), whole) << "cut at " << cut;
  }
  EXPECT_EQ(FeedByteByByte(stream), whole);
}

TEST(HttpParserTest, EveryTruncationNeedsMore) {
  const std::string message =
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4;x=\"y\"\r\nwiki\r\n0\r\nT: v\r\n\r\n";
  for (size_t n = 0; n < message.size(); ++n) {
    HttpParser parser;
    EXPECT_EQ(parser.Parse(std::string_view(message).substr(0, n)), Result::kNeedMore) << n;
  }
  const std::string with_length = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
  for (size_t n = 0; n < with_length.size(); ++n) {
    HttpParser parser;
    EXPECT_EQ(parser.Parse(std::string_view(with_length).substr(0, n)), Result::kNeedMore) << n;
  }
}

TEST(HttpParserTest, ErrorsAreTheSameWhateverTheSplit) {
  const std::string_view streams[] = {
      "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX : bad\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\r\nBAD\x01 / HTTP/1.1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n",
      "GET / HTTP/3.0\r\nHost: a\r\n\r\n",
  };
  for (std::string_view stream : streams) {
    const Outcome whole = FeedWhole(stream);
    EXPECT_NE(whole.error, 0) << stream;
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      ASSERT_EQ(Feed(stream, {cut}), whole) << stream << " cut at " << cut;
    }
    EXPECT_EQ(FeedByteByByte(stream), whole) << stream;
  }
}

TEST(HttpParserTest, StrictHostTargetAndCodingVerdictsAreTheSameWhateverTheSplit) {
  struct Case {
    std::string message;
    int status;
  };
  const std::string_view hosts[] = {"a:b:c", "[::1", "a:-1", ":80", "a:80a", "[::1]x", "a b",
                                    "a::80"};
  const std::string_view request_lines[] = {
      "GET plaintext HTTP/1.1", "GET * HTTP/1.1",       "GET 1a://x/ HTTP/1.1",
      "CONNECT x HTTP/1.1",     "CONNECT x:0 HTTP/1.1", "CONNECT / HTTP/1.1",
  };
  const std::string_view codings[] = {"chunked;q=1", "chunked ; foo=bar"};
  std::vector<Case> cases;
  for (std::string_view host : hosts) {
    cases.push_back({"GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n", 400});
  }
  for (std::string_view line : request_lines) {
    cases.push_back({std::string(line) + "\r\nHost: a\r\n\r\n", 400});
  }
  for (std::string_view coding : codings) {
    cases.push_back({"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + std::string(coding) +
                         "\r\n\r\n0\r\n\r\n",
                     501});
  }
  // Behind a valid request, so the verdict also holds for a pipelined message.
  const std::string first = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  for (const Case& c : cases) {
    const Outcome whole = FeedWhole(first + c.message);
    EXPECT_EQ(whole.requests.size(), 1u) << c.message;
    EXPECT_EQ(whole.error, c.status) << c.message;
    EXPECT_EQ(FeedByteByByte(c.message).error, c.status) << c.message;
    EXPECT_EQ(FeedByteByByte(first + c.message), whole) << c.message;
    const std::string stream = first + c.message;
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      ASSERT_EQ(Feed(stream, {cut}), whole) << c.message << " cut at " << cut;
    }
  }
}

TEST(HttpParserTest, ParseIsIdempotentAfterTheEnd) {
  HttpParser parser;
  const std::string message = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(parser.Parse(message), Result::kComplete);
  EXPECT_EQ(parser.Parse(message), Result::kComplete);
  EXPECT_EQ(parser.consumed(), message.size());
  HttpParser failed;
  EXPECT_EQ(failed.Parse("BAD\x01"), Result::kError);
  EXPECT_EQ(failed.Parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Result::kError);
  EXPECT_EQ(failed.error_status(), 400);
  EXPECT_FALSE(failed.error_detail().empty());
}

TEST(HttpParserTest, RandomGarbageNeverCrashesAndOnlyYieldsKnownStatuses) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 2000; ++round) {
    std::string garbage(1 + rng() % 200, '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    const Outcome outcome = FeedWhole(garbage);
    EXPECT_TRUE(outcome.error == 0 || outcome.error == 400 || outcome.error == 431 ||
                outcome.error == 413 || outcome.error == 501 || outcome.error == 505)
        << outcome.error;
  }
}

TEST(HttpParserTest, MutatedRequestsParseTheSameWholeOrByteByByte) {
  // Flip one byte of a valid pipelined stream at a time: whatever the verdict, it must not depend
  // on how the bytes arrived.
  const std::string stream = PipelinedSequence();
  std::mt19937 rng(777);
  for (size_t i = 0; i < stream.size(); ++i) {
    std::string mutated = stream;
    mutated[i] = static_cast<char>(rng());
    const Outcome whole = FeedWhole(mutated);
    ASSERT_EQ(FeedByteByByte(mutated), whole) << "mutated byte " << i;
  }
}

}  // namespace
}  // namespace percore

namespace percore {
namespace {

// The one-pass reading of common heads against the line-by-line parser: the same requests, the
// same error status and detail, for every split and for bad bytes anywhere.
Outcome FeedStrict(std::string_view stream, const std::vector<size_t>& cuts = {}, HttpParserLimits limits = {}) {
  return Feed(stream, cuts, limits, /*fast_path=*/false);
}

// Equal outcomes, the error's detail included: the same input split the same way gives both
// parsers the same bytes, so they must break the same rule.
bool Same(const Outcome& a, const Outcome& b) { return a == b && a.detail == b.detail; }

const std::vector<std::string>& FastPathSamples() {
  static const std::vector<std::string> samples = {
      "GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n",
      "GET /json?lang=en&page=2 HTTP/1.1\r\nHost: www.example.com:8080\r\nUser-Agent: Mozilla/5.0 (X11; "
      "Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\nAccept: */*\r\n\r\n",
      "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
      "GET /a?b?c HTTP/1.0\r\nConnection: keep-alive\r\nX:   padded\t \r\n\r\n",
      "HEAD / HTTP/1.1\r\nhOsT: [::1]:80\r\nExpect: 100-continue\r\n\r\n",
      "PUT /x HTTP/1.1\r\nHost: h%41st\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "GET /0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: example.com\r\nA: 0123456789abcdef0123\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\nHost: a\n\n",
  };
  return samples;
}

TEST(HttpParserFastPathTest, AgreesWithTheLineParserOnSamplesAndPipelines) {
  std::string pipeline;
  for (const std::string& sample : FastPathSamples()) {
    EXPECT_PRED2(Same, FeedWhole(sample), FeedStrict(sample)) << sample;
    pipeline += sample;
  }
  EXPECT_PRED2(Same, FeedWhole(pipeline), FeedStrict(pipeline));
}

TEST(HttpParserFastPathTest, AgreesAtEverySplit) {
  for (const std::string& sample : FastPathSamples()) {
    const std::string twice = sample + sample;
    for (size_t cut = 0; cut <= twice.size(); ++cut) {
      EXPECT_PRED2(Same, Feed(twice, {cut}), FeedStrict(twice, {cut})) << sample << " cut " << cut;
    }
  }
}

TEST(HttpParserFastPathTest, AgreesWithBadBytesInEveryPosition) {
  const std::string bad_bytes("\0\r\n \t\x7f\x80:?%[@\"", 14);
  for (const std::string& sample : FastPathSamples()) {
    for (size_t i = 0; i < sample.size(); ++i) {
      for (char c : bad_bytes) {
        std::string mutated = sample;
        mutated[i] = c;
        EXPECT_PRED2(Same, FeedWhole(mutated), FeedStrict(mutated)) << testing::PrintToString(mutated);
      }
    }
  }
}

TEST(HttpParserFastPathTest, AgreesAtEachLimit) {
  const std::string head = "GET /p HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n";
  for (size_t max_head = head.size() - 3; max_head <= head.size() + 1; ++max_head) {
    for (size_t max_headers = 2; max_headers <= 5; ++max_headers) {
      HttpParserLimits limits;
      limits.max_head_bytes = max_head;
      limits.max_headers = max_headers;
      EXPECT_PRED2(Same, Feed(head, {}, limits), FeedStrict(head, {}, limits)) << max_head << " " << max_headers;
    }
  }
}

}  // namespace
}  // namespace percore
