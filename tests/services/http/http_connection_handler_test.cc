// The request state of HttpConnectionHandler over real connections to a one-loop server: a
// connection holds one only while a request is in progress, gives it back to the loop once it
// has answered, and so the loop makes as many as requests were in progress at once, however
// many connections it serves.

#include "services/http/http_connection_handler.h"

#include <cstddef>
#include <future>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/server.h"
#include "services/http/http_service.h"
#include "tests/services/http/http_test_client.h"
#include "tests/testing/deadline.h"
#include "tests/testing/http_requests.h"
#include "tests/testing/server_probe.h"
#include "tests/testing/test_backend.h"

namespace percore {
namespace {

using http_test::Client;
using http_test::Response;
using test::Deadline;

constexpr absl::Duration kWait = absl::Seconds(10);

// What an idle connection costs the handler: one malloc chunk of 48 bytes (glibc hands out 40
// usable bytes in it), with no request state.
TEST(HttpConnectionHandlerTest, IdleHandlerFitsA48ByteChunk) {
  EXPECT_LE(sizeof(HttpConnectionHandler), 40u);
}

// The loop's figures of its request states.
struct States {
  size_t made = 0;  // made since the server started
  size_t kept = 0;  // given back and waiting for a request
  bool operator==(const States&) const = default;
};

std::ostream& operator<<(std::ostream& out, const States& states) {
  return out << "{made " << states.made << ", kept " << states.kept << "}";
}

// A one-loop server with the HTTP service (and an echo of POST /echo) on 127.0.0.1, port 0.
class OneLoopHttpServer {
 public:
  explicit OneLoopHttpServer(HttpOptions options = {}) : server_(OneLoop()) {
    options.routes.Post("/echo", [](const HttpRequest& request, HttpResponse& response) {
      response.set_body(request.body);
    });
    service_ = std::make_shared<HttpService>(std::move(options));
    EXPECT_TRUE(server_.AddService(service_).ok());
    auto listener = server_.Listen("http", {"127.0.0.1", 0});
    EXPECT_TRUE(listener.ok()) << listener.status();
    if (listener.ok()) port_ = listener->bound.port();
    EXPECT_TRUE(server_.Start().ok());
  }
  ~OneLoopHttpServer() { server_.Stop(); }

  uint16_t port() const { return port_; }

  // Read on the loop. A loop that does not answer in time fails the test.
  States RequestStates() {
    auto states = std::make_shared<States>();
    const bool ran = test::RunOnLoop(
        server_.loop(0),
        [states, service = service_] {
          const FreeList<HttpRequestState>& list = service->local_request_states();
          *states = States{list.made(), list.free_count()};
        },
        Deadline::In(kWait));
    EXPECT_TRUE(ran) << "the loop did not answer";
    return *states;
  }

  // Waits until the loop's figures are `expected`; returns the last ones read.
  States WaitForRequestStates(States expected) {
    States last;
    test::WaitUntil([&] { return (last = RequestStates()) == expected; }, Deadline::In(kWait));
    return last;
  }

 private:
  static ServerOptions OneLoop() {
    ServerOptions options;
    options.loops = 1;
    options.backend = test::TestBackend();
    return options;
  }

  Server server_;
  std::shared_ptr<HttpService> service_;
  uint16_t port_ = 0;
};

TEST(HttpConnectionHandlerTest, IdleConnectionsAfterARequestHoldNoRequestState) {
  OneLoopHttpServer server;
  EXPECT_EQ(server.RequestStates(), (States{0, 0}));
  // One request at a time, each on a connection of its own that stays open: the one state the
  // first request took serves every later one.
  constexpr int kConnections = 100;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kConnections; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    ASSERT_EQ(clients.back()->Get("/plaintext").body, "Hello, World!") << "connection " << i;
  }
  EXPECT_EQ(server.RequestStates(), (States{1, 1}));
  // A second round on the same (idle) connections, one request each on every connection.
  for (auto& client : clients) ASSERT_EQ(client->Get("/json").status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(server.RequestStates(), (States{1, 1}));
}

TEST(HttpConnectionHandlerTest, RequestsInProgressAtOnceEachHoldAState) {
  OneLoopHttpServer server;
  constexpr int kPartial = 8;
  const std::string request(test::kHttpGetPlaintext);
  std::vector<std::unique_ptr<Client>> partial;
  for (int i = 0; i < kPartial; ++i) {
    partial.push_back(std::make_unique<Client>(server.port()));
    ASSERT_TRUE(partial.back()->Send(request.substr(0, 10)));
  }
  EXPECT_EQ(server.WaitForRequestStates(States{kPartial, 0}), (States{kPartial, 0}));
  // A complete request meanwhile needs one more.
  {
    Client other(server.port());
    EXPECT_EQ(other.Get("/plaintext").body, "Hello, World!");
  }
  EXPECT_EQ(server.RequestStates(), (States{kPartial + 1, 1}));
  for (auto& client : partial) {
    ASSERT_TRUE(client->Send(request.substr(10)));
    Response response;
    ASSERT_TRUE(client->Read(&response));
    EXPECT_EQ(response.body, "Hello, World!");
  }
  EXPECT_EQ(server.RequestStates(), (States{kPartial + 1, kPartial + 1}));
  // Later connections find them kept.
  for (int i = 0; i < 20; ++i) {
    Client later(server.port());
    EXPECT_EQ(later.Get("/plaintext").body, "Hello, World!");
  }
  EXPECT_EQ(server.RequestStates(), (States{kPartial + 1, kPartial + 1}));
}

// Every split of a request with a body between two reads: the part that came first stays with
// the connection's request state (which it holds until the request is answered) and the answer
// is the one the whole request gets.
TEST(HttpConnectionHandlerTest, RequestSplitAtEveryByteKeepsItsStateUntilAnswered) {
  OneLoopHttpServer server;
  const std::string request = test::HttpPost("/echo", "a body of some bytes");
  Client client(server.port());
  ASSERT_EQ(client.Get("/plaintext").body, "Hello, World!");
  ASSERT_EQ(server.RequestStates(), (States{1, 1}));
  for (size_t split = 1; split < request.size(); ++split) {
    ASSERT_TRUE(client.Send(request.substr(0, split)));
    // The loop has read the first part once the connection holds the state.
    ASSERT_EQ(server.WaitForRequestStates(States{1, 0}), (States{1, 0})) << "split at " << split;
    ASSERT_TRUE(client.Send(request.substr(split)));
    Response response;
    ASSERT_TRUE(client.Read(&response)) << "split at " << split;
    EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK") << "split at " << split;
    EXPECT_EQ(response.body, "a body of some bytes") << "split at " << split;
    // Given back before the answer was written.
    ASSERT_EQ(server.RequestStates(), (States{1, 1})) << "split at " << split;
  }
}

TEST(HttpConnectionHandlerTest, PipelinedRequestsShareOneStateAndLeaveNone) {
  OneLoopHttpServer server;
  Client client(server.port());
  std::string batch;
  for (int i = 0; i < 10; ++i) batch += test::HttpPost("/echo", "request " + std::to_string(i));
  ASSERT_TRUE(client.Send(batch));
  for (int i = 0; i < 10; ++i) {
    Response response;
    ASSERT_TRUE(client.Read(&response)) << "response " << i;
    EXPECT_EQ(response.body, "request " + std::to_string(i));
  }
  EXPECT_EQ(server.RequestStates(), (States{1, 1}));
}

// The answer of an asynchronous route carries what it needs: the connection waits for it
// without holding a request state.
TEST(HttpConnectionHandlerTest, ConnectionWaitingForAnAsynchronousAnswerHoldsNoState) {
  std::promise<HttpResponder> handed_over;
  HttpOptions options;
  options.routes.GetAsync("/later", [&handed_over](const HttpRequest&, HttpResponder responder) {
    handed_over.set_value(std::move(responder));
  });
  OneLoopHttpServer server(std::move(options));
  Client client(server.port());
  ASSERT_TRUE(client.Send(test::HttpGet("/later")));
  std::future<HttpResponder> later = handed_over.get_future();
  ASSERT_EQ(later.wait_for(absl::ToChronoNanoseconds(kWait)), std::future_status::ready);
  HttpResponder responder = later.get();
  EXPECT_EQ(server.RequestStates(), (States{1, 1}));
  responder.response().set_body("answered later");
  responder.Send();
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.body, "answered later");
  // The connection carries on as before.
  EXPECT_EQ(client.Get("/plaintext").body, "Hello, World!");
  EXPECT_EQ(server.RequestStates(), (States{1, 1}));
}

TEST(HttpConnectionHandlerTest, ConnectionClosedMidRequestGivesItsStateBack) {
  OneLoopHttpServer server;
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send("GET /plaintext HTTP/1.1\r\nHo"));
    ASSERT_EQ(server.WaitForRequestStates(States{1, 0}), (States{1, 0}));
  }  // closed by the client
  EXPECT_EQ(server.WaitForRequestStates(States{1, 1}), (States{1, 1}));
  // The state given back holds nothing of the abandoned request.
  Client next(server.port());
  EXPECT_EQ(next.Get("/json").status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(server.RequestStates(), (States{1, 1}));
}

TEST(HttpConnectionHandlerTest, HeaderTimeoutAnswers408AndGivesTheStateBack) {
  HttpOptions options;
  options.header_timeout = absl::Milliseconds(50);
  OneLoopHttpServer server(std::move(options));
  Client client(server.port());
  ASSERT_TRUE(client.Send("GET /plaintext HTTP/1.1\r\n"));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 408 Request Timeout");
  EXPECT_TRUE(client.WaitForClose());
  EXPECT_EQ(server.RequestStates(), (States{1, 1}));
}

TEST(HttpConnectionHandlerTest, RejectedRequestGivesTheStateBack) {
  OneLoopHttpServer server;
  Client client(server.port());
  ASSERT_TRUE(client.Send("GET /plaintext HTTP/1.1\r\nHost: test\r\nbad field\r\n\r\n"));
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_TRUE(client.WaitForClose());
  EXPECT_EQ(server.RequestStates(), (States{1, 1}));
}

}  // namespace
}  // namespace percore
