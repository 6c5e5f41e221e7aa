// Runs the sharded service that reactor/README.md shows ("Work on another loop"), and checks the
// README still quotes it verbatim.

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/server.h"
#include "tests/reactor/readme_sharded_example.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace {

using percore::test::Deadline;

Deadline Soon() { return Deadline::In(absl::Seconds(20)); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ReadmeShardedExample, ReadmeQuotesTheExampleVerbatim) {
  const std::string readme = ReadFile("reactor/README.md");
  const std::string example = ReadFile("tests/reactor/readme_sharded_example.h");
  ASSERT_FALSE(example.empty());
  const std::string body = example.substr(example.find("#include"));
  EXPECT_NE(readme.find(body), std::string::npos) << "reactor/README.md no longer matches the example";
}

TEST(ReadmeShardedExample, TalliesAreSharedByEveryConnectionOnEveryLoop) {
  percore::ServerOptions options;
  options.loops = 4;
  percore::Server server(options);
  ASSERT_TRUE(server.AddService(std::make_shared<example::TallyService>()).ok());
  auto listener = server.Listen("tally", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(server.Start().ok());

  // Eight connections (round-robin: two per loop), each sending the same 50 words, one after
  // the other: the k-th client to send a word is told k.
  constexpr int kClients = 8;
  constexpr int kWords = 50;
  std::string words;
  for (int w = 0; w < kWords; ++w) absl::StrAppend(&words, "word", w, "\n");
  for (int k = 1; k <= kClients; ++k) {
    auto fd = percore::test::ConnectToLoopback(listener->bound.port(), Soon());
    ASSERT_TRUE(fd.ok()) << fd.status();
    ASSERT_TRUE(percore::test::WriteAll(fd->get(), words, Soon()).ok());
    std::string expected;
    for (int w = 0; w < kWords; ++w) absl::StrAppend(&expected, k, "\n");
    auto replies = percore::test::ReadExactly(fd->get(), expected.size(), Soon());
    ASSERT_TRUE(replies.ok()) << replies.status();
    EXPECT_EQ(*replies, expected) << "client " << k;
  }
  server.Stop(absl::Seconds(5));
  EXPECT_EQ(server.Totals().services[0].requests, static_cast<uint64_t>(kClients * kWords));
}

}  // namespace
