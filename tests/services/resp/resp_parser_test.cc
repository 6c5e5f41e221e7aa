#include "services/resp/resp_parser.h"

#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace percore {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Result = RespParser::Result;
using Args = std::vector<std::string>;

Args Copy(std::span<const std::string_view> args) { return Args(args.begin(), args.end()); }

// Parses everything in `input` the way a connection does: one request at a time, consuming
// after each. Stops at kIncomplete or kError; `*rest` gets what was left, `*error` the error.
std::vector<Args> ParseAll(RespParser& parser, std::string input, std::string* rest = nullptr,
                           std::string* error = nullptr) {
  std::vector<Args> out;
  while (true) {
    const Result r = parser.Parse(input);
    if (r == Result::kCommand) {
      out.push_back(Copy(parser.args()));
      input.erase(0, parser.consumed());
      continue;
    }
    if (r == Result::kError && error != nullptr) *error = std::string(parser.error());
    if (r == Result::kIncomplete && error != nullptr) error->clear();
    break;
  }
  if (rest != nullptr) *rest = input;
  return out;
}

std::string ErrorOf(std::string_view input, RespOptions options = {}) {
  RespParser parser(options);
  std::string error;
  ParseAll(parser, std::string(input), nullptr, &error);
  return error;
}

// Feeds `whole` to `parser` `step` bytes at a time and describes what it made of it: each
// command's arguments, then the error or the incomplete rest.
std::string DescribeParse(RespParser& parser, const std::string& whole, size_t step) {
  std::string log;
  std::string input;
  size_t fed = 0;
  while (true) {
    const Result r = parser.Parse(input);
    if (r == Result::kCommand) {
      log += "[";
      for (std::string_view arg : parser.args()) log += std::string(arg) + "|";
      log += "] ";
      input.erase(0, parser.consumed());
      continue;
    }
    if (r == Result::kError) return log + "error: " + std::string(parser.error());
    if (fed == whole.size()) return log + "incomplete: " + input;
    input += whole.substr(fed, step);
    fed = std::min(whole.size(), fed + step);
  }
}

TEST(RespParserTest, Multibulk) {
  RespParser parser(RespOptions{});
  const std::string input = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
  ASSERT_EQ(parser.Parse(input), Result::kCommand);
  EXPECT_THAT(Copy(parser.args()), ElementsAre("GET", "key"));
  EXPECT_EQ(parser.consumed(), input.size());
}

TEST(RespParserTest, ArgumentsAreViewsIntoTheInput) {
  RespParser parser(RespOptions{});
  const std::string input = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
  ASSERT_EQ(parser.Parse(input), Result::kCommand);
  EXPECT_EQ(parser.args()[1].data(), input.data() + input.find("key"));
}

TEST(RespParserTest, BinarySafeBulk) {
  RespParser parser(RespOptions{});
  const std::string value("a\r\n\0b", 5);
  const std::string input = "*2\r\n$4\r\nECHO\r\n$5\r\n" + value + "\r\n";
  ASSERT_EQ(parser.Parse(input), Result::kCommand);
  EXPECT_EQ(parser.args()[1], value);
}

TEST(RespParserTest, EmptyBulk) {
  RespParser parser(RespOptions{});
  ASSERT_EQ(parser.Parse("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), Result::kCommand);
  EXPECT_THAT(Copy(parser.args()), ElementsAre("ECHO", ""));
}

TEST(RespParserTest, EmptyAndNegativeMultibulkAreEmptyRequests) {
  for (std::string_view input : {"*0\r\n", "*-1\r\n", "*-5\r\n"}) {
    RespParser parser(RespOptions{});
    ASSERT_EQ(parser.Parse(input), Result::kCommand) << input;
    EXPECT_THAT(parser.args(), IsEmpty());
    EXPECT_EQ(parser.consumed(), input.size());
  }
}

TEST(RespParserTest, Inline) {
  RespParser parser(RespOptions{});
  EXPECT_THAT(ParseAll(parser, "PING\r\n"), ElementsAre(Args{"PING"}));
  EXPECT_THAT(ParseAll(parser, "set  k   v\n"), ElementsAre(Args{"set", "k", "v"}));
  EXPECT_THAT(ParseAll(parser, "  GET\tk  \r\n"), ElementsAre(Args{"GET", "k"}));
}

TEST(RespParserTest, InlineBlankLineIsEmptyRequest) {
  RespParser parser(RespOptions{});
  ASSERT_EQ(parser.Parse("\r\n"), Result::kCommand);
  EXPECT_THAT(parser.args(), IsEmpty());
  EXPECT_EQ(parser.consumed(), 2u);
  ASSERT_EQ(parser.Parse("   \n"), Result::kCommand);
  EXPECT_THAT(parser.args(), IsEmpty());
}

TEST(RespParserTest, InlineQuotes) {
  RespParser parser(RespOptions{});
  EXPECT_THAT(ParseAll(parser, "SET k \"hello world\"\r\n"),
              ElementsAre(Args{"SET", "k", "hello world"}));
  EXPECT_THAT(ParseAll(parser, "SET k 'it''s'\r\n"), IsEmpty());  // quote must end the word
  EXPECT_THAT(ParseAll(parser, "SET k 'it\\'s'\r\n"), ElementsAre(Args{"SET", "k", "it's"}));
  EXPECT_THAT(ParseAll(parser, "ECHO \"a\\nb\\tc\\x41\\\\\\\"\"\r\n"),
              ElementsAre(Args{"ECHO", "a\nb\tcA\\\""}));
  EXPECT_THAT(ParseAll(parser, "ECHO \"\"\r\n"), ElementsAre(Args{"ECHO", ""}));
  EXPECT_THAT(ParseAll(parser, "ECHO ab\"c d\"\r\n"), ElementsAre(Args{"ECHO", "abc d"}));
  EXPECT_THAT(ParseAll(parser, "ECHO \"a\" \"b\" plain\r\n"),
              ElementsAre(Args{"ECHO", "a", "b", "plain"}));
}

TEST(RespParserTest, InlineUnbalancedQuotes) {
  EXPECT_EQ(ErrorOf("ECHO \"abc\r\n"), "Protocol error: unbalanced quotes in request");
  EXPECT_EQ(ErrorOf("ECHO 'abc\r\n"), "Protocol error: unbalanced quotes in request");
  EXPECT_EQ(ErrorOf("ECHO \"abc\"def\r\n"), "Protocol error: unbalanced quotes in request");
  EXPECT_EQ(ErrorOf("ECHO \"abc\\\r\n"), "Protocol error: unbalanced quotes in request");
}

TEST(RespParserTest, Pipelined) {
  RespParser parser(RespOptions{});
  std::string rest;
  const auto cmds = ParseAll(parser,
                             "*1\r\n$4\r\nPING\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
                             "GET k\r\n*2\r\n$3\r\nGET",
                             &rest);
  EXPECT_THAT(cmds, ElementsAre(Args{"PING"}, Args{"PING"}, Args{"SET", "k", "v"},
                                Args{"GET", "k"}));
  EXPECT_EQ(rest, "*2\r\n$3\r\nGET");
}

TEST(RespParserTest, SplitAtEveryByte) {
  const std::string stream =
      "*3\r\n$3\r\nSET\r\n$5\r\nkey:1\r\n$11\r\nhello world\r\n"
      "PING\r\n"
      "ECHO \"x y\"\r\n"
      "*0\r\n"
      "*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n";
  const std::vector<Args> expected = {
      {"SET", "key:1", "hello world"}, {"PING"}, {"ECHO", "x y"}, {}, {"GET", "key:1"}};
  // Byte by byte, and in every two-piece split.
  RespParser parser(RespOptions{});
  std::vector<Args> got;
  std::string input;
  for (char c : stream) {
    input.push_back(c);
    while (true) {
      const Result r = parser.Parse(input);
      ASSERT_NE(r, Result::kError) << parser.error();
      if (r == Result::kIncomplete) break;
      got.push_back(Copy(parser.args()));
      input.erase(0, parser.consumed());
    }
  }
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(input.empty());
  for (size_t split = 1; split < stream.size(); ++split) {
    RespParser p(RespOptions{});
    std::string rest;
    auto first = ParseAll(p, stream.substr(0, split), &rest);
    auto second = ParseAll(p, rest + stream.substr(split), &rest);
    first.insert(first.end(), second.begin(), second.end());
    EXPECT_EQ(first, expected) << "split at " << split;
    EXPECT_TRUE(rest.empty());
  }
}

// A request that is all there is parsed in one pass; one that arrives in pieces takes the
// general path. Both must agree on every request and every error, most of all at the limits.
TEST(RespParserTest, WholeAndPieceByPieceAgree) {
  RespOptions options;
  options.max_bulk_bytes = 10;
  options.max_args = 3;
  options.max_request_bytes = 32;
  const std::vector<std::string> inputs = {
      "*1\r\n$0\r\n\r\n",                                  // an empty argument
      "*1\r\n$10\r\n0123456789\r\n",                        // the largest bulk
      "*1\r\n$11\r\n0123456789a\r\n",                       // one byte over it
      "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",               // the most arguments
      "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n",     // one too many
      "*2\r\n$10\r\n0123456789\r\n$5\r\nabcde\r\n",           // exactly 32 bytes
      "*2\r\n$10\r\n0123456789\r\n$6\r\nabcdef\r\n",          // 33 bytes
      "*01\r\n$1\r\na\r\n",                                   // leading zero in the count
      "*1\r\n$00\r\n\r\n",                                    // ... and in a length
      "*1\r\n$+1\r\na\r\n",                                   // a sign
      "*1\r\n$1\r\nab\r\n",                                   // data longer than announced
      "*1\r\n$1\ra\r\n",                                      // a bare CR ends no line
      "*1\r\n$1\r\na\n\n",                                    // LF LF after the data
      "*2\r\n$1\r\na\r\n:1\r\n",                              // not a bulk string
      "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",                      // empty requests first
  };
  const auto describe = [](RespParser& parser, const std::string& whole, size_t step) {
    return DescribeParse(parser, whole, step);
  };
  for (const std::string& input : inputs) {
    RespParser whole_parser(options);
    RespParser split_parser(options);
    EXPECT_EQ(describe(whole_parser, input, input.size()), describe(split_parser, input, 1)) << input;
  }
}

// The whole-request path reads header numbers of one and two digits on their own, and keeps up
// to eight arguments beside the vector: at each of those edges, and with a bad byte anywhere in
// a request, its results are the general path's (which a request fed a byte at a time takes).
TEST(RespParserTest, WholePathEdgesAgreeWithGeneralPath) {
  const auto describe = [](const std::string& whole, size_t step) {
    RespParser parser(RespOptions{});
    return DescribeParse(parser, whole, step);
  };
  const auto bulk = [](size_t n) { return "$" + std::to_string(n) + "\r\n" + std::string(n, 'v') + "\r\n"; };
  const auto request = [&](size_t args, size_t len) {
    std::string out = "*" + std::to_string(args) + "\r\n";
    for (size_t i = 0; i < args; ++i) out += bulk(len);
    return out;
  };
  std::vector<std::string> inputs = {
      "*2\r\n$3\r\nGET\r\n$32\r\n" + std::string(32, 'k') + "\r\n",
      request(1, 0), request(1, 9), request(1, 10), request(1, 99), request(1, 100),
      request(7, 1), request(8, 1), request(9, 1), request(10, 2), request(16, 3),
      "*1\r\n$05\r\nabcde\r\n", "*1\r\n$0\r\r\n", "*1\r\n$1\r\r\na\r\n",
      "*1\r\n$12\r\r\n", "*1\r\n$12\n", "*1\r\n$1a\r\n", "*1\n$1\r\na\r\n",
      "*1\r\n$123456789\r\n", "*1\r\n$1234567890\r\n", "*1\r\n$-1\r\n",
  };
  const std::string get = inputs[0];
  for (size_t i = 0; i < get.size(); ++i) {
    for (char bad : {'\r', '\n', '0', '9', '$', '*', 'x'}) {
      std::string input = get;
      input[i] = bad;
      inputs.push_back(input);
    }
  }
  for (const std::string& input : inputs) {
    EXPECT_EQ(describe(input, input.size()), describe(input, 1)) << input;
  }
}

// Arguments kept beside the vector stay valid (and right) from one request to the next, also
// when a request with more of them comes between.
TEST(RespParserTest, FewAndManyArgumentsAlternate) {
  RespParser parser(RespOptions{});
  const std::string input =
      "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
      "*9\r\n$4\r\nMSET\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n"
      "$1\r\n5\r\n$1\r\n6\r\n$1\r\n7\r\n$1\r\n8\r\n"
      "*2\r\n$3\r\nGET\r\n$1\r\nb\r\n";
  EXPECT_THAT(ParseAll(parser, input),
              ElementsAre(Args{"GET", "a"}, Args{"MSET", "1", "2", "3", "4", "5", "6", "7", "8"},
                          Args{"GET", "b"}));
}

TEST(RespParserTest, TruncatedIsIncomplete) {
  const std::string full = "*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n";
  for (size_t n = 1; n < full.size(); ++n) {
    RespParser parser(RespOptions{});
    EXPECT_EQ(parser.Parse(full.substr(0, n)), Result::kIncomplete) << n;
  }
  RespParser parser(RespOptions{});
  EXPECT_EQ(parser.Parse("PING"), Result::kIncomplete);
  EXPECT_EQ(parser.Parse(""), Result::kIncomplete);
}

TEST(RespParserTest, GarbageMultibulk) {
  EXPECT_EQ(ErrorOf("*abc\r\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(ErrorOf("*+1\r\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(ErrorOf("*\r\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(ErrorOf("*1\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(ErrorOf("*1\r\nxyz\r\n"), "Protocol error: expected '$', got 'x'");
  EXPECT_EQ(ErrorOf("*1\r\n\r\n"), "Protocol error: expected '$', got ' '");
  EXPECT_EQ(ErrorOf("*1\r\n$abc\r\n"), "Protocol error: invalid bulk length");
  EXPECT_EQ(ErrorOf("*1\r\n$\r\n"), "Protocol error: invalid bulk length");
  EXPECT_EQ(ErrorOf("*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
  EXPECT_EQ(ErrorOf("*1\r\n$01\r\nx\r\n"), "Protocol error: invalid bulk length");
  EXPECT_EQ(ErrorOf("*1\r\n$3\r\nabcXY"), "Protocol error: bulk string not terminated by CRLF");
  EXPECT_EQ(ErrorOf("*2\r\n$1\r\na\r\n*1\r\n"), "Protocol error: expected '$', got '*'");
}

TEST(RespParserTest, HugeAndOversizeLengths) {
  EXPECT_EQ(ErrorOf("*99999999999999999999999\r\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(ErrorOf("*9223372036854775807\r\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(ErrorOf("*1\r\n$99999999999999999999999\r\n"), "Protocol error: invalid bulk length");
  EXPECT_EQ(ErrorOf("*1\r\n$9223372036854775807\r\n"), "Protocol error: invalid bulk length");
  EXPECT_EQ(ErrorOf("*1\r\n$-9223372036854775808\r\n"), "Protocol error: invalid bulk length");
  // The default bulk limit is 512 MiB: one byte more is refused before any data arrives.
  EXPECT_EQ(ErrorOf("*1\r\n$536870913\r\n"), "Protocol error: invalid bulk length");
  RespParser parser(RespOptions{});
  EXPECT_EQ(parser.Parse("*1\r\n$536870912\r\n"), Result::kIncomplete);
}

TEST(RespParserTest, ConfigurableLimits) {
  RespOptions options;
  options.max_bulk_bytes = 10;
  options.max_args = 3;
  options.max_request_bytes = 35;
  EXPECT_EQ(ErrorOf("*1\r\n$11\r\n", options), "Protocol error: invalid bulk length");
  EXPECT_EQ(ErrorOf("*4\r\n", options), "Protocol error: invalid multibulk length");
  EXPECT_EQ(ErrorOf("*3\r\n$10\r\n0123456789\r\n$10\r\n", options),
            "Protocol error: request exceeds the query buffer limit");
  RespParser parser(options);
  EXPECT_EQ(parser.Parse("*1\r\n$10\r\n0123456789\r\n"), Result::kCommand);  // 21 bytes
}

TEST(RespParserTest, TooBigLines) {
  RespOptions options;
  const std::string big(options.max_inline_bytes + 1, 'a');
  EXPECT_EQ(ErrorOf(big), "Protocol error: too big inline request");
  EXPECT_EQ(ErrorOf(big + "\r\n"), "Protocol error: too big inline request");
  EXPECT_EQ(ErrorOf(big + "\n"), "Protocol error: too big inline request");
  {
    // Exactly the limit, the terminator not counted: either terminator is accepted.
    const std::string at_limit = "ECHO " + std::string(options.max_inline_bytes - 5, 'c');
    RespParser crlf(options);
    EXPECT_EQ(crlf.Parse(at_limit + "\r\n"), Result::kCommand);
    RespParser lf(options);
    EXPECT_EQ(lf.Parse(at_limit + "\n"), Result::kCommand);
    RespParser waiting(options);  // the limit and a '\r': the '\n' may still come
    EXPECT_EQ(waiting.Parse(at_limit + "\r"), Result::kIncomplete);
  }
  EXPECT_EQ(ErrorOf("*" + std::string(options.max_inline_bytes + 1, '1')),
            "Protocol error: too big mbulk count string");
  EXPECT_EQ(ErrorOf("*1\r\n$" + std::string(options.max_inline_bytes + 1, '1')),
            "Protocol error: too big bulk count string");
  // Just under the limit waits for more.
  RespParser parser(options);
  EXPECT_EQ(parser.Parse(std::string(options.max_inline_bytes, 'a')), Result::kIncomplete);
  std::string line = "ECHO " + std::string(options.max_inline_bytes - 5, 'b') + "\n";
  ASSERT_EQ(parser.Parse(line), Result::kCommand);
  EXPECT_EQ(parser.args()[1].size(), options.max_inline_bytes - 5);
}

TEST(RespParserTest, LargeRequestInManyPiecesResumes) {
  // 2000 arguments arriving 7 bytes at a time: parsed once, correctly.
  std::string stream = "*2000\r\n";
  for (int i = 0; i < 2000; ++i) {
    const std::string arg = "arg" + std::to_string(i);
    stream += "$" + std::to_string(arg.size()) + "\r\n" + arg + "\r\n";
  }
  RespParser parser(RespOptions{});
  std::string input;
  bool done = false;
  for (size_t i = 0; i < stream.size(); i += 7) {
    input.append(stream, i, 7);
    const Result r = parser.Parse(input);
    ASSERT_NE(r, Result::kError);
    if (r == Result::kCommand) {
      ASSERT_EQ(parser.args().size(), 2000u);
      EXPECT_EQ(parser.args()[1999], "arg1999");
      EXPECT_EQ(parser.consumed(), stream.size());
      done = true;
    }
  }
  EXPECT_TRUE(done);
}

TEST(RespParserTest, RandomGarbageNeverCrashes) {
  std::mt19937 rng(12345);
  const std::string alphabet = "*$\r\n0123456789-+ \"'\\xab";
  for (int round = 0; round < 3000; ++round) {
    std::string input;
    const int n = static_cast<int>(rng() % 64);
    for (int i = 0; i < n; ++i) input.push_back(alphabet[rng() % alphabet.size()]);
    RespParser parser(RespOptions{});
    size_t guard = 0;
    while (!input.empty() && guard++ < 100) {
      const Result r = parser.Parse(input);
      if (r != Result::kCommand) break;
      ASSERT_GT(parser.consumed(), 0u);
      ASSERT_LE(parser.consumed(), input.size());
      input.erase(0, parser.consumed());
    }
  }
}

}  // namespace
}  // namespace percore
