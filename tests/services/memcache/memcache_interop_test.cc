// Interoperability with libmemcached's command-line tools (Debian: libmemcached-tools) against
// a running percore::Server with the memcache service on two loops. Each tool runs under
// coreutils' `timeout`, with bounded work. A test is skipped only when its tool is not
// installed.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/services/memcache/memcache_server_fixture.h"

namespace percore::test {
namespace {

// Where `tool` is on PATH, or "".
std::string FindTool(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  dirs += ":/usr/bin:/usr/local/bin";
  for (absl::string_view dir : absl::StrSplit(dirs, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = absl::StrCat(dir, "/", tool);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct ToolRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `command` through the shell with a hard time bound; returns its exit code and output.
ToolRun RunBounded(const std::string& command, int seconds = 60) {
  ToolRun run;
  const std::string bounded =
      absl::StrCat("timeout -k 5 ", seconds, " ", command, " 2>&1 </dev/null");
  FILE* pipe = ::popen(bounded.c_str(), "r");
  if (pipe == nullptr) return run;
  char chunk[4096];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), pipe)) > 0) run.output.append(chunk, n);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class MemcacheInteropTest : public MemcacheServerTest {
 protected:
  void SetUp() override {
    StartServer();
    servers_ = absl::StrCat("--servers=127.0.0.1:", port_);
  }

  std::string servers_;
};

// Declares `var` as the path of tool `name`, or skips the test when it is not installed.
#define REQUIRE_TOOL(var, name)                                        \
  const std::string var = FindTool(name);                              \
  if (var.empty()) GTEST_SKIP() << name << " is not installed (libmemcached-tools)"

TEST_F(MemcacheInteropTest, MemccpMemccatRoundTrip) {
  REQUIRE_TOOL(memccp, "memccp");
  REQUIRE_TOOL(memccat, "memccat");
  char dir_template[] = "/tmp/percore_memcache_XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  std::string content;
  for (int i = 0; i < 20'000; ++i) content.push_back(static_cast<char>('a' + i % 26));
  content += "\r\nEND\r\n binary:";
  for (int i = 0; i < 256; ++i) content.push_back(static_cast<char>(i));
  const std::string file = dir + "/interop_file.bin";
  {
    std::ofstream out(file, std::ios::binary);
    out << content;
  }
  const ToolRun copy = RunBounded(absl::StrCat(memccp, " ", servers_, " ", file));
  EXPECT_EQ(copy.exit_code, 0) << copy.output;

  // memccp stores the file under its base name.
  ScopedFd conn = Connect();
  const std::string got = ExchangeUntil(conn.get(), "get interop_file.bin\r\n", "END\r\n");
  const std::string header = "VALUE interop_file.bin ";
  ASSERT_EQ(got.rfind(header, 0), 0u) << got.substr(0, 100);
  EXPECT_NE(got.find(absl::StrCat(" ", content.size(), "\r\n")), std::string::npos);
  EXPECT_TRUE(got.find(content) != std::string::npos) << "the stored value differs from the file";

  const ToolRun cat = RunBounded(absl::StrCat(memccat, " ", servers_, " interop_file.bin"));
  EXPECT_EQ(cat.exit_code, 0);
  // memccat prints the value followed by a newline.
  EXPECT_EQ(cat.output.size(), content.size() + 1);
  EXPECT_TRUE(cat.output == content + "\n") << "memccat printed other bytes than were stored";

  const ToolRun missing = RunBounded(absl::StrCat(memccat, " ", servers_, " no_such_key"));
  EXPECT_NE(missing.exit_code, 0) << missing.output;
  std::remove(file.c_str());
  ::rmdir(dir.c_str());
}

TEST_F(MemcacheInteropTest, SmallToolsOnKeys) {
  REQUIRE_TOOL(memcexist, "memcexist");
  REQUIRE_TOOL(memctouch, "memctouch");
  REQUIRE_TOOL(memcrm, "memcrm");
  REQUIRE_TOOL(memcflush, "memcflush");
  ScopedFd conn = Connect();
  for (const std::string& key : {KeyOnShard(0), KeyOnShard(1)}) {
    SCOPED_TRACE(key);
    Expect(conn.get(), "set " + key + " 0 0 1\r\nx\r\n", "STORED\r\n");
    EXPECT_EQ(RunBounded(absl::StrCat(memcexist, " ", servers_, " ", key)).exit_code, 0);
    const ToolRun touch = RunBounded(absl::StrCat(memctouch, " ", servers_, " --expire=100 ", key));
    EXPECT_EQ(touch.exit_code, 0) << touch.output;
    const ToolRun rm = RunBounded(absl::StrCat(memcrm, " ", servers_, " ", key));
    EXPECT_EQ(rm.exit_code, 0) << rm.output;
    Expect(conn.get(), "get " + key + "\r\n", "END\r\n");
    EXPECT_NE(RunBounded(absl::StrCat(memcexist, " ", servers_, " ", key)).exit_code, 0);
    Expect(conn.get(), "set " + key + " 0 0 1\r\nx\r\n", "STORED\r\n");
  }
  const ToolRun flush = RunBounded(absl::StrCat(memcflush, " ", servers_));
  EXPECT_EQ(flush.exit_code, 0) << flush.output;
  EXPECT_EQ(Stat(conn.get(), "curr_items"), 0);
}

TEST_F(MemcacheInteropTest, Memcstat) {
  REQUIRE_TOOL(memcstat, "memcstat");
  const ToolRun run = RunBounded(absl::StrCat(memcstat, " ", servers_));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("curr_items"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("1.6.0-percore"), std::string::npos) << run.output;
}

TEST_F(MemcacheInteropTest, MemcslapSetGetMget) {
  REQUIRE_TOOL(memcslap, "memcslap");
  for (const char* test : {"set", "get", "mget"}) {
    SCOPED_TRACE(test);
    const ToolRun run = RunBounded(
        absl::StrCat(memcslap, " ", servers_, " --concurrency=4 --execute-number=500 --test=", test));
    EXPECT_EQ(run.exit_code, 0) << run.output;
    EXPECT_EQ(run.output.find("rror"), std::string::npos) << run.output;
  }
  ScopedFd conn = Connect();
  EXPECT_GE(Stat(conn.get(), "cmd_set"), 2000);
  EXPECT_GT(Stat(conn.get(), "get_hits"), 0);
}

TEST_F(MemcacheInteropTest, MemcaslapBoundedRun) {
  REQUIRE_TOOL(memcaslap, "memcaslap");
  const ToolRun run = RunBounded(
      absl::StrCat(memcaslap, " -s 127.0.0.1:", port_, " -T 2 -c 16 -x 20000 -X 100"));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  ScopedFd conn = Connect();
  EXPECT_GE(Stat(conn.get(), "cmd_get") + Stat(conn.get(), "cmd_set"), 20000) << run.output;
  EXPECT_GT(Stat(conn.get(), "get_hits"), 0) << run.output;
}

TEST_F(MemcacheInteropTest, MemccapableAscii) {
  REQUIRE_TOOL(memccapable, "memccapable");
  const ToolRun run =
      RunBounded(absl::StrCat(memccapable, " -h 127.0.0.1 -p ", port_, " -a -t 10"));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output.find("[FAIL]"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace percore::test
