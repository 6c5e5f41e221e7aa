#include "services/http/router.h"

#include <string>

#include "gtest/gtest.h"

namespace percore {
namespace {

HttpHandlerFn Body(std::string text) {
  return [text](const HttpRequest&, HttpResponse& response) { response.set_body(text); };
}

std::string Dispatch(const Router& router, std::string_view method, std::string_view path) {
  const Router::Match match = router.Find(method, path);
  if (match.handler == nullptr) return std::to_string(match.status) + " " + std::string(match.allow);
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

}  // namespace
}  // namespace percore
