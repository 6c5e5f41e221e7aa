// Runs the routes that services/http/README.md shows, and checks the README still quotes them
// verbatim, so the documented example can neither stop compiling nor drift from the code.

#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/services/http/http_test_client.h"
#include "tests/services/http/readme_example_routes.h"
#include "tests/testing/http_requests.h"

namespace percore {
namespace {

using http_test::Client;
using http_test::HttpServer;
using http_test::Response;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(HttpReadmeExample, ReadmeQuotesTheExampleVerbatim) {
  const std::string readme = ReadFile("services/http/README.md");
  const std::string example = ReadFile("tests/services/http/readme_example_routes.h");
  ASSERT_FALSE(example.empty());
  const std::string body = example.substr(example.find("#include"));
  EXPECT_NE(readme.find(body), std::string::npos) << "services/http/README.md no longer matches the example";
}

TEST(HttpReadmeExample, RoutesAnswer) {
  HttpServer server(example::GreeterOptions());
  Client client(server.port());
  Response response = client.Get("/hello?name=ada");
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.body, "hello, ada");
  EXPECT_EQ(client.Get("/hello").body, "hello, world");
  ASSERT_TRUE(client.Send(test::HttpPost("/reverse", "abcdef")));
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.body, "fedcba");
  EXPECT_EQ(response.Header("Content-Type"), "application/octet-stream");
  ASSERT_TRUE(client.Send(test::HttpRequestText("POST", "/reverse", "Content-Length: 65537\r\n")));
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 413 Content Too Large");
  EXPECT_TRUE(client.WaitForClose());
}

TEST(HttpReadmeExample, AsyncRouteAnswersLater) {
  HttpServer server(example::GreeterOptions());
  Client client(server.port());
  // Pipelined behind the deferred answer, the immediate one still comes second.
  ASSERT_TRUE(client.Send(test::HttpGet("/later") + test::HttpGet("/hello?name=ada")));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.body, "later");
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.body, "hello, ada");
}

}  // namespace
}  // namespace percore
