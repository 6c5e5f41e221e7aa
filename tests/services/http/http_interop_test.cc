// Real clients against the HTTP service: curl for protocol details and wrk for sustained
// keep-alive and pipelined load. Each test is skipped when its tool is not installed.

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/services/http/http_test_client.h"
#include "tests/testing/shell.h"

namespace percore {
namespace {

using http_test::HttpServer;

using test::HaveTool;

std::string RunCommand(const std::string& command, int* exit_code) { return test::RunShell(command, exit_code); }

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

HttpOptions EchoOptions() {
  HttpOptions options;
  options.routes.Post("/echo", [](const HttpRequest& request, HttpResponse& response) {
    response.set_content_type("application/octet-stream");
    response.set_body(request.body);
  });
  options.routes.Post("/size", [](const HttpRequest& request, HttpResponse& response) {
    response.set_body(std::to_string(request.body.size()));
  });
  return options;
}

class CurlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveTool("curl")) GTEST_SKIP() << "curl is not installed";
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(server_.port()) + path;
  }
  std::string Curl(const std::string& args, int* exit_code) {
    return RunCommand("curl -sS --max-time 10 " + args, exit_code);
  }

  HttpServer server_{EchoOptions()};
};

TEST_F(CurlTest, GetsPlaintextWithItsHeaders) {
  int code;
  const std::string out = Curl("-i " + Url("/plaintext"), &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("\r\nServer: percore\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\nContent-Length: 13\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\nContent-Type: text/plain\r\n"), std::string::npos) << out;
  const size_t date = out.find("\r\nDate: ");
  ASSERT_NE(date, std::string::npos) << out;
  EXPECT_EQ(out.substr(date + 2 + 6 + 29, 2), "\r\n") << out;  // a 29-byte IMF-fixdate
  EXPECT_EQ(out.substr(date + 2 + 6 + 26, 3), "GMT") << out;
  EXPECT_EQ(out.substr(out.size() - 17), "\r\n\r\nHello, World!");
}

TEST_F(CurlTest, GetsJson) {
  int code;
  EXPECT_EQ(Curl(Url("/json"), &code), "{\"message\":\"Hello, World!\"}");
  EXPECT_EQ(code, 0);
}

TEST_F(CurlTest, ReusesTheKeepAliveConnection) {
  int code;
  const std::string out = Curl("-o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\\n' " +
                                   Url("/plaintext") + " " + Url("/json"),
                               &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "200 1\n200 0\n");  // the second transfer opened no new connection
}

TEST_F(CurlTest, HeadHasNoBody) {
  int code;
  const std::string out = Curl("-I " + Url("/json"), &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("\r\nContent-Length: 27\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n") << out;
}

TEST_F(CurlTest, Http10) {
  int code;
  const std::string out = Curl("--http1.0 -i " + Url("/plaintext"), &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos) << out;
}

TEST_F(CurlTest, ErrorStatuses) {
  int code;
  EXPECT_EQ(Curl("-o /dev/null -w '%{http_code}' " + Url("/nope"), &code), "404");
  EXPECT_EQ(Curl("-o /dev/null -w '%{http_code}' -X DELETE " + Url("/json"), &code), "405");
  EXPECT_EQ(Curl("-o /dev/null -w '%{http_code}' -H 'X-Big: " + std::string(9000, 'a') + "' " +
                     Url("/json"),
                 &code),
            "431");
}

TEST_F(CurlTest, PostsChunkedBodies) {
  int code;
  EXPECT_EQ(Curl("-H 'Transfer-Encoding: chunked' --data-binary 'hello chunked' " + Url("/echo"), &code),
            "hello chunked");
  EXPECT_EQ(code, 0);
}

TEST_F(CurlTest, LargeUploadWaitsFor100Continue) {
  const std::string path = TempPath("upload.bin");
  {
    std::ofstream file(path, std::ios::binary);
    file << std::string(200 * 1024, 'u');
  }
  int code;
  // With a 30 s wait for "100 Continue" and a 10 s overall limit, curl only succeeds if the
  // server sends the interim response.
  EXPECT_EQ(Curl("--expect100-timeout 30 -H 'Expect: 100-continue' --data-binary @" + path + " " +
                     Url("/size"),
                 &code),
            "204800");
  EXPECT_EQ(code, 0);
  EXPECT_EQ(Curl("-o /dev/null -w '%{http_code}' --data-binary @" + path + " -H 'Content-Length: 2000000' " +
                     Url("/size"),
                 &code),
            "413");
}

class WrkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveTool("wrk")) GTEST_SKIP() << "wrk is not installed";
  }

  // Runs wrk for two seconds and checks every response was a 2xx with no socket error.
  void RunWrk(const std::string& extra_args, const std::string& path) {
    HttpServer server;
    int code;
    const std::string out = RunCommand("wrk -t1 -c8 -d2s --timeout 5s " + extra_args + " http://127.0.0.1:" +
                                    std::to_string(server.port()) + path + " 2>&1",
                                &code);
    EXPECT_EQ(code, 0) << out;
    std::printf("%s", out.c_str());  // wrk's own summary, for the test log
    // "  123456 requests in 2.00s, ..."
    const size_t marker = out.find(" requests in ");
    ASSERT_NE(marker, std::string::npos) << out;
    size_t digits = marker;
    while (digits > 0 && out[digits - 1] >= '0' && out[digits - 1] <= '9') --digits;
    ASSERT_LT(digits, marker) << out;
    const uint64_t requests = std::stoull(out.substr(digits, marker - digits));
    EXPECT_GT(requests, 0u) << out;
    EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
    EXPECT_EQ(out.find("Socket errors"), std::string::npos) << out;
    server.server().Stop();
    EXPECT_GE(server.Requests(), requests);
    EXPECT_EQ(server.Errors(), 0u);
    EXPECT_EQ(server.Closed(CloseReason::kProtocolError), 0u);
  }
};

TEST_F(WrkTest, KeepAlivePlaintext) { RunWrk("", "/plaintext"); }

TEST_F(WrkTest, PipelinedJson) {
  const std::string script = TempPath("pipeline.lua");
  {
    std::ofstream file(script);
    file << "init = function(args)\n"
            "  local r = {}\n"
            "  for i = 1, 16 do r[i] = wrk.format(nil, nil) end\n"
            "  req = table.concat(r)\n"
            "end\n"
            "request = function() return req end\n";
  }
  RunWrk("-s " + script, "/json");
}

}  // namespace
}  // namespace percore
