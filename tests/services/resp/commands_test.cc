#include "services/resp/commands.h"

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/resp/command_table.h"
#include "services/resp/shard_call.h"
#include "services/resp/string_store.h"

namespace percore {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Runs requests against one store with a clock the test moves, and returns raw replies.
class CommandsTest : public ::testing::Test {
 protected:
  CommandsTest() {
    view_.options = &options_;
    view_.keyspace = [this] {
      return KeyspaceFigures{1, store_.key_count(), store_.expiring_count()};
    };
    view_.connected_clients = &clients_;
    view_.total_connections = &total_;
    session_.server = &view_;
    session_.client_id = 42;
  }

  std::string Run(std::initializer_list<std::string_view> args) {
    std::vector<std::string_view> argv(args);
    Buffer out;
    RunCommandLocally(argv, store_, session_, out);
    return std::string(out.view());
  }

  static std::string Bulk(std::string_view s) {
    return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
  }
  static std::string Int(int64_t n) { return ":" + std::to_string(n) + "\r\n"; }
  static std::string Err(std::string_view s) { return "-" + std::string(s) + "\r\n"; }

  int64_t now_ms_ = 5'000'000;
  RespOptions options_;
  StringStore store_{[this] { return now_ms_; }};
  std::atomic<int64_t> clients_{3};
  std::atomic<uint64_t> total_{7};
  ServerView view_;
  SessionContext session_;
};

const std::string kOk = "+OK\r\n";
const std::string kNil = "$-1\r\n";
const std::string kWrongType =
    "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const std::string kNotInt = "-ERR value is not an integer or out of range\r\n";
const std::string kSyntax = "-ERR syntax error\r\n";

TEST_F(CommandsTest, UnknownCommand) {
  EXPECT_EQ(Run({"foo"}), "-ERR unknown command 'foo', with args beginning with: \r\n");
  EXPECT_EQ(Run({"foo", "a", "b"}),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
  EXPECT_EQ(Run({"FOO", "x\r\ny"}),
            "-ERR unknown command 'FOO', with args beginning with: 'x  y' \r\n");
  // Long arguments are cut at about 128 bytes in all.
  const std::string longarg(300, 'x');
  const std::string reply = Run({"nope", longarg, "more"});
  EXPECT_EQ(reply, "-ERR unknown command 'nope', with args beginning with: '" +
                       std::string(128, 'x') + "' \r\n");
  const std::string longname(200, 'n');
  EXPECT_THAT(Run({longname}), StartsWith("-ERR unknown command '" + std::string(128, 'n') + "',"));
}

TEST_F(CommandsTest, WrongArity) {
  EXPECT_EQ(Run({"get"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Run({"GET", "a", "b"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Run({"set", "k"}), "-ERR wrong number of arguments for 'set' command\r\n");
  EXPECT_EQ(Run({"mset", "a", "1", "b"}), "-ERR wrong number of arguments for 'mset' command\r\n");
  EXPECT_EQ(Run({"mset", "a"}), "-ERR wrong number of arguments for 'mset' command\r\n");
  EXPECT_EQ(Run({"del"}), "-ERR wrong number of arguments for 'del' command\r\n");
  EXPECT_EQ(Run({"ping", "a", "b"}), "-ERR wrong number of arguments for 'ping' command\r\n");
  EXPECT_EQ(Run({"dbsize", "x"}), "-ERR wrong number of arguments for 'dbsize' command\r\n");
  EXPECT_EQ(Run({"config"}), "-ERR wrong number of arguments for 'config' command\r\n");
  EXPECT_EQ(Run({"config", "get"}),
            "-ERR wrong number of arguments for 'config|get' command\r\n");
  EXPECT_EQ(Run({"client", "setname"}),
            "-ERR wrong number of arguments for 'client|setname' command\r\n");
  EXPECT_EQ(Run({"client", "getname", "x"}),
            "-ERR wrong number of arguments for 'client|getname' command\r\n");
  EXPECT_EQ(Run({"command", "count", "x"}),
            "-ERR wrong number of arguments for 'command|count' command\r\n");
}

TEST_F(CommandsTest, UnknownSubcommand) {
  EXPECT_EQ(Run({"config", "set", "a", "b"}),
            "-ERR unknown subcommand 'set'. Try CONFIG HELP.\r\n");
  EXPECT_EQ(Run({"client", "kill"}), "-ERR unknown subcommand 'kill'. Try CLIENT HELP.\r\n");
  EXPECT_EQ(Run({"command", "bogus"}), "-ERR unknown subcommand 'bogus'. Try COMMAND HELP.\r\n");
}

TEST_F(CommandsTest, CaseInsensitiveNames) {
  EXPECT_EQ(Run({"PiNg"}), "+PONG\r\n");
  EXPECT_EQ(Run({"CoNfIg", "GeT", "databases"}), "*2\r\n" + Bulk("databases") + Bulk("1"));
}

// GET and SET are found without the table scan: in any letter case, and only with a valid
// argument count (anything else is ResolveCommand's to answer).
TEST(ResolveGetOrSetTest, AgreesWithFindCommand) {
  for (std::string_view name : {"get", "GET", "gEt"}) {
    const std::vector<std::string_view> args = {name, "k"};
    EXPECT_EQ(ResolveGetOrSet(args), FindCommand("get")) << name;
    EXPECT_EQ(FindCommand(name), FindCommand("get")) << name;
  }
  for (std::string_view name : {"set", "SET", "SeT"}) {
    const std::vector<std::string_view> args = {name, "k", "v", "EX", "1"};
    EXPECT_EQ(ResolveGetOrSet(args), FindCommand("set")) << name;
    EXPECT_EQ(FindCommand(name), FindCommand("set")) << name;
  }
  ASSERT_NE(FindCommand("get"), nullptr);
  EXPECT_EQ(FindCommand("get")->name, "get");
  EXPECT_EQ(FindCommand("set")->name, "set");
  const std::vector<std::string_view> get_args = {"get", "k", "extra"};
  EXPECT_EQ(ResolveGetOrSet(CommandArgs(get_args.data(), 1)), nullptr);
  EXPECT_EQ(ResolveGetOrSet(CommandArgs(get_args.data(), 3)), nullptr);
  const std::vector<std::string_view> set_args = {"set", "k"};
  EXPECT_EQ(ResolveGetOrSet(set_args), nullptr);
  // Near misses: other lengths, and bytes that differ from the letters in more than the case
  // bit (the high bit, or bits below it).
  using namespace std::string_literals;
  for (std::string_view name : {"get\0"s, "\0get"s, "ge"s, "gets"s, "g\x05t"s, "\xc7\xc5\xd4"s,
                                "'et"s, "gE\x14"s, "gFt"s, "ges"s}) {
    const std::vector<std::string_view> args = {name, "k"};
    EXPECT_EQ(ResolveGetOrSet(args), nullptr) << name;
    EXPECT_EQ(FindCommand(name), nullptr) << name;
  }
}

TEST_F(CommandsTest, GetSetInAnyCase) {
  EXPECT_EQ(Run({"SeT", "k", "v"}), kOk);
  EXPECT_EQ(Run({"gEt", "k"}), Bulk("v"));
  EXPECT_EQ(Run({"GET", "k", "x"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Run({"SET", "k"}), "-ERR wrong number of arguments for 'set' command\r\n");
}

TEST_F(CommandsTest, PingEcho) {
  EXPECT_EQ(Run({"ping"}), "+PONG\r\n");
  EXPECT_EQ(Run({"ping", "hi there"}), Bulk("hi there"));
  EXPECT_EQ(Run({"echo", std::string_view("a\0b", 3)}), Bulk(std::string("a\0b", 3)));
  EXPECT_EQ(Run({"echo"}), "-ERR wrong number of arguments for 'echo' command\r\n");
}

TEST_F(CommandsTest, GetSet) {
  EXPECT_EQ(Run({"get", "k"}), kNil);
  EXPECT_EQ(Run({"set", "k", "v"}), kOk);
  EXPECT_EQ(Run({"get", "k"}), Bulk("v"));
  EXPECT_EQ(Run({"set", "k", ""}), kOk);
  EXPECT_EQ(Run({"get", "k"}), Bulk(""));
}

TEST_F(CommandsTest, SetNxXx) {
  EXPECT_EQ(Run({"set", "k", "1", "XX"}), kNil);
  EXPECT_EQ(Run({"set", "k", "1", "nx"}), kOk);
  EXPECT_EQ(Run({"set", "k", "2", "NX"}), kNil);
  EXPECT_EQ(Run({"set", "k", "3", "xx"}), kOk);
  EXPECT_EQ(Run({"get", "k"}), Bulk("3"));
  EXPECT_EQ(Run({"set", "k", "4", "nx", "nx"}), kNil);  // repeating a flag is allowed
  EXPECT_EQ(Run({"set", "k", "4", "nx", "xx"}), kSyntax);
  EXPECT_EQ(Run({"set", "k", "4", "xx", "nx"}), kSyntax);
}

TEST_F(CommandsTest, SetExpiry) {
  EXPECT_EQ(Run({"set", "k", "v", "EX", "10"}), kOk);
  EXPECT_EQ(Run({"ttl", "k"}), Int(10));
  EXPECT_EQ(Run({"pttl", "k"}), Int(10000));
  EXPECT_EQ(Run({"set", "k", "v", "px", "1500"}), kOk);
  EXPECT_EQ(Run({"pttl", "k"}), Int(1500));
  EXPECT_EQ(Run({"ttl", "k"}), Int(2));  // rounded like Redis
  now_ms_ += 1500;
  EXPECT_EQ(Run({"get", "k"}), kNil);
  EXPECT_EQ(Run({"set", "k", "v", "ex", "100"}), kOk);
  EXPECT_EQ(Run({"set", "k", "w", "keepttl"}), kOk);
  EXPECT_EQ(Run({"ttl", "k"}), Int(100));
  EXPECT_EQ(Run({"set", "k", "x"}), kOk);
  EXPECT_EQ(Run({"ttl", "k"}), Int(-1));
}

TEST_F(CommandsTest, SetExpiryErrors) {
  EXPECT_EQ(Run({"set", "k", "v", "EX"}), kSyntax);
  EXPECT_EQ(Run({"set", "k", "v", "EX", "abc"}), kNotInt);
  EXPECT_EQ(Run({"set", "k", "v", "EX", "0"}),
            "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(Run({"set", "k", "v", "PX", "-5"}),
            "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(Run({"set", "k", "v", "EX", "9223372036854775807"}),
            "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(Run({"set", "k", "v", "PX", "9223372036854775807"}),
            "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(Run({"set", "k", "v", "EX", "1", "PX", "1"}), kSyntax);
  EXPECT_EQ(Run({"set", "k", "v", "KEEPTTL", "EX", "1"}), kSyntax);
  EXPECT_EQ(Run({"set", "k", "v", "EX", "1", "KEEPTTL"}), kSyntax);
  EXPECT_EQ(Run({"set", "k", "v", "bogus"}), kSyntax);
  // Syntax is checked before the number.
  EXPECT_EQ(Run({"set", "k", "v", "EX", "abc", "bogus"}), kSyntax);
  EXPECT_EQ(Run({"exists", "k"}), Int(0));
}

TEST_F(CommandsTest, SetExAtPxAt) {
  EXPECT_EQ(Run({"set", "k", "v", "EXAT", "1"}), kOk);  // long past: born expired
  EXPECT_EQ(Run({"get", "k"}), kNil);
  EXPECT_EQ(Run({"set", "k", "v", "PXAT", "99999999999999"}), kOk);
  EXPECT_EQ(Run({"get", "k"}), Bulk("v"));
  EXPECT_EQ(Run({"set", "k", "v", "EXAT", "0"}),
            "-ERR invalid expire time in 'set' command\r\n");
}

TEST_F(CommandsTest, SetGetOption) {
  EXPECT_EQ(Run({"set", "k", "a", "GET"}), kNil);
  EXPECT_EQ(Run({"set", "k", "b", "get"}), Bulk("a"));
  EXPECT_EQ(Run({"set", "k", "c", "NX", "GET"}), Bulk("b"));  // not set; old value shown
  EXPECT_EQ(Run({"get", "k"}), Bulk("b"));
  store_.CreateOfType("l", ValueType::kList);
  EXPECT_EQ(Run({"set", "l", "x", "GET"}), kWrongType);
  EXPECT_EQ(Run({"type", "l"}), "+list\r\n");
}

TEST_F(CommandsTest, GetSetCommand) {
  EXPECT_EQ(Run({"getset", "k", "a"}), kNil);
  EXPECT_EQ(Run({"getset", "k", "b"}), Bulk("a"));
  EXPECT_EQ(Run({"set", "t", "v", "ex", "100"}), kOk);
  EXPECT_EQ(Run({"getset", "t", "w"}), Bulk("v"));
  EXPECT_EQ(Run({"ttl", "t"}), Int(-1));
  store_.CreateOfType("h", ValueType::kHash);
  EXPECT_EQ(Run({"getset", "h", "x"}), kWrongType);
  EXPECT_EQ(Run({"getset", "k"}), "-ERR wrong number of arguments for 'getset' command\r\n");
}

TEST_F(CommandsTest, WrongTypeOnStringCommands) {
  store_.CreateOfType("s", ValueType::kSet);
  EXPECT_EQ(Run({"get", "s"}), kWrongType);
  EXPECT_EQ(Run({"incr", "s"}), kWrongType);
  EXPECT_EQ(Run({"incrby", "s", "2"}), kWrongType);
  EXPECT_EQ(Run({"decr", "s"}), kWrongType);
  EXPECT_EQ(Run({"decrby", "s", "2"}), kWrongType);
  EXPECT_EQ(Run({"append", "s", "x"}), kWrongType);
  EXPECT_EQ(Run({"strlen", "s"}), kWrongType);
  // Key commands work on any type; MGET reads a non-string as nil.
  EXPECT_EQ(Run({"mget", "s"}), "*1\r\n" + kNil);
  EXPECT_EQ(Run({"type", "s"}), "+set\r\n");
  EXPECT_EQ(Run({"exists", "s"}), Int(1));
  EXPECT_EQ(Run({"expire", "s", "10"}), Int(1));
  EXPECT_EQ(Run({"ttl", "s"}), Int(10));
  EXPECT_EQ(Run({"del", "s"}), Int(1));
}

TEST_F(CommandsTest, IncrDecr) {
  EXPECT_EQ(Run({"incr", "n"}), Int(1));
  EXPECT_EQ(Run({"incr", "n"}), Int(2));
  EXPECT_EQ(Run({"incrby", "n", "10"}), Int(12));
  EXPECT_EQ(Run({"incrby", "n", "-20"}), Int(-8));
  EXPECT_EQ(Run({"decr", "n"}), Int(-9));
  EXPECT_EQ(Run({"decrby", "n", "-9"}), Int(0));
  EXPECT_EQ(Run({"get", "n"}), Bulk("0"));
  EXPECT_EQ(Run({"decr", "fresh"}), Int(-1));
}

TEST_F(CommandsTest, IncrErrors) {
  EXPECT_EQ(Run({"set", "s", "abc"}), kOk);
  EXPECT_EQ(Run({"incr", "s"}), kNotInt);
  EXPECT_EQ(Run({"set", "s", "007"}), kOk);
  EXPECT_EQ(Run({"incr", "s"}), kNotInt);
  EXPECT_EQ(Run({"set", "s", "1.5"}), kOk);
  EXPECT_EQ(Run({"decr", "s"}), kNotInt);
  EXPECT_EQ(Run({"incrby", "n", "x"}), kNotInt);
  EXPECT_EQ(Run({"incrby", "n", "99999999999999999999"}), kNotInt);
  EXPECT_EQ(Run({"decrby", "n", ""}), kNotInt);
  EXPECT_EQ(Run({"set", "big", "9223372036854775807"}), kOk);
  EXPECT_EQ(Run({"incr", "big"}), "-ERR increment or decrement would overflow\r\n");
  EXPECT_EQ(Run({"set", "small", "-9223372036854775808"}), kOk);
  EXPECT_EQ(Run({"decr", "small"}), "-ERR increment or decrement would overflow\r\n");
  EXPECT_EQ(Run({"decrby", "n", "-9223372036854775808"}), "-ERR decrement would overflow\r\n");
  EXPECT_EQ(Run({"incr"}), "-ERR wrong number of arguments for 'incr' command\r\n");
  EXPECT_EQ(Run({"incrby", "n"}), "-ERR wrong number of arguments for 'incrby' command\r\n");
  EXPECT_EQ(Run({"decr", "a", "b"}), "-ERR wrong number of arguments for 'decr' command\r\n");
  EXPECT_EQ(Run({"decrby", "n"}), "-ERR wrong number of arguments for 'decrby' command\r\n");
}

TEST_F(CommandsTest, AppendStrlen) {
  EXPECT_EQ(Run({"strlen", "k"}), Int(0));
  EXPECT_EQ(Run({"append", "k", "hello"}), Int(5));
  EXPECT_EQ(Run({"append", "k", " world"}), Int(11));
  EXPECT_EQ(Run({"get", "k"}), Bulk("hello world"));
  EXPECT_EQ(Run({"strlen", "k"}), Int(11));
  options_.max_bulk_bytes = 12;
  EXPECT_EQ(Run({"append", "k", "!!"}),
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n");
  EXPECT_EQ(Run({"append", "k"}), "-ERR wrong number of arguments for 'append' command\r\n");
  EXPECT_EQ(Run({"strlen"}), "-ERR wrong number of arguments for 'strlen' command\r\n");
}

TEST_F(CommandsTest, MsetMget) {
  EXPECT_EQ(Run({"mset", "a", "1", "b", "2", "c", "3"}), kOk);
  EXPECT_EQ(Run({"mget", "a", "missing", "c", "b"}),
            "*4\r\n" + Bulk("1") + kNil + Bulk("3") + Bulk("2"));
  EXPECT_EQ(Run({"set", "t", "v", "ex", "5"}), kOk);
  EXPECT_EQ(Run({"mset", "t", "w"}), kOk);
  EXPECT_EQ(Run({"ttl", "t"}), Int(-1));
  EXPECT_EQ(Run({"mget"}), "-ERR wrong number of arguments for 'mget' command\r\n");
}

TEST_F(CommandsTest, DelExists) {
  EXPECT_EQ(Run({"mset", "a", "1", "b", "2"}), kOk);
  EXPECT_EQ(Run({"exists", "a", "b", "c", "a"}), Int(3));
  EXPECT_EQ(Run({"del", "a", "c", "a"}), Int(1));
  EXPECT_EQ(Run({"exists", "a"}), Int(0));
  EXPECT_EQ(Run({"exists"}), "-ERR wrong number of arguments for 'exists' command\r\n");
}

TEST_F(CommandsTest, ExpireTtlPersist) {
  EXPECT_EQ(Run({"expire", "k", "10"}), Int(0));
  EXPECT_EQ(Run({"ttl", "k"}), Int(-2));
  EXPECT_EQ(Run({"pttl", "k"}), Int(-2));
  EXPECT_EQ(Run({"set", "k", "v"}), kOk);
  EXPECT_EQ(Run({"ttl", "k"}), Int(-1));
  EXPECT_EQ(Run({"pttl", "k"}), Int(-1));
  EXPECT_EQ(Run({"expire", "k", "10"}), Int(1));
  EXPECT_EQ(Run({"ttl", "k"}), Int(10));
  EXPECT_EQ(Run({"pexpire", "k", "2500"}), Int(1));
  EXPECT_EQ(Run({"pttl", "k"}), Int(2500));
  EXPECT_EQ(Run({"persist", "k"}), Int(1));
  EXPECT_EQ(Run({"persist", "k"}), Int(0));
  EXPECT_EQ(Run({"persist", "missing"}), Int(0));
  EXPECT_EQ(Run({"ttl", "k"}), Int(-1));
  EXPECT_EQ(Run({"pexpire", "k", "100"}), Int(1));
  now_ms_ += 100;
  EXPECT_EQ(Run({"exists", "k"}), Int(0));
  EXPECT_EQ(Run({"set", "k", "v"}), kOk);
  EXPECT_EQ(Run({"expire", "k", "-1"}), Int(1));  // a past time deletes
  EXPECT_EQ(Run({"exists", "k"}), Int(0));
}

TEST_F(CommandsTest, ExpireOptions) {
  EXPECT_EQ(Run({"set", "k", "v"}), kOk);
  EXPECT_EQ(Run({"expire", "k", "10", "XX"}), Int(0));
  EXPECT_EQ(Run({"expire", "k", "10", "GT"}), Int(0));
  EXPECT_EQ(Run({"expire", "k", "10", "NX"}), Int(1));
  EXPECT_EQ(Run({"expire", "k", "20", "nx"}), Int(0));
  EXPECT_EQ(Run({"expire", "k", "20", "gt"}), Int(1));
  EXPECT_EQ(Run({"expire", "k", "30", "lt"}), Int(0));
  EXPECT_EQ(Run({"expire", "k", "5", "lt", "xx"}), Int(1));
  EXPECT_EQ(Run({"ttl", "k"}), Int(5));
  EXPECT_EQ(Run({"expire", "k", "5", "bogus"}), "-ERR Unsupported option bogus\r\n");
  EXPECT_EQ(Run({"expire", "k", "5", "nx", "xx"}),
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
  EXPECT_EQ(Run({"expire", "k", "5", "gt", "lt"}),
            "-ERR GT and LT options at the same time are not compatible\r\n");
}

TEST_F(CommandsTest, ExpireErrors) {
  EXPECT_EQ(Run({"set", "k", "v"}), kOk);
  EXPECT_EQ(Run({"expire", "k", "ten"}), kNotInt);
  EXPECT_EQ(Run({"pexpire", "k", "1.5"}), kNotInt);
  EXPECT_EQ(Run({"expire", "k", "9223372036854775807"}),
            "-ERR invalid expire time in 'expire' command\r\n");
  EXPECT_EQ(Run({"pexpire", "k", "9223372036854775807"}),
            "-ERR invalid expire time in 'pexpire' command\r\n");
  EXPECT_EQ(Run({"expire", "k"}), "-ERR wrong number of arguments for 'expire' command\r\n");
  EXPECT_EQ(Run({"ttl"}), "-ERR wrong number of arguments for 'ttl' command\r\n");
  EXPECT_EQ(Run({"pttl", "a", "b"}), "-ERR wrong number of arguments for 'pttl' command\r\n");
  EXPECT_EQ(Run({"persist"}), "-ERR wrong number of arguments for 'persist' command\r\n");
}

TEST_F(CommandsTest, Type) {
  EXPECT_EQ(Run({"type", "k"}), "+none\r\n");
  EXPECT_EQ(Run({"set", "k", "v"}), kOk);
  EXPECT_EQ(Run({"type", "k"}), "+string\r\n");
  store_.CreateOfType("z", ValueType::kZSet);
  EXPECT_EQ(Run({"type", "z"}), "+zset\r\n");
  EXPECT_EQ(Run({"type"}), "-ERR wrong number of arguments for 'type' command\r\n");
}

TEST_F(CommandsTest, DbSizeFlush) {
  EXPECT_EQ(Run({"dbsize"}), Int(0));
  EXPECT_EQ(Run({"mset", "a", "1", "b", "2"}), kOk);
  EXPECT_EQ(Run({"dbsize"}), Int(2));
  EXPECT_EQ(Run({"flushdb"}), kOk);
  EXPECT_EQ(Run({"dbsize"}), Int(0));
  EXPECT_EQ(Run({"set", "a", "1"}), kOk);
  EXPECT_EQ(Run({"flushall", "ASYNC"}), kOk);
  EXPECT_EQ(Run({"dbsize"}), Int(0));
  EXPECT_EQ(Run({"flushdb", "sync"}), kOk);
  EXPECT_EQ(Run({"flushdb", "bogus"}), kSyntax);
  EXPECT_EQ(Run({"flushall", "async", "sync"}), kSyntax);
}

TEST_F(CommandsTest, Select) {
  EXPECT_EQ(Run({"select", "0"}), kOk);
  EXPECT_EQ(Run({"select", "1"}), "-ERR DB index is out of range\r\n");
  EXPECT_EQ(Run({"select", "-1"}), "-ERR DB index is out of range\r\n");
  EXPECT_EQ(Run({"select", "x"}), kNotInt);
  EXPECT_EQ(Run({"select", "4294967296"}), kNotInt);
  EXPECT_EQ(Run({"select"}), "-ERR wrong number of arguments for 'select' command\r\n");
}

TEST_F(CommandsTest, Quit) {
  EXPECT_FALSE(session_.quit);
  EXPECT_EQ(Run({"quit"}), kOk);
  EXPECT_TRUE(session_.quit);
}

TEST_F(CommandsTest, Client) {
  EXPECT_EQ(Run({"client", "getname"}), kNil);
  EXPECT_EQ(Run({"client", "setname", "worker-1"}), kOk);
  EXPECT_EQ(Run({"client", "getname"}), Bulk("worker-1"));
  EXPECT_EQ(Run({"client", "setname", "bad name"}),
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
  EXPECT_EQ(Run({"client", "setname", "x\ny"}),
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
  EXPECT_EQ(Run({"client", "getname"}), Bulk("worker-1"));
  EXPECT_EQ(Run({"client", "setname", ""}), kOk);
  EXPECT_EQ(Run({"client", "getname"}), kNil);
  EXPECT_EQ(Run({"client", "id"}), Int(42));
  EXPECT_THAT(Run({"client", "help"}), StartsWith("*9\r\n+CLIENT <subcommand>"));
  EXPECT_EQ(Run({"client"}), "-ERR wrong number of arguments for 'client' command\r\n");
}

TEST_F(CommandsTest, ConfigGet) {
  EXPECT_EQ(Run({"config", "get", "save"}), "*2\r\n" + Bulk("save") + Bulk(""));
  EXPECT_EQ(Run({"config", "get", "appendonly"}), "*2\r\n" + Bulk("appendonly") + Bulk("no"));
  EXPECT_EQ(Run({"config", "get", "DATABASES"}), "*2\r\n" + Bulk("databases") + Bulk("1"));
  EXPECT_EQ(Run({"config", "get", "nothing-like-this"}), "*0\r\n");
  EXPECT_EQ(Run({"config", "get", "proto-max-bulk-len"}),
            "*2\r\n" + Bulk("proto-max-bulk-len") + Bulk("536870912"));
  // Patterns, several at once, each parameter once.
  EXPECT_EQ(Run({"config", "get", "maxmemory*", "maxmemory"}),
            "*4\r\n" + Bulk("maxmemory") + Bulk("0") + Bulk("maxmemory-policy") +
                Bulk("noeviction"));
  EXPECT_EQ(Run({"config", "get", "s?ve", "appendonl[xyz]"}),
            "*4\r\n" + Bulk("save") + Bulk("") + Bulk("appendonly") + Bulk("no"));
  const std::string all = Run({"config", "get", "*"});
  EXPECT_THAT(all, StartsWith("*18\r\n"));
  EXPECT_THAT(Run({"config", "help"}), StartsWith("*5\r\n+CONFIG <subcommand>"));
}

TEST_F(CommandsTest, Info) {
  EXPECT_EQ(Run({"mset", "a", "1", "b", "2"}), kOk);
  EXPECT_EQ(Run({"expire", "a", "100"}), Int(1));
  const std::string all = Run({"info"});
  EXPECT_THAT(all, StartsWith("$"));
  EXPECT_THAT(all, HasSubstr("# Server\r\nredis_version:"));
  EXPECT_THAT(all, HasSubstr("redis_mode:standalone\r\n"));
  EXPECT_THAT(all, HasSubstr("# Clients\r\nconnected_clients:3\r\n"));
  EXPECT_THAT(all, HasSubstr("total_connections_received:7\r\n"));
  EXPECT_THAT(all, HasSubstr("# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n"));
  const std::string keyspace = Run({"info", "KEYSPACE"});
  EXPECT_THAT(keyspace, HasSubstr("# Keyspace"));
  EXPECT_THAT(keyspace, ::testing::Not(HasSubstr("# Server")));
  EXPECT_EQ(Run({"info", "nosuchsection"}), Bulk(""));
}

TEST_F(CommandsTest, CommandCountListInfo) {
  const std::string count = Run({"command", "count"});
  EXPECT_EQ(count, Int(static_cast<int64_t>(AllCommands().size())));
  const std::string list = Run({"command", "list"});
  EXPECT_THAT(list, HasSubstr(Bulk("get")));
  EXPECT_THAT(list, HasSubstr(Bulk("config|get")));
  EXPECT_EQ(Run({"command", "list", "filterby", "x", "y"}), kSyntax);
  EXPECT_EQ(Run({"command", "info", "get"}),
            "*1\r\n*10\r\n" + Bulk("get") + Int(2) + "*2\r\n+readonly\r\n+fast\r\n" + Int(1) +
                Int(1) + Int(1) + "*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n");
  EXPECT_EQ(Run({"command", "info", "nosuch"}), "*1\r\n" + kNil);
  const std::string all = Run({"command"});
  EXPECT_THAT(all, StartsWith("*" + std::to_string(AllCommands().size()) + "\r\n*10\r\n"));
  EXPECT_THAT(Run({"command", "help"}), StartsWith("*13\r\n+COMMAND <subcommand>"));
}

TEST_F(CommandsTest, CommandDocs) {
  EXPECT_EQ(Run({"command", "docs", "get"}),
            "*2\r\n" + Bulk("get") + "*10\r\n" + Bulk("summary") +
                Bulk("Get the value of a key") + Bulk("since") + Bulk("1.0.0") + Bulk("group") +
                Bulk("string") + Bulk("complexity") + Bulk("O(1)") + Bulk("arguments") +
                "*1\r\n*4\r\n" + Bulk("name") + Bulk("key") + Bulk("type") + Bulk("key"));
  EXPECT_EQ(Run({"command", "docs", "nosuch"}), "*0\r\n");
  const std::string all = Run({"command", "docs"});
  EXPECT_THAT(all, StartsWith("*" + std::to_string(AllCommands().size() * 2) + "\r\n"));
  // Optional arguments carry status flags, as redis-cli expects.
  EXPECT_THAT(Run({"command", "docs", "ping"}),
              HasSubstr(Bulk("flags") + "*1\r\n+optional\r\n"));
  EXPECT_THAT(Run({"command", "docs", "client"}), HasSubstr(Bulk("client|setname")));
}

TEST(MergeRepliesTest, Kinds) {
  auto merge = [](MergeKind kind, std::vector<std::string_view> replies) {
    ReplyQueue list;
    std::vector<ReplyPart> parts;
    for (std::string_view reply : replies) {
      list.bytes().Append(reply);
      list.Seal();
      parts.push_back({&list, list.replies() - 1});
    }
    Buffer out;
    ReplySink sink(out);
    MergeReplies(kind, parts, sink);
    return std::string(out.view());
  };
  EXPECT_EQ(merge(MergeKind::kSumIntegers, {":1\r\n", ":0\r\n", ":2\r\n"}), ":3\r\n");
  EXPECT_EQ(merge(MergeKind::kArray, {"$1\r\na\r\n", "$-1\r\n"}), "*2\r\n$1\r\na\r\n$-1\r\n");
  EXPECT_EQ(merge(MergeKind::kAllOk, {"+OK\r\n", "+OK\r\n"}), "+OK\r\n");
  EXPECT_EQ(merge(MergeKind::kAllOk, {"+OK\r\n", "-ERR syntax error\r\n"}),
            "-ERR syntax error\r\n");
  EXPECT_EQ(merge(MergeKind::kNone, {"+PONG\r\n"}), "+PONG\r\n");
}

// A call that carried a large value gives the memory of its copied arguments back when it is
// reset; one that carried small ones keeps it for the next batch. (Idle request states keep
// their calls, so a kept arena would hold the largest value ever sent through each of them.)
TEST_F(CommandsTest, AShardCallKeepsOnlyASmallArgumentArena) {
  ShardCall call;
  const std::string big(4 << 20, 'v');
  std::vector<std::string_view> argv = {"SET", "key", big};
  call.Add(*FindCommand("SET"), argv);
  EXPECT_GE(call.arg_bytes(), big.size());
  EXPECT_EQ(call.size(), 1u);
  call.Run(store_, options_);
  call.Reset();
  EXPECT_LE(call.arena_capacity(), ShardCall::kKeptArenaBytes);
  EXPECT_EQ(Run({"GET", "key"}), Bulk(big)) << "the value itself is the store's";

  std::vector<std::string_view> small = {"SET", "k2", "small value"};
  call.Add(*FindCommand("SET"), small);
  call.Run(store_, options_);
  const size_t kept = call.arena_capacity();
  call.Reset();
  EXPECT_GT(kept, 0u);
  EXPECT_EQ(call.arena_capacity(), kept) << "small batches reuse it";
  EXPECT_EQ(call.arg_bytes(), 0u);
}

}  // namespace
}  // namespace percore
