#include "services/http/http_service.h"

#include <poll.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "services/http/http_date.h"
#include "tests/services/http/http_test_client.h"
#include "tests/testing/http_requests.h"

namespace percore {
namespace {

using http_test::Client;
using http_test::HttpServer;
using http_test::Response;
using test::HttpGet;
using test::HttpPost;
using test::HttpRequestText;
using test::kHttpGetJson;
using test::kHttpGetPlaintext;

// Checks the Date value is the IMF-fixdate of a second within [before, after] (wall clock, s).
void ExpectDateBetween(const std::string& date, int64_t before, int64_t after) {
  bool matched = false;
  for (int64_t t = before; t <= after && !matched; ++t) {
    matched = date == FormatHttpDate(absl::FromUnixSeconds(t));
  }
  EXPECT_TRUE(matched) << date << " is not the IMF-fixdate of a second in [" << before << ", "
                       << after << "]";
}

int64_t WallSeconds() { return absl::ToUnixSeconds(absl::Now()); }

TEST(HttpServiceTest, PlaintextIsAnsweredByteForByte) {
  HttpServer server;
  Client client(server.port());
  ASSERT_TRUE(client.connected());
  const int64_t before = WallSeconds();
  ASSERT_TRUE(client.Send(kHttpGetPlaintext));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  const int64_t after = WallSeconds();
  const std::string date = response.Header("Date");
  ExpectDateBetween(date, before, after);
  EXPECT_EQ(response.raw,
            "HTTP/1.1 200 OK\r\n"
            "Server: percore\r\n"
            "Date: " + date + "\r\n"
            "Content-Length: 13\r\n"
            "Content-Type: text/plain\r\n"
            "\r\n"
            "Hello, World!");
  EXPECT_TRUE(client.pending().empty());
}

TEST(HttpServiceTest, JsonIsAnsweredByteForByte) {
  HttpServer server;
  Client client(server.port());
  const Response response = client.Get("/json");
  const std::string date = response.Header("Date");
  EXPECT_EQ(response.raw,
            "HTTP/1.1 200 OK\r\n"
            "Server: percore\r\n"
            "Date: " + date + "\r\n"
            "Content-Length: 27\r\n"
            "Content-Type: application/json\r\n"
            "\r\n"
            "{\"message\":\"Hello, World!\"}");
}

TEST(HttpServiceTest, IndexPageLinksToTheOtherRoutes) {
  HttpOptions options;
  options.metrics = [] { return std::string("m 1\n"); };
  HttpServer server(std::move(options));
  Client client(server.port());
  const Response response = client.Get("/");
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.Header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(response.body.find("percore"), std::string::npos);
  EXPECT_NE(response.body.find("<a href=\"/plaintext\">"), std::string::npos);
  EXPECT_NE(response.body.find("<a href=\"/json\">"), std::string::npos);
  EXPECT_NE(response.body.find("<a href=\"/metrics\">"), std::string::npos);
  EXPECT_EQ(response.Header("Content-Length"), std::to_string(response.body.size()));
}

TEST(HttpServiceTest, MetricsComeFromTheCallback) {
  HttpOptions options;
  options.metrics = [] { return std::string("# TYPE percore_up gauge\npercore_up 1\n"); };
  HttpServer server(std::move(options));
  Client client(server.port());
  const Response response = client.Get("/metrics");
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.Header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response.body, "# TYPE percore_up gauge\npercore_up 1\n");
}

TEST(HttpServiceTest, MetricsWithoutCallbackIsNotFound) {
  HttpServer server;
  Client client(server.port());
  EXPECT_EQ(client.Get("/metrics").status_line, "HTTP/1.1 404 Not Found");
}

TEST(HttpServiceTest, KeepAliveIsTheDefaultInHttp11) {
  HttpServer server;
  {
    Client client(server.port());
    for (int i = 0; i < 5; ++i) {
      const Response response = client.Get(i % 2 ? "/json" : "/plaintext");
      EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
      EXPECT_FALSE(response.HasHeader("Connection"));
    }
  }  // the client closes first: no lingering on Stop
  server.server().Stop();
  EXPECT_EQ(server.Requests(), 5u);
  EXPECT_EQ(server.Errors(), 0u);
}

TEST(HttpServiceTest, ConnectionCloseIsHonoured) {
  HttpServer server;
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send(std::string(test::kHttpGetPlaintextThenClose) +
                            std::string(kHttpGetJson)));  // the second is never answered
    Response response;
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.body, "Hello, World!");
    EXPECT_EQ(response.Header("Connection"), "close");
    EXPECT_TRUE(client.WaitForClose());
  }  // the client closes first: no lingering on Stop
  server.server().Stop();
  EXPECT_EQ(server.Closed(CloseReason::kServiceClose), 1u);
}

TEST(HttpServiceTest, Http10ClosesUnlessKeepAliveIsAsked) {
  HttpServer server;
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send("GET /plaintext HTTP/1.0\r\n\r\n"));
    Response response;
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(response.Header("Connection"), "close");
    EXPECT_TRUE(client.WaitForClose());
  }
  Client client(server.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client.Send("GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    Response response;
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.Header("Connection"), "keep-alive");
    EXPECT_EQ(response.body, "{\"message\":\"Hello, World!\"}");
  }
}

TEST(HttpServiceTest, HundredPipelinedRequestsAreAnsweredInOrder) {
  HttpServer server;
  {
    Client client(server.port());
    std::string batch;
    for (int i = 0; i < 100; ++i) {
      batch += i % 3 == 0 ? kHttpGetJson : kHttpGetPlaintext;
    }
    ASSERT_TRUE(client.Send(batch));
    for (int i = 0; i < 100; ++i) {
      Response response;
      ASSERT_TRUE(client.Read(&response)) << i;
      EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
      EXPECT_EQ(response.body, i % 3 == 0 ? "{\"message\":\"Hello, World!\"}" : "Hello, World!") << i;
    }
    EXPECT_TRUE(client.pending().empty());
  }  // the client closes first: no lingering on Stop
  server.server().Stop();
  EXPECT_EQ(server.Requests(), 100u);
}

TEST(HttpServiceTest, ARequestSentByteByByteIsAnswered) {
  HttpServer server;
  Client client(server.port());
  const std::string request = HttpPost("/plaintext", "abc") + std::string(kHttpGetPlaintext);
  for (char c : request) ASSERT_TRUE(client.Send(std::string_view(&c, 1)));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 405 Method Not Allowed");
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.body, "Hello, World!");
}

TEST(HttpServiceTest, HeadHasTheHeadersOfGetButNoBody) {
  HttpServer server;
  Client client(server.port());
  ASSERT_TRUE(client.Send(HttpRequestText("HEAD", "/plaintext")));
  Response response;
  ASSERT_TRUE(client.Read(&response, /*head_request=*/true));
  const std::string date = response.Header("Date");
  EXPECT_EQ(response.raw,
            "HTTP/1.1 200 OK\r\n"
            "Server: percore\r\n"
            "Date: " + date + "\r\n"
            "Content-Length: 13\r\n"
            "Content-Type: text/plain\r\n"
            "\r\n");
  // Had a body been sent, it would now precede the next response.
  const Response next = client.Get("/json");
  EXPECT_EQ(next.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(next.body, "{\"message\":\"Hello, World!\"}");
}

TEST(HttpServiceTest, UnknownPathIs404AndTheConnectionStays) {
  HttpServer server;
  {
    Client client(server.port());
    const Response response = client.Get("/nope");
    const std::string date = response.Header("Date");
    EXPECT_EQ(response.raw,
              "HTTP/1.1 404 Not Found\r\n"
              "Server: percore\r\n"
              "Date: " + date + "\r\n"
              "Content-Length: 10\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "\r\n"
              "Not Found\n");
    EXPECT_EQ(client.Get("/plaintext").body, "Hello, World!");
  }  // the client closes first: no lingering on Stop
  server.server().Stop();
  EXPECT_EQ(server.Requests(), 2u);
  EXPECT_EQ(server.Errors(), 1u);
}

TEST(HttpServiceTest, WrongMethodIs405WithAllow) {
  HttpServer server;
  Client client(server.port());
  ASSERT_TRUE(client.Send(HttpRequestText("DELETE", "/json")));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  const std::string date = response.Header("Date");
  EXPECT_EQ(response.raw,
            "HTTP/1.1 405 Method Not Allowed\r\n"
            "Server: percore\r\n"
            "Date: " + date + "\r\n"
            "Content-Length: 19\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Allow: GET, HEAD\r\n"
            "\r\n"
            "Method Not Allowed\n");
  EXPECT_EQ(client.Get("/json").status_line, "HTTP/1.1 200 OK");
}

TEST(HttpServiceTest, MalformedRequestIs400ThenClose) {
  HttpServer server;
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send(std::string(kHttpGetPlaintext) + HttpGet("/", "Bad Header\r\n")));
    Response response;
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.body, "Hello, World!");
    ASSERT_TRUE(client.Read(&response));
    const std::string date = response.Header("Date");
    EXPECT_EQ(response.raw,
              "HTTP/1.1 400 Bad Request\r\n"
              "Server: percore\r\n"
              "Date: " + date + "\r\n"
              "Content-Length: 12\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Connection: close\r\n"
              "\r\n"
              "Bad Request\n");
    EXPECT_TRUE(client.WaitForClose());
  }  // the client closes first: no lingering on Stop
  server.server().Stop();
  EXPECT_EQ(server.Closed(CloseReason::kProtocolError), 1u);
}

// One connection per request, as each refusal closes its connection.
TEST(HttpServiceTest, MalformedHostTargetOrCodingIsRefusedThenClose) {
  struct Case {
    std::string request;
    std::string_view status_line;
  };
  const std::string_view hosts[] = {"a:b:c", "[::1", "a:-1", ":80", "a:80a", "[::1]x", "a b",
                                    "a::80"};
  std::vector<Case> cases;
  for (std::string_view host : hosts) {
    cases.push_back({"GET /plaintext HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n",
                     "HTTP/1.1 400 Bad Request"});
  }
  cases.push_back({HttpGet("plaintext"), "HTTP/1.1 400 Bad Request"});
  cases.push_back({HttpRequestText("POST", "/plaintext", "Transfer-Encoding: chunked;q=1\r\n") +
                       "3\r\nabc\r\n0\r\n\r\n",
                   "HTTP/1.1 501 Not Implemented"});
  HttpServer server;
  for (const Case& c : cases) {
    Client client(server.port());
    ASSERT_TRUE(client.Send(c.request)) << c.request;
    Response response;
    ASSERT_TRUE(client.Read(&response)) << c.request;
    EXPECT_EQ(response.status_line, c.status_line) << c.request;
    EXPECT_EQ(response.Header("Connection"), "close") << c.request;
    EXPECT_TRUE(client.WaitForClose()) << c.request;
  }  // each client closes before Stop: no lingering
  server.server().Stop();
  EXPECT_EQ(server.Closed(CloseReason::kProtocolError), cases.size());
}

TEST(HttpServiceTest, HostWithPortOrIpLiteralIsServed) {
  HttpServer server;
  Client client(server.port());
  for (std::string_view host : {"localhost", "localhost:8080", "127.0.0.1:80", "[::1]",
                                "[::1]:8080", "example.com:", "a.b-c_d~e", "a%20b"}) {
    ASSERT_TRUE(client.Send("GET /plaintext HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"));
    Response response;
    ASSERT_TRUE(client.Read(&response)) << host;
    EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK") << host;
    EXPECT_EQ(response.body, "Hello, World!") << host;
  }
  // The forms that have no path to route on are still parsed and answered, not refused.
  ASSERT_TRUE(client.Send("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n"
                          "CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n"));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 404 Not Found");
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 404 Not Found");
}

TEST(HttpServiceTest, BinaryGarbageIs400ThenClose) {
  HttpServer server;
  Client client(server.port());
  ASSERT_TRUE(client.Send(std::string_view("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11)));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_TRUE(client.WaitForClose());
}

TEST(HttpServiceTest, OversizeBodyIs413ThenClose) {
  HttpServer server;
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send(HttpRequestText("POST", "/plaintext", "Content-Length: 1048577\r\n")));
    Response response;
    ASSERT_TRUE(client.Read(&response));
    const std::string date = response.Header("Date");
    EXPECT_EQ(response.raw,
              "HTTP/1.1 413 Content Too Large\r\n"
              "Server: percore\r\n"
              "Date: " + date + "\r\n"
              "Content-Length: 18\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Connection: close\r\n"
              "\r\n"
              "Content Too Large\n");
    EXPECT_TRUE(client.WaitForClose());
  }  // the client closes first: no lingering on Stop
  server.server().Stop();
  EXPECT_EQ(server.Closed(CloseReason::kLimitExceeded), 1u);
}

TEST(HttpServiceTest, BodyLimitIsAnOption) {
  HttpOptions options;
  options.max_body_bytes = 10;
  options.routes.Post("/echo", [](const HttpRequest& request, HttpResponse& response) {
    response.set_body(request.body);
  });
  HttpServer server(std::move(options));
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send(HttpPost("/echo", "0123456789")));
    Response response;
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.body, "0123456789");
  }
  Client client(server.port());
  ASSERT_TRUE(client.Send(HttpRequestText("POST", "/echo", "Transfer-Encoding: chunked\r\n") +
                          "6\r\n012345\r\n6\r\n678901\r\n0\r\n\r\n"));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 413 Content Too Large");
  EXPECT_TRUE(client.WaitForClose());
}

TEST(HttpServiceTest, OversizeHeadIs431ThenClose) {
  HttpServer server;
  Client client(server.port());
  ASSERT_TRUE(client.Send(HttpGet("/plaintext", "X-Big: " + std::string(9000, 'x') + "\r\n")));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  const std::string date = response.Header("Date");
  EXPECT_EQ(response.raw,
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "Server: percore\r\n"
            "Date: " + date + "\r\n"
            "Content-Length: 32\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Connection: close\r\n"
            "\r\n"
            "Request Header Fields Too Large\n");
  EXPECT_TRUE(client.WaitForClose());
}

TEST(HttpServiceTest, UnsupportedVersionIs505) {
  HttpServer server;
  Client client(server.port());
  ASSERT_TRUE(client.Send("GET / HTTP/2.0\r\nHost: t\r\n\r\n"));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 505 HTTP Version Not Supported");
  EXPECT_TRUE(client.WaitForClose());
}

TEST(HttpServiceTest, UserRoutesGetTheRequestAndFillTheResponse) {
  HttpOptions options;
  options.routes.Post("/echo", [](const HttpRequest& request, HttpResponse& response) {
    response.set_status(201);
    response.set_content_type("application/octet-stream");
    response.AddHeader("X-Query", request.query);
    response.AddHeader("X-Agent", request.Header("user-agent"));
    response.set_body(request.body);
  });
  options.routes.Get("/bye", [](const HttpRequest&, HttpResponse& response) {
    response.set_body("bye\n");
    response.set_close_connection(true);
  });
  options.routes.Get("/plaintext", [](const HttpRequest&, HttpResponse& response) {
    response.set_body("mine");  // an application route wins over the built-in one
  });
  HttpServer server(std::move(options));
  Client client(server.port());
  ASSERT_TRUE(client.Send(
      HttpRequestText("POST", "/echo?k=v", "User-Agent: unit\r\nTransfer-Encoding: chunked\r\n") +
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  const std::string date = response.Header("Date");
  EXPECT_EQ(response.raw,
            "HTTP/1.1 201 Created\r\n"
            "Server: percore\r\n"
            "Date: " + date + "\r\n"
            "Content-Length: 11\r\n"
            "Content-Type: application/octet-stream\r\n"
            "X-Query: k=v\r\n"
            "X-Agent: unit\r\n"
            "\r\n"
            "hello world");
  EXPECT_EQ(client.Get("/plaintext").body, "mine");
  const Response bye = client.Get("/bye");
  EXPECT_EQ(bye.body, "bye\n");
  EXPECT_EQ(bye.Header("Connection"), "close");
  EXPECT_TRUE(client.WaitForClose());
}

TEST(HttpServiceTest, ExpectContinueGetsAnInterimResponse) {
  HttpOptions options;
  options.routes.Post("/upload", [](const HttpRequest& request, HttpResponse& response) {
    response.set_body(std::to_string(request.body.size()));
  });
  HttpServer server(std::move(options));
  Client client(server.port());
  ASSERT_TRUE(
      client.Send(HttpRequestText("POST", "/upload", "Content-Length: 4\r\nExpect: 100-continue\r\n")));
  Response interim;
  ASSERT_TRUE(client.Read(&interim));
  EXPECT_EQ(interim.raw, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(client.Send("data"));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.body, "4");
}

TEST(HttpServiceTest, SlowHeadersGet408AfterTheHeaderTimeout) {
  HttpOptions options;
  options.header_timeout = absl::Milliseconds(100);
  HttpServer server(std::move(options));
  {
    Client client(server.port());
    // The request without its final blank line: never finished.
    ASSERT_TRUE(client.Send(kHttpGetPlaintext.substr(0, kHttpGetPlaintext.size() - 2)));
    Response response;
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.status_line, "HTTP/1.1 408 Request Timeout");
    EXPECT_EQ(response.Header("Connection"), "close");
    EXPECT_TRUE(client.WaitForClose());
  }  // the client closes first: no lingering on Stop
  server.server().Stop();
  EXPECT_EQ(server.Closed(CloseReason::kReadTimeout), 1u);
}

TEST(HttpServiceTest, IdleKeepAliveConnectionsHaveNoHeaderTimeout) {
  HttpOptions options;
  options.header_timeout = absl::Milliseconds(10);
  HttpServer server(std::move(options));
  Client client(server.port());
  EXPECT_EQ(client.Get("/plaintext").body, "Hello, World!");
  // Between requests nothing is pending, so the header deadline is not armed: the connection
  // must still serve once the timeout has passed many times over.
  pollfd p{client.fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 100), 0) << "the server wrote or closed while idle";
  EXPECT_EQ(client.Get("/json").status_line, "HTTP/1.1 200 OK");
}

TEST(HttpServiceTest, OverConnectionLimitTheDistributorAnswers503) {
  ServerOptions server_options;
  server_options.loops = 2;
  server_options.max_connections = 1;
  HttpServer server(HttpOptions{}, server_options);
  Client first(server.port());
  EXPECT_EQ(first.Get("/plaintext").status_line, "HTTP/1.1 200 OK");  // admitted and counted
  Client second(server.port());
  ASSERT_TRUE(second.connected());
  EXPECT_EQ(second.ReadToEof(), HttpOverloadResponse());
}

TEST(HttpServiceTest, OverloadResponseIsAValidHttpResponse) {
  const std::string_view reply = HttpOverloadResponse();
  const size_t head_end = reply.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string_view::npos);
  EXPECT_EQ(reply.substr(0, reply.find("\r\n")), "HTTP/1.1 503 Service Unavailable");
  EXPECT_NE(reply.find("\r\nConnection: close\r\n"), std::string_view::npos);
  const std::string_view body = reply.substr(head_end + 4);
  EXPECT_NE(reply.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string_view::npos);
  EXPECT_EQ(NewHttpService()->OverloadResponse(), reply);
}

TEST(HttpServiceTest, ManyConnectionsAcrossLoops) {
  HttpServer server;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(std::make_unique<Client>(server.port()));
  for (int round = 0; round < 3; ++round) {
    for (auto& client : clients) ASSERT_TRUE(client->Send(kHttpGetPlaintext));
    for (auto& client : clients) {
      Response response;
      ASSERT_TRUE(client->Read(&response));
      EXPECT_EQ(response.body, "Hello, World!");
    }
  }
  clients.clear();
  server.server().Stop();
  EXPECT_EQ(server.Requests(), 60u);
}

}  // namespace
}  // namespace percore
