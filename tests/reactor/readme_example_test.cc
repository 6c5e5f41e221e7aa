// Runs the service that reactor/README.md shows, and checks the README still quotes it
// verbatim, so the documented example can neither stop compiling nor drift from the code.

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "reactor/server.h"
#include "tests/reactor/readme_example_service.h"

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Connect(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF or until `want` bytes arrived, waiting at most 10 s in total.
std::string ReadUpTo(int fd, size_t want) {
  std::string got;
  char chunk[4096];
  while (got.size() < want) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10'000) <= 0) break;
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) break;
    got.append(chunk, static_cast<size_t>(n));
  }
  return got;
}

TEST(ReadmeExample, ReadmeQuotesTheExampleVerbatim) {
  const std::string readme = ReadFile("reactor/README.md");
  const std::string example = ReadFile("tests/reactor/readme_example_service.h");
  ASSERT_FALSE(example.empty());
  // The README shows the file from its first #include on.
  const std::string body = example.substr(example.find("#include"));
  EXPECT_NE(readme.find(body), std::string::npos) << "reactor/README.md no longer matches the example";
}

TEST(ReadmeExample, GreetsLineByLineAndRejectsLongLines) {
  percore::ServerOptions options;
  options.loops = 2;
  percore::Server server(options);
  ASSERT_TRUE(server.AddService(std::make_shared<example::GreetService>()).ok());
  auto listener = server.Listen("greet", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(server.Start().ok());

  const int fd = Connect(listener->bound.port());
  ASSERT_GE(fd, 0);
  const std::string request = "ada\nlin";  // one full line and the start of another
  ASSERT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  EXPECT_EQ(ReadUpTo(fd, 11), "hello, ada\n");
  ASSERT_EQ(write(fd, "us\n", 3), 3);
  EXPECT_EQ(ReadUpTo(fd, 13), "hello, linus\n");

  const std::string too_long(2000, 'x');
  ASSERT_EQ(write(fd, too_long.data(), too_long.size()), static_cast<ssize_t>(too_long.size()));
  EXPECT_EQ(ReadUpTo(fd, 1 << 20), "error: line too long\n");  // then EOF
  close(fd);

  server.Stop();
  uint64_t protocol_errors = 0;
  uint64_t requests = 0;
  for (int i = 0; i < server.loop_count(); ++i) {
    protocol_errors += server.loop(i).stats().closed[static_cast<int>(percore::CloseReason::kProtocolError)].Get();
    requests += server.loop(i).stats().services[0]->requests.Get();
  }
  EXPECT_EQ(protocol_errors, 1u);
  EXPECT_EQ(requests, 2u);
}

}  // namespace
