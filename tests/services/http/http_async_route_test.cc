// Asynchronous routes (Router::HandleAsync, HttpResponder) on a running two-loop server: answers
// after a timer, after work on another loop and from a thread of the test's; pipelined requests
// answered in order around them; clients that leave before their answer; responders dropped
// unanswered; backpressure, keep-alive, the header timeout and a drain around deferred answers.

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"
#include "reactor/sharded.h"
#include "services/http/http_service.h"
#include "tests/services/http/http_test_client.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/http_requests.h"

namespace percore {
namespace {

using http_test::Client;
using http_test::HttpServer;
using http_test::Response;
using test::Deadline;
using test::HttpGet;
using test::kHttpGetPlaintext;

constexpr absl::Duration kWait = absl::Seconds(10);

// Responders that a route hands over to the test's thread, which answers or drops them when it
// chooses.
class ResponderBox {
 public:
  void Put(HttpResponder responder) {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_.push_back(std::move(responder));
    arrived_.notify_all();
  }

  // The oldest one, waiting for it until `deadline`; nullopt if none came.
  std::optional<HttpResponder> Take(Deadline deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!arrived_.wait_for(lock, absl::ToChronoNanoseconds(deadline.remaining()),
                           [&] { return !waiting_.empty(); })) {
      return std::nullopt;
    }
    HttpResponder responder = std::move(waiting_.front());
    waiting_.pop_front();
    return responder;
  }

 private:
  std::mutex mu_;
  std::condition_variable arrived_;
  std::deque<HttpResponder> waiting_;
};

// Per-loop state for the routes' cross-loop work. It belongs to a service of its own, added to
// the server without a listener, so that the server builds a shard on every loop.
struct Tally {
  explicit Tally(const ShardInfo& info) : shard(info.index) {}
  const ShardId shard;
  int64_t calls = 0;
};

class TallyService final : public Service {
 public:
  std::string_view name() const override { return "tally"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override { return std::make_unique<Refuse>(); }

  Sharded<Tally> shards{*this, [](const ShardInfo& info) { return std::make_unique<Tally>(info); }};

 private:
  // It listens nowhere, so no connection ever gets one.
  class Refuse final : public Handler {
    Action OnData(Connection& conn, Buffer& input) override {
      return Action::CloseNow(CloseReason::kServiceClose);
    }
  };
};

// The shard of the loop after the calling one: always another loop on a server with two or more.
ShardId NextShard(const Sharded<Tally>& shards) { return (shards.here() + 1) % shards.count(); }

// GET /later?NAME answers "later, NAME" 20 ms after the request, from a timer on its loop.
void AddLaterRoute(HttpOptions& options) {
  options.routes.GetAsync("/later", [](const HttpRequest& request, HttpResponder responder) {
    EventLoop& loop = responder.loop();
    loop.RunAfter(absl::Milliseconds(20), [name = std::string(request.query),
                                            responder = std::move(responder)]() mutable {
      responder.response().set_content_type("text/plain");
      responder.response().set_body("later, " + name);
      responder.Send();
    });
  });
}

TEST(HttpAsyncRouteTest, AnswersAfterATimer) {
  HttpOptions options;
  AddLaterRoute(options);
  HttpServer server(std::move(options));
  {
    Client client(server.port());
    const Response response = client.Get("/later?ada");
    const std::string date = response.Header("Date");
    EXPECT_EQ(date.size(), 29u);
    EXPECT_EQ(response.raw,
              "HTTP/1.1 200 OK\r\n"
              "Server: percore\r\n"
              "Date: " + date + "\r\n"
              "Content-Length: 10\r\n"
              "Content-Type: text/plain\r\n"
              "\r\n"
              "later, ada");
    // HEAD on the asynchronous GET route: its fields, no body (a body would garble what follows).
    ASSERT_TRUE(client.Send(test::HttpRequestText("HEAD", "/later?bob")));
    Response head;
    ASSERT_TRUE(client.Read(&head, /*head_request=*/true));
    EXPECT_EQ(head.status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(head.Header("Content-Length"), "10");
    // HTTP/1.0 asking to persist: the deferred answer states it, as an immediate one does.
    ASSERT_TRUE(client.Send("GET /later?cy HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    Response old;
    ASSERT_TRUE(client.Read(&old));
    EXPECT_EQ(old.Header("Connection"), "keep-alive");
    EXPECT_EQ(old.body, "later, cy");
    EXPECT_EQ(client.Get("/plaintext").body, "Hello, World!");
    EXPECT_TRUE(client.pending().empty());
  }  // the client closes first: no lingering on Stop
  server.server().Stop();
  EXPECT_EQ(server.Requests(), 4u);
  EXPECT_EQ(server.Errors(), 0u);
}

TEST(HttpAsyncRouteTest, AnswersAfterWorkOnAnotherLoop) {
  auto tally = std::make_shared<TallyService>();
  HttpOptions options;
  Sharded<Tally>* const shards = &tally->shards;
  options.routes.GetAsync("/elsewhere", [shards](const HttpRequest&, HttpResponder responder) {
    const ShardId here = shards->here();
    EventLoop& origin = responder.loop();
    origin.RunOn(
        shards->owner_loop(NextShard(*shards)), [] { return EventLoop::Current()->index(); },
        [here, responder = std::move(responder)](int worked_on) mutable {
          // "asked-on worked-on answered-on"
          const int answered_on = EventLoop::Current()->index();
          responder.response().set_body(absl::StrCat(here, " ", worked_on, " ", answered_on));
          responder.Send();
        });
  });
  HttpServer server(std::move(options), HttpServer::TwoLoops(), {tally});
  {
    // Round robin puts these on both loops.
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 4; ++i) clients.push_back(std::make_unique<Client>(server.port()));
    for (auto& client : clients) {
      for (int round = 0; round < 3; ++round) {
        const Response response = client->Get("/elsewhere");
        EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
        const std::vector<std::string> loops = absl::StrSplit(response.body, ' ');
        ASSERT_EQ(loops.size(), 3u) << response.body;
        EXPECT_NE(loops[1], loops[0]) << "the work ran on the connection's own loop";
        EXPECT_EQ(loops[2], loops[0]) << "the answer was not given on the connection's loop";
      }
    }
  }
  server.server().Stop();
  EXPECT_EQ(server.Requests(), 12u);
}

TEST(HttpAsyncRouteTest, ShardedCallsAnswerInRequestOrder) {
  auto tally = std::make_shared<TallyService>();
  HttpOptions options;
  Sharded<Tally>* const shards = &tally->shards;
  options.routes.GetAsync("/count", [shards](const HttpRequest& request, HttpResponder responder) {
    Connection& conn = *responder.connection();
    // The owner's work runs at once when it is this loop (and the answer is given before the
    // route returns), else on the owner's loop with the continuation back here.
    shards->Call(
        conn, shards->OwnerOf(request.query),
        [](Tally& tally) {
          ++tally.calls;
          return tally.shard;
        },
        [responder = std::move(responder)](Connection&, ShardId shard) mutable {
          responder.response().set_body(absl::StrCat(shard));
          responder.Send();
        });
  });
  HttpServer server(std::move(options), HttpServer::TwoLoops(), {tally});
  constexpr int kKeys = 40;
  std::vector<int> owned(2, 0);
  {
    Client client(server.port());
    std::string batch;
    for (int i = 0; i < kKeys; ++i) batch += HttpGet("/count?k" + std::to_string(i));
    ASSERT_TRUE(client.Send(batch));
    for (int i = 0; i < kKeys; ++i) {
      Response response;
      ASSERT_TRUE(client.Read(&response)) << i;
      const ShardId owner = tally->shards.OwnerOf("k" + std::to_string(i));
      EXPECT_EQ(response.body, std::to_string(owner)) << i;
      ++owned[owner];
    }
    EXPECT_TRUE(client.pending().empty());
  }
  // Both owners were asked, so the connection saw answers given at once and answers from the
  // other loop, interleaved.
  EXPECT_GT(owned[0], 0);
  EXPECT_GT(owned[1], 0);
  server.server().Stop();
  EXPECT_EQ(server.Requests(), static_cast<uint64_t>(kKeys));
  int64_t calls = 0;
  tally->shards.ForEachShard([&](ShardId, const Tally& t) { calls += t.calls; });
  EXPECT_EQ(calls, kKeys);
}

TEST(HttpAsyncRouteTest, AnswersSentFromAnotherThread) {
  ResponderBox box;
  HttpOptions options;
  options.routes.PostAsync("/park", [&box](const HttpRequest& request, HttpResponder responder) {
    // Copied now: the request's views do not outlive the call.
    responder.response().set_body(std::string(request.body));
    box.Put(std::move(responder));
  });
  HttpServer server(std::move(options));
  Client client(server.port());
  ASSERT_TRUE(client.Send(test::HttpPost("/park", "first") + test::HttpPost("/park", "second")));
  for (std::string_view body : {"first", "second"}) {
    std::optional<HttpResponder> responder = box.Take(Deadline::In(kWait));
    ASSERT_TRUE(responder.has_value()) << body;
    responder->response().AddHeader("X-Answered-By", "the test's thread");
    responder->Send();
    responder->Send();  // once only: a second Send does nothing
    EXPECT_TRUE(responder->answered());
    Response response;
    ASSERT_TRUE(client.Read(&response)) << body;
    EXPECT_EQ(response.body, body);
    EXPECT_EQ(response.Header("X-Answered-By"), "the test's thread");
  }
  EXPECT_EQ(client.Get("/plaintext").body, "Hello, World!");
  EXPECT_TRUE(client.pending().empty());
}

TEST(HttpAsyncRouteTest, PipelinedRequestsAreAnsweredInOrderAroundDeferredOnes) {
  HttpOptions options;
  AddLaterRoute(options);
  options.routes.Get("/fast", [](const HttpRequest&, HttpResponse& response) { response.set_body("fast"); });
  options.routes.GetAsync("/fast-async", [](const HttpRequest&, HttpResponder responder) {
    responder.response().set_body("fast-async");
    responder.Send();  // before the route returns: queued at once
  });
  HttpServer server(std::move(options));
  {
    Client client(server.port());
    // One write: a slow request, two fast ones behind it, another slow one, then garbage.
    ASSERT_TRUE(client.Send(HttpGet("/later?slow") + HttpGet("/fast") + HttpGet("/fast-async") +
                            HttpGet("/later?last") + HttpGet("/", "Bad Header\r\n")));
    for (std::string_view body : {"later, slow", "fast", "fast-async", "later, last"}) {
      Response response;
      ASSERT_TRUE(client.Read(&response)) << body;
      EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK") << body;
      EXPECT_EQ(response.body, body);
    }
    Response bad;
    ASSERT_TRUE(client.Read(&bad));
    EXPECT_EQ(bad.status_line, "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(bad.Header("Connection"), "close");
    EXPECT_TRUE(client.WaitForClose());
  }  // the client closes first: no lingering on Stop
  server.server().Stop();
  EXPECT_EQ(server.Requests(), 5u);
  EXPECT_EQ(server.Errors(), 1u);
  EXPECT_EQ(server.Closed(CloseReason::kProtocolError), 1u);
}

TEST(HttpAsyncRouteTest, AnswersToClientsThatLeftAreDropped) {
  ResponderBox box;
  HttpOptions options;
  options.routes.GetAsync("/park", [&box](const HttpRequest&, HttpResponder responder) {
    box.Put(std::move(responder));
  });
  HttpServer server(std::move(options));
  // Three clients send a request and reset their connection while its answer is away.
  std::vector<HttpResponder> orphans;
  for (int i = 0; i < 3; ++i) {
    Client gone(server.port());
    ASSERT_TRUE(gone.Send(HttpGet("/park")));
    std::optional<HttpResponder> responder = box.Take(Deadline::In(kWait));
    ASSERT_TRUE(responder.has_value());
    orphans.push_back(std::move(*responder));
    ASSERT_TRUE(test::ResetOnClose(gone.fd()).ok());
  }
  ASSERT_TRUE(test::WaitUntil(
      [&] { return server.server().Totals().closed_by(CloseReason::kPeerReset) == 3; }, Deadline::In(kWait)))
      << server.server().Totals().closed_by(CloseReason::kPeerReset);
  // Now answer them: from this thread, on the connection's own loop, and by dropping one.
  orphans[0].response().set_body("nobody reads this");
  orphans[0].Send();
  std::promise<void> sent_on_loop;
  orphans[1].loop().Post([&] {
    orphans[1].Send();
    sent_on_loop.set_value();
  });
  ASSERT_EQ(sent_on_loop.get_future().wait_for(absl::ToChronoNanoseconds(kWait)), std::future_status::ready);
  orphans.clear();

  // A client that closes (FIN) while its answer is away: the answer is still written (the
  // connection does not read, so it has not seen the FIN), then the connection ends.
  {
    Client gone(server.port());
    ASSERT_TRUE(gone.Send(HttpGet("/park")));
    std::optional<HttpResponder> responder = box.Take(Deadline::In(kWait));
    ASSERT_TRUE(responder.has_value());
    ::shutdown(gone.fd(), SHUT_WR);
    responder->Send();
    Response response;
    ASSERT_TRUE(gone.Read(&response));
    EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
    EXPECT_TRUE(gone.WaitForClose());
  }

  // The server carries on.
  Client client(server.port());
  EXPECT_EQ(client.Get("/plaintext").body, "Hello, World!");
  ASSERT_TRUE(client.Send(HttpGet("/park")));
  std::optional<HttpResponder> responder = box.Take(Deadline::In(kWait));
  ASSERT_TRUE(responder.has_value());
  responder->response().set_body("still here");
  responder->Send();
  Response response;
  ASSERT_TRUE(client.Read(&response));
  EXPECT_EQ(response.body, "still here");
  ASSERT_TRUE(
      test::WaitUntil([&] { return server.server().Totals().conns_active == 1; }, Deadline::In(kWait)));
  // Only the requests whose client was there for the answer count.
  EXPECT_EQ(server.server().Totals().services.at(0).requests, 3u);
}

TEST(HttpAsyncRouteTest, ADroppedResponderAnswers500) {
  ResponderBox box;
  HttpOptions options;
  options.routes.GetAsync("/drop-now", [](const HttpRequest&, HttpResponder) {});
  options.routes.GetAsync("/drop-later", [](const HttpRequest&, HttpResponder responder) {
    EventLoop& loop = responder.loop();
    loop.RunAfter(absl::Milliseconds(5), [responder = std::move(responder)]() mutable {
      responder.response().set_body("never sent");
      HttpResponder dropped = std::move(responder);
    });
  });
  options.routes.GetAsync("/drop-elsewhere", [&box](const HttpRequest&, HttpResponder responder) {
    box.Put(std::move(responder));
  });
  options.routes.GetAsync("/throw", [](const HttpRequest&, HttpResponder) {
    throw std::runtime_error("route failed");
  });
  HttpServer server(std::move(options));
  {
    Client client(server.port());
    for (std::string_view path : {"/drop-now", "/drop-later", "/drop-elsewhere"}) {
      ASSERT_TRUE(client.Send(HttpGet(path)));
      if (path == "/drop-elsewhere") {
        std::optional<HttpResponder> responder = box.Take(Deadline::In(kWait));
        ASSERT_TRUE(responder.has_value());
        responder.reset();  // destroyed on this thread, unanswered
      }
      Response response;
      ASSERT_TRUE(client.Read(&response)) << path;
      const std::string date = response.Header("Date");
      EXPECT_EQ(response.raw,
                "HTTP/1.1 500 Internal Server Error\r\n"
                "Server: percore\r\n"
                "Date: " + date + "\r\n"
                "Content-Length: 22\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "\r\n"
                "Internal Server Error\n")
          << path;
    }
    // A 500 keeps the connection.
    EXPECT_EQ(client.Get("/plaintext").body, "Hello, World!");
  }
  {
    // A route that throws costs its connection, closed at once without an answer.
    Client client(server.port());
    ASSERT_TRUE(client.Send(HttpGet("/throw")));
    EXPECT_TRUE(client.WaitForClose());
  }
  server.server().Stop();
  EXPECT_EQ(server.Requests(), 4u);
  EXPECT_EQ(server.Errors(), 3u);
  EXPECT_EQ(server.Closed(CloseReason::kHandlerError), 1u);
}

TEST(HttpAsyncRouteTest, PipelinedPastTheHighWaterMark) {
  constexpr int kRequests = 300;
  constexpr size_t kBody = 64 << 10;
  auto tally = std::make_shared<TallyService>();
  HttpOptions options;
  Sharded<Tally>* const shards = &tally->shards;
  options.routes.GetAsync("/blob", [shards](const HttpRequest& request, HttpResponder responder) {
    const char fill = static_cast<char>('a' + request.query.size() % 26);
    EventLoop& origin = responder.loop();
    origin.RunOn(
        shards->owner_loop(NextShard(*shards)), [fill] { return std::string(kBody, fill); },
        [index = std::string(request.query), responder = std::move(responder)](std::string body) mutable {
          responder.response().set_body(index + ":" + body);
          responder.Send();
        });
  });
  ServerOptions server_options = HttpServer::TwoLoops();
  server_options.connection.high_water = 128 << 10;
  server_options.connection.low_water = 32 << 10;
  // Far below what the replies add up to: a server that answered past the high-water mark
  // would close the connection as output_overflow.
  server_options.connection.output_cap = 512 << 10;
  HttpServer server(std::move(options), server_options, {tally});
  {
    Client client(server.port());
    const int small = 64 << 10;
    ASSERT_EQ(setsockopt(client.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    // Query i is i characters long (so each reply says which request it answers and has a
    // different fill).
    std::string batch;
    for (int i = 0; i < kRequests; ++i) batch += HttpGet("/blob?" + std::string(i, 'q'));
    ASSERT_TRUE(client.Send(batch));
    // Nothing is read until the server has backed up behind its output.
    ASSERT_TRUE(test::WaitUntil([&] { return server.server().Totals().backpressure_pauses > 0; },
                                Deadline::In(kWait)));
    for (int i = 0; i < kRequests; ++i) {
      Response response;
      ASSERT_TRUE(client.Read(&response)) << i;
      const std::string expected =
          std::string(i, 'q') + ":" + std::string(kBody, static_cast<char>('a' + i % 26));
      ASSERT_EQ(response.body.size(), expected.size()) << i;
      ASSERT_TRUE(response.body == expected) << "reply " << i << " out of order";
    }
    EXPECT_TRUE(client.pending().empty());
  }
  server.server().Stop();
  EXPECT_EQ(server.Requests(), static_cast<uint64_t>(kRequests));
  EXPECT_EQ(server.Closed(CloseReason::kOutputOverflow), 0u);
}

TEST(HttpAsyncRouteTest, KeepAliveRulesAndTheHeaderTimeoutHoldAroundDeferredAnswers) {
  HttpOptions options;
  options.header_timeout = absl::Milliseconds(100);
  AddLaterRoute(options);
  options.routes.GetAsync("/later-bye", [](const HttpRequest&, HttpResponder responder) {
    EventLoop& loop = responder.loop();
    loop.RunAfter(absl::Milliseconds(5), [responder = std::move(responder)]() mutable {
      responder.response().set_body("bye");
      responder.response().set_close_connection(true);
      responder.Send();
    });
  });
  HttpServer server(std::move(options));
  {
    // The request says Connection: close: the deferred answer says so too, and the request
    // behind it is never answered.
    Client client(server.port());
    ASSERT_TRUE(client.Send(HttpGet("/later?x", "Connection: close\r\n") + std::string(kHttpGetPlaintext)));
    Response response;
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.body, "later, x");
    EXPECT_EQ(response.Header("Connection"), "close");
    EXPECT_TRUE(client.WaitForClose());
  }
  {
    // The route ends the connection with its answer.
    Client client(server.port());
    const Response response = client.Get("/later-bye");
    EXPECT_EQ(response.body, "bye");
    EXPECT_EQ(response.Header("Connection"), "close");
    EXPECT_TRUE(client.WaitForClose());
  }
  {
    // A request pipelined behind a deferred one, and never finished, still gets its 408.
    Client client(server.port());
    ASSERT_TRUE(client.Send(HttpGet("/later?y") + std::string(kHttpGetPlaintext.substr(0, 20))));
    Response response;
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.body, "later, y");
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.status_line, "HTTP/1.1 408 Request Timeout");
    EXPECT_TRUE(client.WaitForClose());
  }  // each client closes before Stop: no lingering
  server.server().Stop();
  EXPECT_EQ(server.Closed(CloseReason::kServiceClose), 2u);
  EXPECT_EQ(server.Closed(CloseReason::kReadTimeout), 1u);
}

TEST(HttpAsyncRouteTest, StopAnswersTheRequestInFlightBeforeClosing) {
  std::atomic<int> started{0};
  HttpOptions options;
  options.routes.GetAsync("/slow", [&started](const HttpRequest&, HttpResponder responder) {
    started.fetch_add(1);
    EventLoop& loop = responder.loop();
    // Long enough that Stop, called as soon as the request is in, begins the drain first.
    loop.RunAfter(absl::Milliseconds(200), [responder = std::move(responder)]() mutable {
      responder.response().set_body("finished");
      responder.Send();
    });
  });
  HttpServer server(std::move(options));
  std::thread stopper;
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send(HttpGet("/slow")));
    ASSERT_TRUE(test::WaitUntil([&] { return started.load() == 1; }, Deadline::In(kWait)));
    stopper = std::thread([&] { server.server().Stop(absl::Seconds(10)); });
    Response response;
    ASSERT_TRUE(client.Read(&response));
    EXPECT_EQ(response.body, "finished");
    EXPECT_TRUE(client.WaitForClose());
  }  // our FIN ends the server's lingering close
  stopper.join();
  EXPECT_EQ(server.Requests(), 1u);
  EXPECT_EQ(server.Closed(CloseReason::kServerDrain), 1u);
}

}  // namespace
}  // namespace percore
