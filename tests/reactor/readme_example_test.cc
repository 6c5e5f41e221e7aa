// Runs the services that reactor/README.md shows (the greeter and the sharded tally), and
// checks the README still quotes them verbatim, so the documented example can neither stop compiling nor drift from the code.

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/server.h"
#include "tests/reactor/readme_example_service.h"
#include "tests/reactor/readme_sharded_example.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace test = percore::test;

test::Deadline Soon() { return test::Deadline::In(absl::Seconds(10)); }

// The README shows each example file from its first #include on.
void ExpectReadmeQuotes(const std::string& path) {
  const std::string readme = ReadFile("reactor/README.md");
  const std::string example = ReadFile(path);
  ASSERT_FALSE(example.empty()) << path;
  const std::string body = example.substr(example.find("#include"));
  EXPECT_NE(readme.find(body), std::string::npos) << "reactor/README.md no longer matches " << path;
}

TEST(ReadmeExample, ReadmeQuotesTheExampleVerbatim) { ExpectReadmeQuotes("tests/reactor/readme_example_service.h"); }

TEST(ReadmeExample, GreetsLineByLineAndRejectsLongLines) {
  percore::ServerOptions options;
  options.loops = 2;
  percore::Server server(options);
  ASSERT_TRUE(server.AddService(std::make_shared<example::GreetService>()).ok());
  auto listener = server.Listen("greet", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(server.Start().ok());

  absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(listener->bound.port(), Soon());
  ASSERT_TRUE(fd.ok()) << fd.status();
  // One full line and the start of another.
  ASSERT_TRUE(test::WriteAll(fd->get(), "ada\nlin", Soon()).ok());
  absl::StatusOr<std::string> reply = test::ReadExactly(fd->get(), 11, Soon());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "hello, ada\n");
  ASSERT_TRUE(test::WriteAll(fd->get(), "us\n", Soon()).ok());
  reply = test::ReadExactly(fd->get(), 13, Soon());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "hello, linus\n");

  ASSERT_TRUE(test::WriteAll(fd->get(), std::string(2000, 'x'), Soon()).ok());
  reply = test::ReadToEof(fd->get(), Soon());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "error: line too long\n");
  fd->reset();

  server.Stop();
  const percore::ServerTotals totals = server.Totals();
  EXPECT_EQ(totals.closed_by(percore::CloseReason::kProtocolError), 1u);
  ASSERT_EQ(totals.services.size(), 1u);
  EXPECT_EQ(totals.services[0].requests, 2u);
}

TEST(ReadmeShardedExample, ReadmeQuotesTheExampleVerbatim) {
  ExpectReadmeQuotes("tests/reactor/readme_sharded_example.h");
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
    auto fd = test::ConnectToLoopback(listener->bound.port(), Soon());
    ASSERT_TRUE(fd.ok()) << fd.status();
    ASSERT_TRUE(test::WriteAll(fd->get(), words, Soon()).ok());
    std::string expected;
    for (int w = 0; w < kWords; ++w) absl::StrAppend(&expected, k, "\n");
    auto replies = test::ReadExactly(fd->get(), expected.size(), Soon());
    ASSERT_TRUE(replies.ok()) << replies.status();
    EXPECT_EQ(*replies, expected) << "client " << k;
  }
  server.Stop(absl::Seconds(5));
  EXPECT_EQ(server.Totals().services[0].requests, static_cast<uint64_t>(kClients * kWords));
}

}  // namespace
