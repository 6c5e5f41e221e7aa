// Graceful stop under load: Server::Stop while 50 keep-alive clients pipeline requests. Every
// request the server counted must reach its client as a complete response, none truncated, and
// every connection must end with an orderly EOF. And a request answered by another loop is
// still answered when that loop has drained first.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "core/mutex.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"
#include "reactor/server.h"
#include "services/http/http_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/multi_client.h"

namespace percore {
namespace {

using test::Deadline;
using test::MultiClient;

constexpr int kClients = 50;
constexpr int kRequestsPerClient = 400;
constexpr std::string_view kPlaintextRequest = "GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n";

// The plaintext response has a fixed length: only the Date value (29 characters) varies.
std::string PlaintextTemplate() {
  return "HTTP/1.1 200 OK\r\n"
         "Server: percore\r\n"
         "Date: " + std::string(29, '?') + "\r\n"
         "Content-Length: 13\r\n"
         "Content-Type: text/plain\r\n"
         "\r\n"
         "Hello, World!";
}

uint64_t Requests(Server& server) { return server.Totals().services.at(0).requests; }

TEST(DrainTest, StopUnderPipelinedLoadLosesNoResponse) {
  ServerOptions options;
  options.loops = 2;
  Server server(options);
  ASSERT_TRUE(server.AddService(NewHttpService()).ok());
  auto listener = server.Listen("http", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  const uint16_t port = listener->bound.port();
  ASSERT_TRUE(server.Start().ok());

  std::string pipeline;
  for (int i = 0; i < kRequestsPerClient; ++i) pipeline.append(kPlaintextRequest);
  MultiClient client(test::LoopbackAddress(port));
  for (int i = 0; i < kClients; ++i) {
    auto id = client.Connect();
    ASSERT_TRUE(id.ok()) << id.status();
    client.Send(*id, pipeline);
    client.ExpectEof(*id);
  }

  // Stops once the server is well into the stream (a counter, not a time).
  const uint64_t stop_after = kClients * kRequestsPerClient / 4;
  bool reached = false;
  absl::Duration drain_time;
  std::thread stopper([&] {
    reached = test::WaitUntil([&] { return Requests(server) >= stop_after; },
                              Deadline::In(absl::Seconds(20)));
    const absl::Time start = absl::Now();
    server.Stop(absl::Seconds(5));
    drain_time = absl::Now() - start;
  });
  absl::Status run = client.Run(Deadline::In(absl::Seconds(40)));
  stopper.join();
  ASSERT_TRUE(reached);
  // A connection the server never read from (still in the listen backlog when the listener
  // closed) may be reset by the kernel: it got nothing, and nothing of it was counted. Every
  // connection the server did read from ends with EOF after whole responses (checked below).
  if (!run.ok()) std::printf("client run: %s\n", std::string(run.message()).c_str());

  const std::string expected = PlaintextTemplate();
  const size_t date_at = expected.find("Date: ") + 6;
  uint64_t parsed = 0;
  for (MultiClient::Id id = 0; id < client.size(); ++id) {
    const std::string& got = client.received(id);
    if (!client.eof(id)) {
      EXPECT_TRUE(got.empty() && absl::IsUnavailable(client.status(id))) << client.Describe(id);
      continue;
    }
    EXPECT_EQ(got.size() % expected.size(), 0u) << "truncated response: " << client.Describe(id);
    for (size_t at = 0; at + expected.size() <= got.size(); at += expected.size()) {
      std::string one = got.substr(at, expected.size());
      one.replace(date_at, 29, 29, '?');
      ASSERT_EQ(one, expected) << "at byte " << at << " of " << client.Describe(id);
      ++parsed;
    }
  }
  EXPECT_EQ(parsed, Requests(server));
  EXPECT_GE(parsed, stop_after);
  std::printf("responses before stop: %llu of %d sent; drain took %s\n",
              static_cast<unsigned long long>(parsed), kClients * kRequestsPerClient,
              absl::FormatDuration(drain_time).c_str());
}

// Answers each "ask\n" from another loop, and only once that loop has drained: the answer
// depends on a loop with no connections of its own still serving cross-loop work.
class AskElsewhereService : public Service {
 public:
  std::string_view name() const override { return "ask"; }
  void OnLoopStart(EventLoop& loop) override {
    MutexLock lock(mu_);
    loops_.push_back(&loop);
  }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override;

  EventLoop* OtherThan(const EventLoop& loop) {
    MutexLock lock(mu_);
    for (EventLoop* l : loops_) {
      if (l != &loop) return l;
    }
    return nullptr;
  }

  std::atomic<int> asked{0};
  std::atomic<int> answered_by_drained_loop{0};

 private:
  Mutex mu_;
  std::vector<EventLoop*> loops_ ABSL_GUARDED_BY(mu_);
};

class AskElsewhereHandler : public Handler {
 public:
  explicit AskElsewhereHandler(AskElsewhereService& service) : service_(service) {}

  Action OnData(Connection& conn, Buffer& input) override {
    if (input.view() != "ask\n") return Action::Continue();
    input.Consume(input.size());
    EventLoop& here = conn.loop();
    EventLoop* there = service_.OtherThan(here);
    const ConnectionHandle self = conn.handle();
    AskElsewhereService* service = &service_;
    timer_ = here.RunEvery(absl::Milliseconds(1), [this, &here, there, self, service] {
      if (!there->drained()) return;
      here.Cancel(timer_);
      here.RunOn(
          *there,
          [there, service] {
            if (there->drained()) service->answered_by_drained_loop.fetch_add(1);
            return std::string("answered elsewhere\n");
          },
          [self](std::string answer) {
            Connection* c = self.loop->FindConnection(self.id);
            if (c == nullptr) return;
            c->Send(answer);
            c->Resume();
          });
    });
    service_.asked.fetch_add(1);
    return Action::Pause();
  }

  void OnClose(Connection& conn, CloseReason reason) override { conn.loop().Cancel(timer_); }

 private:
  AskElsewhereService& service_;
  EventLoop::TimerId timer_ = 0;
};

std::unique_ptr<Handler> AskElsewhereService::NewHandler(Connection& conn) {
  return std::make_unique<AskElsewhereHandler>(*this);
}

TEST(DrainTest, CrossLoopWorkIsAnsweredByALoopThatDrainedFirst) {
  ServerOptions options;
  options.loops = 2;
  Server server(options);
  auto service = std::make_shared<AskElsewhereService>();
  ASSERT_TRUE(server.AddService(service).ok());
  auto listener = server.Listen("ask", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(server.Start().ok());

  auto fd = test::ConnectToLoopback(listener->bound.port(), Deadline::In(absl::Seconds(20)));
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(test::WriteAll(fd->get(), "ask\n", Deadline::In(absl::Seconds(20))).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return service->asked.load() == 1; }, Deadline::In(absl::Seconds(20))));

  // The asking connection's loop waits for the other loop, which has no connection and
  // drains at once; its answer must still come back before the connection closes.
  server.Stop(absl::Seconds(20));
  absl::StatusOr<std::string> reply = test::ReadToEof(fd->get(), Deadline::In(absl::Seconds(20)));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "answered elsewhere\n");
  EXPECT_EQ(service->answered_by_drained_loop.load(), 1);
}

}  // namespace
}  // namespace percore
