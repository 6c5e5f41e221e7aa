#include "services/http/router.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "services/http/http_responder.h"

namespace percore {
namespace {

HttpHandlerFn Body(std::string text) {
  return [text](const HttpRequest&, HttpResponse& response) { response.set_body(text); };
}

HttpAsyncHandlerFn AsyncBody(std::string text) {
  return [text](const HttpRequest&, HttpResponder responder) {
    responder.response().set_body(text);
    responder.Send();
  };
}

// Collects what responders answer, in order, in place of a connection.
class RecordingExchange final : public HttpResponder::Exchange {
 public:
  explicit RecordingExchange(std::vector<HttpResponse>* answers) : answers_(answers) {}
  EventLoop& loop() const override {
    ADD_FAILURE() << "no loop here";
    std::abort();
  }
  Connection* connection() const override { return nullptr; }
  void Answer(HttpResponse response) override { answers_->push_back(std::move(response)); }

 private:
  std::vector<HttpResponse>* const answers_;
};

HttpResponder Recording(std::vector<HttpResponse>* answers) {
  return HttpResponder(std::make_unique<RecordingExchange>(answers));
}

std::string Dispatch(const Router& router, std::string_view method, std::string_view path) {
  const Router::Match match = router.Find(method, path);
  if (!match.found()) return std::to_string(match.status) + " " + std::string(match.allow);
  if (match.async_handler != nullptr) {
    EXPECT_EQ(match.handler, nullptr);
    std::vector<HttpResponse> answers;
    (*match.async_handler)(HttpRequest(), Recording(&answers));
    EXPECT_EQ(answers.size(), 1u);
    return answers.empty() ? "no answer" : "async " + answers[0].body();
  }
  HttpResponse response;
  (*match.handler)(HttpRequest(), response);
  return response.body();
}

TEST(RouterTest, ExactMatchOnMethodAndPath) {
  Router router;
  router.Get("/a", Body("get a"));
  router.Post("/a", Body("post a"));
  router.Handle("PUT", "/b", Body("put b"));
  EXPECT_EQ(Dispatch(router, "GET", "/a"), "get a");
  EXPECT_EQ(Dispatch(router, "POST", "/a"), "post a");
  EXPECT_EQ(Dispatch(router, "PUT", "/b"), "put b");
  EXPECT_EQ(Dispatch(router, "GET", "/a/"), "404 ");
  EXPECT_EQ(Dispatch(router, "GET", "/A"), "404 ");
  EXPECT_EQ(Dispatch(router, "get", "/a"), "405 GET, HEAD, POST");  // methods are case-sensitive
}

TEST(RouterTest, WrongMethodListsAllowedOnes) {
  Router router;
  router.Get("/g", Body("g"));
  router.Handle("PUT", "/p", Body("p"));
  EXPECT_EQ(Dispatch(router, "DELETE", "/g"), "405 GET, HEAD");
  EXPECT_EQ(Dispatch(router, "GET", "/p"), "405 PUT");
  EXPECT_EQ(Dispatch(router, "HEAD", "/p"), "405 PUT");
}

TEST(RouterTest, HeadFallsBackToGetUnlessRegistered) {
  Router router;
  router.Get("/x", Body("get"));
  EXPECT_EQ(Dispatch(router, "HEAD", "/x"), "get");
  router.Handle("HEAD", "/x", Body("head"));
  EXPECT_EQ(Dispatch(router, "HEAD", "/x"), "head");
  EXPECT_EQ(Dispatch(router, "POST", "/x"), "405 GET, HEAD");
}

TEST(RouterTest, ReplacingAHandler) {
  Router router;
  router.Get("/x", Body("one"));
  router.Get("/x", Body("two"));
  EXPECT_EQ(Dispatch(router, "GET", "/x"), "two");
  EXPECT_EQ(Dispatch(router, "PATCH", "/x"), "405 GET, HEAD");
}

TEST(RouterTest, PathsAreListedSorted) {
  Router router;
  router.Get("/b", Body(""));
  router.Get("/a", Body(""));
  router.Post("/c", Body(""));
  EXPECT_EQ(router.Paths(), (std::vector<std::string>{"/a", "/b", "/c"}));
  EXPECT_TRUE(router.HasPath("/c"));
  EXPECT_FALSE(router.HasPath("/d"));
}

TEST(RouterTest, AsyncRoutesAreRoutedLikeTheOthers) {
  Router router;
  router.GetAsync("/a", AsyncBody("get a"));
  router.PostAsync("/a", AsyncBody("post a"));
  router.HandleAsync("PUT", "/b", AsyncBody("put b"));
  router.Get("/b", Body("get b"));
  EXPECT_EQ(Dispatch(router, "GET", "/a"), "async get a");
  EXPECT_EQ(Dispatch(router, "HEAD", "/a"), "async get a");  // HEAD falls back to GET here too
  EXPECT_EQ(Dispatch(router, "POST", "/a"), "async post a");
  EXPECT_EQ(Dispatch(router, "PUT", "/b"), "async put b");
  EXPECT_EQ(Dispatch(router, "GET", "/b"), "get b");
  EXPECT_EQ(Dispatch(router, "DELETE", "/a"), "405 GET, HEAD, POST");
  EXPECT_EQ(Dispatch(router, "DELETE", "/b"), "405 GET, HEAD, PUT");
  EXPECT_EQ(Dispatch(router, "GET", "/c"), "404 ");
}

TEST(RouterTest, ReplacingASyncRouteWithAnAsyncOneAndBack) {
  Router router;
  router.Get("/x", Body("sync"));
  router.GetAsync("/x", AsyncBody("async"));
  EXPECT_EQ(Dispatch(router, "GET", "/x"), "async async");
  router.Get("/x", Body("sync again"));
  EXPECT_EQ(Dispatch(router, "GET", "/x"), "sync again");
  EXPECT_EQ(Dispatch(router, "PATCH", "/x"), "405 GET, HEAD");
}

TEST(HttpResponderTest, AnswersOnce) {
  std::vector<HttpResponse> answers;
  HttpResponder responder = Recording(&answers);
  EXPECT_FALSE(responder.answered());
  EXPECT_EQ(responder.connection(), nullptr);
  responder.response().set_status(201);
  responder.response().set_body("made");
  responder.Send();
  EXPECT_TRUE(responder.answered());
  responder.Send();
  responder.SendError(503);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status(), 201);
  EXPECT_EQ(answers[0].body(), "made");
}

TEST(HttpResponderTest, DroppedUnansweredItAnswers500) {
  std::vector<HttpResponse> answers;
  {
    HttpResponder responder = Recording(&answers);
    responder.response().set_body("half done");
  }
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status(), 500);
  EXPECT_EQ(answers[0].body(), "Internal Server Error\n");  // not what the route had filled in
}

TEST(HttpResponderTest, SendErrorAnswersTheServersErrorBody) {
  std::vector<HttpResponse> answers;
  HttpResponder responder = Recording(&answers);
  responder.response().set_body("discarded");
  responder.SendError(504);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status(), 504);
  EXPECT_EQ(answers[0].body(), "Gateway Timeout\n");
}

TEST(HttpResponderTest, MovingCarriesTheAnswerAlong) {
  std::vector<HttpResponse> first;
  std::vector<HttpResponse> second;
  HttpResponder a = Recording(&first);
  a.response().set_body("a");
  HttpResponder moved(std::move(a));
  EXPECT_TRUE(a.answered());  // a moved-from responder has nothing left to answer
  HttpResponder b = Recording(&second);
  // Assigning over an unanswered responder answers it first (500).
  b = std::move(moved);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].status(), 500);
  EXPECT_TRUE(first.empty());
  b.Send();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].body(), "a");
}

}  // namespace
}  // namespace percore
