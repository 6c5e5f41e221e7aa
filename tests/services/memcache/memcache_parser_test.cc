#include "services/memcache/memcache_parser.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/memcache/item.h"

namespace percore::memcache {
namespace {

const char* KindName(CommandKind kind) {
  static const char* const kNames[] = {
      "get", "gets", "gat", "gats", "set", "add", "replace", "append", "prepend", "cas",
      "touch", "delete", "incr", "decr", "flush_all", "stats", "version", "verbosity", "quit"};
  return kNames[static_cast<int>(kind)];
}

std::string Sv(std::string_view s) { return std::string(s); }

// A canonical text form of a parse result, so tests compare one string.
std::string Describe(const Command& cmd) {
  if (cmd.error != ParseError::kNone) {
    std::string reply = Sv(ErrorReply(cmd.error));
    reply.resize(reply.size() - 2);
    return absl::StrCat("[", reply, cmd.noreply ? " noreply" : "", "]");
  }
  std::string out = KindName(cmd.kind);
  switch (cmd.kind) {
    case CommandKind::kGet:
    case CommandKind::kGets:
    case CommandKind::kGat:
    case CommandKind::kGats: {
      if (cmd.kind == CommandKind::kGat || cmd.kind == CommandKind::kGats) {
        absl::StrAppend(&out, " exp=", cmd.exptime);
      }
      std::string_view keys = cmd.keys, key;
      while (NextKey(&keys, &key)) absl::StrAppend(&out, " <", Sv(key), ">");
      break;
    }
    case CommandKind::kSet:
    case CommandKind::kAdd:
    case CommandKind::kReplace:
    case CommandKind::kAppend:
    case CommandKind::kPrepend:
    case CommandKind::kCas:
      absl::StrAppend(&out, " <", Sv(cmd.key), "> f=", cmd.flags, " exp=", cmd.exptime);
      if (cmd.kind == CommandKind::kCas) absl::StrAppend(&out, " cas=", cmd.cas_unique);
      absl::StrAppend(&out, " data=<", Sv(cmd.value), ">");
      break;
    case CommandKind::kTouch:
      absl::StrAppend(&out, " <", Sv(cmd.key), "> exp=", cmd.exptime);
      break;
    case CommandKind::kDelete:
      absl::StrAppend(&out, " <", Sv(cmd.key), ">");
      break;
    case CommandKind::kIncr:
    case CommandKind::kDecr:
      absl::StrAppend(&out, " <", Sv(cmd.key), "> by=", cmd.delta);
      break;
    case CommandKind::kFlushAll:
      if (cmd.has_delay) absl::StrAppend(&out, " delay=", cmd.exptime);
      break;
    case CommandKind::kStats:
      absl::StrAppend(&out, " args=<", Sv(cmd.args), ">");
      break;
    default:
      break;
  }
  if (cmd.noreply) out += " noreply";
  return out;
}

// Feeds `input` as a connection would: the buffer keeps unconsumed bytes and grows by the
// next piece. Returns every result in order; a fatal one ends with "CLOSE".
std::vector<std::string> Feed(MemcacheParser& parser, const std::vector<std::string>& pieces) {
  std::vector<std::string> out;
  std::string buffer;
  for (const std::string& piece : pieces) {
    buffer += piece;
    for (;;) {
      Command cmd;
      size_t consumed = 0;
      const ParseStatus status = parser.Parse(buffer, &cmd, &consumed);
      EXPECT_LE(consumed, buffer.size());
      if (status == ParseStatus::kClose) {
        out.push_back(Describe(cmd));
        out.push_back("CLOSE");
        return out;
      }
      if (status == ParseStatus::kCommand) out.push_back(Describe(cmd));
      buffer.erase(0, consumed);
      if (status == ParseStatus::kNeedMore) break;
    }
  }
  return out;
}

std::vector<std::string> ParseAll(std::string_view input, ParserLimits limits = {}) {
  MemcacheParser parser(limits);
  return Feed(parser, {std::string(input)});
}

using Results = std::vector<std::string>;

TEST(MemcacheParserTest, Retrieval) {
  EXPECT_EQ(ParseAll("get a\r\n"), Results{"get <a>"});
  EXPECT_EQ(ParseAll("get a b  c\r\n"), (Results{"get <a> <b> <c>"}));
  EXPECT_EQ(ParseAll("gets a b\r\n"), Results{"gets <a> <b>"});
  EXPECT_EQ(ParseAll("gat 100 a b\r\n"), Results{"gat exp=100 <a> <b>"});
  EXPECT_EQ(ParseAll("gats -1 a\r\n"), Results{"gats exp=-1 <a>"});
  EXPECT_EQ(ParseAll("gat 10\r\n"), Results{"gat exp=10"});  // no keys: just END
  EXPECT_EQ(ParseAll("  get   a  \r\n"), Results{"get <a>"});
  EXPECT_EQ(ParseAll("get a\n"), Results{"get <a>"});          // bare \n ends a line
  EXPECT_EQ(ParseAll("get a\r\r\n"), Results{"get <a\r>"});    // only one \r is stripped
  EXPECT_EQ(ParseAll("get noreply\r\n"), Results{"get <noreply>"});
  std::string many = "get";
  for (int i = 0; i < 100; ++i) absl::StrAppend(&many, " k", i);
  Results parsed = ParseAll(many + "\r\n");
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_NE(parsed[0].find("<k0> <k1>"), std::string::npos);
  EXPECT_NE(parsed[0].find("<k99>"), std::string::npos);
}

TEST(MemcacheParserTest, RetrievalErrors) {
  EXPECT_EQ(ParseAll("get\r\n"), Results{"[ERROR]"});
  EXPECT_EQ(ParseAll("gets \r\n"), Results{"[ERROR]"});
  EXPECT_EQ(ParseAll("gat\r\n"), Results{"[ERROR]"});
  EXPECT_EQ(ParseAll("gat a\r\n"), Results{"[CLIENT_ERROR invalid exptime argument]"});
  EXPECT_EQ(ParseAll("gats x a\r\n"), Results{"[CLIENT_ERROR invalid exptime argument]"});
  const std::string max_key(kMaxKeySize, 'k');
  EXPECT_EQ(ParseAll("get " + max_key + "\r\n"), Results{"get <" + max_key + ">"});
  EXPECT_EQ(ParseAll("get a " + max_key + "k\r\n"),
            Results{"[CLIENT_ERROR bad command line format]"});
  EXPECT_EQ(ParseAll("gat 1 " + max_key + "k\r\n"),
            Results{"[CLIENT_ERROR bad command line format]"});
}

TEST(MemcacheParserTest, Storage) {
  EXPECT_EQ(ParseAll("set k 5 100 3\r\nabc\r\n"), Results{"set <k> f=5 exp=100 data=<abc>"});
  EXPECT_EQ(ParseAll("add k 0 0 0\r\n\r\n"), Results{"add <k> f=0 exp=0 data=<>"});
  EXPECT_EQ(ParseAll("replace k 4294967295 -1 2\r\nxy\r\n"),
            Results{"replace <k> f=4294967295 exp=-1 data=<xy>"});
  EXPECT_EQ(ParseAll("append k 0 0 1 noreply\r\nx\r\n"),
            Results{"append <k> f=0 exp=0 data=<x> noreply"});
  EXPECT_EQ(ParseAll("prepend k 0 0 1\r\nx\r\n"), Results{"prepend <k> f=0 exp=0 data=<x>"});
  EXPECT_EQ(ParseAll("cas k 1 2 3 18446744073709551615\r\nabc\r\n"),
            Results{"cas <k> f=1 exp=2 cas=18446744073709551615 data=<abc>"});
  EXPECT_EQ(ParseAll("cas k 1 2 1 9 noreply\r\na\r\n"),
            Results{"cas <k> f=1 exp=2 cas=9 data=<a> noreply"});
  // Data may hold anything, \r\n included; only its length counts.
  EXPECT_EQ(ParseAll("set k 0 0 7\r\nget x\r\n\r\n"), Results{"set <k> f=0 exp=0 data=<get x\r\n>"});
  // A sixth token other than noreply is ignored, as memcached does.
  EXPECT_EQ(ParseAll("set k 0 0 1 norepl\r\nx\r\n"), Results{"set <k> f=0 exp=0 data=<x>"});
  EXPECT_EQ(ParseAll("set k 0 0 1 \r\nx\r\n"), Results{"set <k> f=0 exp=0 data=<x>"});
  EXPECT_EQ(ParseAll("set k 0 0 1\nx\r\n"), Results{"set <k> f=0 exp=0 data=<x>"});
}

TEST(MemcacheParserTest, StorageErrors) {
  const std::string long_key(kMaxKeySize + 1, 'k');
  // Wrong token counts: ERROR, and the data line is then read as a command (ERROR again).
  EXPECT_EQ(ParseAll("set k 0 0\r\n"), Results{"[ERROR]"});
  EXPECT_EQ(ParseAll("set k 0 0 1 noreply x\r\nx\r\n"), (Results{"[ERROR]", "[ERROR]"}));
  EXPECT_EQ(ParseAll("cas k 0 0 1\r\nx\r\n"), (Results{"[ERROR]", "[ERROR]"}));
  // Malformed numbers and long keys: CLIENT_ERROR, data not skipped (memcached's behaviour).
  for (const std::string& line : std::vector<std::string>{
           "set k x 0 1", "set k -1 0 1", "set k 4294967296 0 1", "set k 0 x 1", "set k 0 0 -1",
        "set k 0 0 x", "set k 0 0 2147483646", "set k 0 0 99999999999",
        "cas k 0 0 1 x", "cas k 0 0 1 -1", "set " + long_key + " 0 0 1", "set k +0 0 1"}) {
    SCOPED_TRACE(line);
    EXPECT_EQ(ParseAll(line + "\r\nx\r\n"),
              (Results{"[CLIENT_ERROR bad command line format]", "[ERROR]"}));
  }
  EXPECT_EQ(ParseAll("set k x 0 1 noreply\r\nx\r\n"),
            (Results{"[CLIENT_ERROR bad command line format noreply]", "[ERROR]"}));
}

TEST(MemcacheParserTest, BadDataChunk) {
  EXPECT_EQ(ParseAll("set k 0 0 2\r\nxyz\r\nget k\r\n"),
            (Results{"[CLIENT_ERROR bad data chunk]", "[ERROR]", "get <k>"}));
  EXPECT_EQ(ParseAll("set k 0 0 1\r\nxyz\r\n"), (Results{"[CLIENT_ERROR bad data chunk]", "[ERROR]"}));
  EXPECT_EQ(ParseAll("set k 0 0 1 noreply\r\nxyz\r\n"),
            (Results{"[CLIENT_ERROR bad data chunk noreply]", "[ERROR]"}));
  EXPECT_EQ(ParseAll("set k 0 0 1\r\nx\n\n"), (Results{"[CLIENT_ERROR bad data chunk]"}));
  EXPECT_EQ(ParseAll("set k 0 0 1\r\nx\r\r"), (Results{"[CLIENT_ERROR bad data chunk]"}));
}

TEST(MemcacheParserTest, TooLargeIsSwallowed) {
  ParserLimits limits;
  limits.max_item_size = ItemFootprint(1, 10);
  EXPECT_EQ(ParseAll("set k 0 0 10\r\n0123456789\r\nget k\r\n", limits),
            (Results{"set <k> f=0 exp=0 data=<0123456789>", "get <k>"}));
  // One byte over: the whole block goes, including a \r\n inside it, and parsing resumes after.
  EXPECT_EQ(ParseAll("set k 0 0 11\r\n0123\r\n67890\r\nget k\r\n", limits),
            (Results{"[SERVER_ERROR object too large for cache]", "get <k>"}));
  EXPECT_EQ(ParseAll("add k 0 0 11 noreply\r\n0123456789X\r\nget k\r\n", limits),
            (Results{"[SERVER_ERROR object too large for cache noreply]", "get <k>"}));
  // Arriving in pieces: nothing of it is buffered, the rest is skipped as it comes.
  MemcacheParser parser(limits);
  EXPECT_EQ(Feed(parser, {"set k 0 0 1000\r\n", std::string(400, 'x'), std::string(600, 'y'),
                         "\r\nget k\r\n"}),
            (Results{"[SERVER_ERROR object too large for cache]", "get <k>"}));
  EXPECT_EQ(parser.swallowing(), 0u);
  MemcacheParser partial(limits);
  Command cmd;
  size_t consumed = 0;
  std::string input = "set k 0 0 1000\r\n" + std::string(100, 'x');
  ASSERT_EQ(partial.Parse(input, &cmd, &consumed), ParseStatus::kCommand);
  EXPECT_EQ(consumed, input.size());
  EXPECT_EQ(partial.swallowing(), 902u);
  EXPECT_EQ(cmd.key, "k");
  EXPECT_EQ(cmd.kind, CommandKind::kSet);
}

TEST(MemcacheParserTest, TruncatedDataWaits) {
  MemcacheParser parser;
  Command cmd;
  size_t consumed = 99;
  for (std::string_view input : {"set k 0 0 5\r\n", "set k 0 0 5\r\nabc", "set k 0 0 5\r\nabcde",
                                 "set k 0 0 5\r\nabcde\r", "set k 0 0 5", "get k"}) {
    EXPECT_EQ(parser.Parse(input, &cmd, &consumed), ParseStatus::kNeedMore) << input;
    EXPECT_EQ(consumed, 0u);
  }
}

TEST(MemcacheParserTest, OtherCommands) {
  EXPECT_EQ(ParseAll("touch k 10\r\n"), Results{"touch <k> exp=10"});
  EXPECT_EQ(ParseAll("touch k -1 noreply\r\n"), Results{"touch <k> exp=-1 noreply"});
  EXPECT_EQ(ParseAll("touch k 10 x\r\n"), Results{"touch <k> exp=10"});
  EXPECT_EQ(ParseAll("delete k\r\n"), Results{"delete <k>"});
  EXPECT_EQ(ParseAll("delete k 0\r\n"), Results{"delete <k>"});
  EXPECT_EQ(ParseAll("delete k noreply\r\n"), Results{"delete <k> noreply"});
  EXPECT_EQ(ParseAll("delete k 0 noreply\r\n"), Results{"delete <k> noreply"});
  EXPECT_EQ(ParseAll("incr k 1\r\n"), Results{"incr <k> by=1"});
  EXPECT_EQ(ParseAll("decr k 18446744073709551615 noreply\r\n"),
            Results{"decr <k> by=18446744073709551615 noreply"});
  EXPECT_EQ(ParseAll("incr k 1 2\r\n"), Results{"incr <k> by=1"});
  EXPECT_EQ(ParseAll("flush_all\r\n"), Results{"flush_all"});
  EXPECT_EQ(ParseAll("flush_all 10\r\n"), Results{"flush_all delay=10"});
  EXPECT_EQ(ParseAll("flush_all -1\r\n"), Results{"flush_all delay=-1"});
  EXPECT_EQ(ParseAll("flush_all noreply\r\n"), Results{"flush_all noreply"});
  EXPECT_EQ(ParseAll("flush_all 10 noreply\r\n"), Results{"flush_all delay=10 noreply"});
  EXPECT_EQ(ParseAll("flush_all 10 x\r\n"), Results{"flush_all delay=10"});
  EXPECT_EQ(ParseAll("stats\r\n"), Results{"stats args=<>"});
  EXPECT_EQ(ParseAll("stats  settings \r\n"), Results{"stats args=<settings>"});
  EXPECT_EQ(ParseAll("version\r\n"), Results{"version"});
  EXPECT_EQ(ParseAll("version x\r\n"), Results{"version"});
  EXPECT_EQ(ParseAll("verbosity 1\r\n"), Results{"verbosity"});
  EXPECT_EQ(ParseAll("verbosity 1 noreply\r\n"), Results{"verbosity noreply"});
  EXPECT_EQ(ParseAll("quit\r\n"), Results{"quit"});
  EXPECT_EQ(ParseAll("quit now\r\n"), Results{"quit"});
}

TEST(MemcacheParserTest, OtherCommandErrors) {
  const std::string long_key(kMaxKeySize + 1, 'k');
  const std::string usage = "[CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]]";
  struct Case {
    std::string line;
    std::string result;
  };
  const Case cases[] = {
      {"", "[ERROR]"},
      {"   ", "[ERROR]"},
      {"bogus", "[ERROR]"},
      {"GET a", "[ERROR]"},
      {"get\ta", "[ERROR]"},
      {"touch k", "[ERROR]"},
      {"touch k 1 2 3", "[ERROR]"},
      {"touch k x", "[CLIENT_ERROR invalid exptime argument]"},
      {"touch k x noreply", "[CLIENT_ERROR invalid exptime argument noreply]"},
      {"touch " + long_key + " 1", "[CLIENT_ERROR bad command line format]"},
      {"delete", "[ERROR]"},
      {"delete k 0 noreply x", "[ERROR]"},
      {"delete k 5", usage},
      {"delete k noreply 0", usage},
      {"delete k 5 noreply", "[CLIENT_ERROR bad command line format.  Usage: delete <key> "
                             "[noreply] noreply]"},
      {"delete " + long_key, "[CLIENT_ERROR bad command line format]"},
      {"incr", "[ERROR]"},
      {"incr k", "[ERROR]"},
      {"decr k 1 2 3", "[ERROR]"},
      {"incr k x", "[CLIENT_ERROR invalid numeric delta argument]"},
      {"incr k -1", "[CLIENT_ERROR invalid numeric delta argument]"},
      {"incr k 18446744073709551616", "[CLIENT_ERROR invalid numeric delta argument]"},
      {"incr k x noreply", "[CLIENT_ERROR invalid numeric delta argument noreply]"},
      {"incr " + long_key + " 1", "[CLIENT_ERROR bad command line format]"},
      {"flush_all x", "[CLIENT_ERROR invalid exptime argument]"},
      {"flush_all x noreply", "[CLIENT_ERROR invalid exptime argument noreply]"},
      {"flush_all 1 2 3", "[ERROR]"},
      {"verbosity", "[ERROR]"},
      {"verbosity 1 2 3", "[ERROR]"},
      {"verbosity x", "[CLIENT_ERROR bad command line format]"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    EXPECT_EQ(ParseAll(c.line + "\r\n"), Results{c.result});
  }
}

TEST(MemcacheParserTest, LineTooLong) {
  // Without a newline: fatal once more than max_line bytes are buffered.
  EXPECT_EQ(ParseAll(std::string(2048, 'x')), Results{});
  EXPECT_EQ(ParseAll(std::string(2049, 'x')), (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
  EXPECT_EQ(ParseAll("set " + std::string(3000, 'k')),
            (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
  // With a newline the same bound applies, so the outcome does not depend on how it arrives.
  EXPECT_EQ(ParseAll(std::string(3000, 'x') + "\r\n"),
            (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
  EXPECT_EQ(ParseAll("set k 0 0 1" + std::string(2040, ' ') + "\r\nx\r\n"),
            (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
  // Retrieval lines carry many keys: they may be longer.
  std::string get = "get";
  while (get.size() < 10'000) get += " key" + std::to_string(get.size());
  Results parsed = ParseAll(get + "\r\n");
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0].substr(0, 8), "get <key");
  EXPECT_EQ(ParseAll(get), Results{});  // still waiting for its end
  ParserLimits limits;
  limits.max_retrieval_line = 4096;
  EXPECT_EQ(ParseAll(get, limits), (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
  EXPECT_EQ(ParseAll("gats 0 " + std::string(5000, 'k') + "\r\n", limits),
            (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
}

TEST(MemcacheParserTest, LineBoundDoesNotDependOnWhereReadsSplitIt) {
  // Leading spaces past max_line: until the first token arrives, the line may still be a
  // retrieval line and is held only to the retrieval bound, as it is when it arrives whole.
  ParserLimits limits;
  limits.max_line = 64;
  limits.max_retrieval_line = 128;
  const std::string get = std::string(100, ' ') + "get a\r\n";
  const std::string set = std::string(100, ' ') + "set a 0 0 1\r\nx\r\n";
  const std::string blank = std::string(100, ' ') + "\r\n";
  const std::string too_long = std::string(200, ' ') + "get a\r\n";
  for (const std::string& input : {get, set, blank, too_long}) {
    SCOPED_TRACE(input.size());
    const Results whole = ParseAll(input, limits);
    std::vector<std::string> bytes;
    for (char c : input) bytes.emplace_back(1, c);
    MemcacheParser parser(limits);
    EXPECT_EQ(Feed(parser, bytes), whole);
  }
  EXPECT_EQ(ParseAll(get, limits), Results{"get <a>"});
  EXPECT_EQ(ParseAll(set, limits), (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
  EXPECT_EQ(ParseAll(too_long, limits), (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
  // A first token that cannot start a retrieval command gets the ordinary bound at once.
  EXPECT_EQ(ParseAll("sex" + std::string(70, ' '), limits), (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
  EXPECT_EQ(ParseAll("ge" + std::string(70, ' '), limits), (Results{"[CLIENT_ERROR line too long]", "CLOSE"}));
  EXPECT_EQ(ParseAll("get" + std::string(70, ' '), limits), Results{});
}

TEST(MemcacheParserTest, Pipelined) {
  const std::string input =
      "set a 0 0 1\r\n1\r\nget a b\r\nincr n 5\r\nbogus\r\ndelete a\r\n"
      "cas a 0 0 2 7\r\nxy\r\ntouch a 1\r\nflush_all\r\nversion\r\nquit\r\n";
  const Results expected = {"set <a> f=0 exp=0 data=<1>", "get <a> <b>", "incr <n> by=5", "[ERROR]",
                            "delete <a>", "cas <a> f=0 exp=0 cas=7 data=<xy>", "touch <a> exp=1",
                            "flush_all", "version", "quit"};
  EXPECT_EQ(ParseAll(input), expected);
}

// Every request and every error, cut at every byte (two pieces) and fed a byte at a time:
// the results never depend on how the bytes arrive.
TEST(MemcacheParserTest, SplitAtEveryByte) {
  ParserLimits limits;
  limits.max_item_size = ItemFootprint(1, 20);
  const std::string input =
      "set a 0 0 5\r\nhello\r\nget a b\r\ngets a\r\ngat 10 a\r\ngats 0 a b\r\n"
      "add b 1 2 3 noreply\r\nxyz\r\nreplace a 0 0 0\r\n\r\nappend a 0 0 1\r\n!\r\n"
      "prepend a 0 0 1\r\n^\r\ncas a 0 0 1 42\r\nq\r\ntouch a 5\r\ndelete a 0\r\n"
      "incr n 1\r\ndecr n 2 noreply\r\nflush_all 5\r\nstats\r\nversion\r\nverbosity 1\r\n"
      "bogus\r\nset a 0 0 2\r\nabc\r\nset a 0 0 21\r\n" + std::string(21, 'z') +
      "\r\nincr n x\r\ntouch a x\r\ndelete a 9\r\nset a x 0 1\r\nget a\n"
      "set k 0 0 3\nabc\r\nquit\r\n";
  const Results whole = ParseAll(input, limits);
  ASSERT_EQ(whole.size(), 29u) << ::testing::PrintToString(whole);
  for (size_t cut = 1; cut < input.size(); ++cut) {
    MemcacheParser parser(limits);
    ASSERT_EQ(Feed(parser, {input.substr(0, cut), input.substr(cut)}), whole) << "cut at " << cut;
  }
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  MemcacheParser parser(limits);
  EXPECT_EQ(Feed(parser, bytes), whole);
}

// Everything a result carries for a retrieval, views as they are (`keys` keeps its spaces):
// what the one-key fast path must reproduce exactly.
std::string DescribeRaw(ParseStatus status, const Command& cmd, size_t consumed) {
  return absl::StrCat(static_cast<int>(status), " ", Describe(cmd), " key=<", Sv(cmd.key),
                      "> keys=<", Sv(cmd.keys), "> used=", consumed);
}

// Parses `input` (fed in `pieces` cut at `cut`, 0: whole) with the fast path on or off.
std::vector<std::string> ParseRaw(std::string_view input, bool fast, size_t cut = 0,
                                  ParserLimits limits = {}) {
  limits.single_get_fast_path = fast;
  MemcacheParser parser(limits);
  std::vector<std::string> out;
  std::string buffer(input.substr(0, cut == 0 ? input.size() : cut));
  size_t fed = buffer.size();
  for (;;) {
    Command cmd;
    size_t consumed = 0;
    const ParseStatus status = parser.Parse(buffer, &cmd, &consumed);
    if (status != ParseStatus::kNeedMore) out.push_back(DescribeRaw(status, cmd, consumed));
    if (status == ParseStatus::kClose) return out;
    buffer.erase(0, consumed);
    if (status == ParseStatus::kNeedMore) {
      if (fed == input.size()) return out;
      buffer.append(input.substr(fed));
      fed = input.size();
    }
  }
}

void ExpectFastAgrees(std::string_view input, ParserLimits limits = {}) {
  const std::vector<std::string> strict = ParseRaw(input, false, 0, limits);
  EXPECT_EQ(ParseRaw(input, true, 0, limits), strict) << ::testing::PrintToString(std::string(input));
  for (size_t cut = 1; cut < input.size(); ++cut) {
    EXPECT_EQ(ParseRaw(input, true, cut, limits), strict) << "cut at " << cut;
  }
}

TEST(MemcacheParserTest, OneKeyGetSetsKey) {
  for (bool fast : {true, false}) {
    EXPECT_EQ(ParseRaw("get abc\r\n", fast), Results{"1 get <abc> key=<abc> keys=< abc> used=9"});
    EXPECT_EQ(ParseRaw("gets abc\n", fast), Results{"1 gets <abc> key=<abc> keys=< abc> used=9"});
    // More than one key: no single key.
    EXPECT_EQ(ParseRaw("get a b\r\n", fast), Results{"1 get <a> <b> key=<> keys=< a b> used=9"});
    EXPECT_EQ(ParseRaw("gat 1 a\r\n", fast), Results{"1 gat exp=1 <a> key=<a> keys=< a> used=9"});
  }
}

// The one-key fast path against the general tokenizer: the same results on lines it takes,
// on lines that look almost like them, and wherever the bytes are cut.
TEST(MemcacheParserTest, OneKeyFastPathAgreesWithTokenizer) {
  const std::string max_key(kMaxKeySize, 'k');
  const std::string shapes[] = {
      "get a\r\n", "gets a\r\n", "get a\n", "get a\r\r\n", "get " + max_key + "\r\n",
      "gets " + max_key + "\r\n", "get " + max_key + "k\r\n", "gets " + max_key + "k\r\n",
      "get a b\r\n", "get  a\r\n", "get a \r\n", " get a\r\n", "get\ta\r\n", "get a\tb\r\n",
      "get\r\n", "get \r\n", "gets\r\n", "gets \r\n", "GET a\r\n", "getx a\r\n",
      "gets  a\r\n", "get noreply\r\n", "get a\r\nget b\r\ngets c\r\n",
      "get a\r\nset a 0 0 1\r\nx\r\nget a\r\n",
  };
  for (const std::string& input : shapes) ExpectFastAgrees(input);
  // A bad byte at every position of a fast-path request.
  const std::string base = "gets somekey\r\nget k\r\n";
  for (size_t i = 0; i < base.size(); ++i) {
    for (char bad : {' ', '\t', '\r', '\n', '\0', 'x'}) {
      std::string input = base;
      input[i] = bad;
      ExpectFastAgrees(input);
    }
  }
}

// The retrieval line bound applies the same way with and without the fast path.
TEST(MemcacheParserTest, OneKeyFastPathKeepsTheLineBound) {
  for (size_t max_retrieval_line : {8, 9, 10, 11}) {
    ParserLimits limits;
    limits.max_line = 6;
    limits.max_retrieval_line = max_retrieval_line;
    for (const char* input : {"get abcd\r\n", "gets abcd\r\n", "get abcde\n", "get abc\r\n"}) {
      ExpectFastAgrees(input, limits);
    }
  }
}

TEST(MemcacheParserTest, GarbageNeverCrashes) {
  uint32_t seed = 12345;
  for (int round = 0; round < 2000; ++round) {
    std::string input;
    const int n = static_cast<int>(seed % 300);
    for (int i = 0; i < n; ++i) {
      seed = seed * 1103515245 + 12345;
      const char alphabet[] = "setgadlcr 0123456789\r\n-xnoreplyq";
      input += alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
    }
    seed = seed * 1103515245 + 12345;
    ParserLimits limits;
    limits.max_line = 64;
    limits.max_item_size = ItemFootprint(1, 16);
    MemcacheParser parser(limits);
    Feed(parser, {input.substr(0, seed % (input.size() + 1)), input.substr(seed % (input.size() + 1))});
  }
}

}  // namespace
}  // namespace percore::memcache
