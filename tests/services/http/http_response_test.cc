#include "services/http/http_response.h"

#include <string>

#include "core/buffer.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "services/http/http_date.h"

namespace percore {
namespace {

constexpr std::string_view kDate = "Sun, 06 Nov 1994 08:49:37 GMT";

ResponseFraming Framing(bool head, ConnectionField connection, std::string_view date) {
  ResponseFraming framing;
  framing.head = head;
  framing.connection = connection;
  framing.date = date;
  return framing;
}

std::string Serialize(const HttpResponse& response, ResponseFraming framing) {
  Buffer out;
  AppendHttpResponse(response, framing, out);
  return std::string(out.view());
}

TEST(HttpResponseTest, SerializesStatusFieldsAndBody) {
  HttpResponse response;
  response.set_content_type("text/plain");
  response.AddHeader("X-Id", "7");
  response.set_body("Hello, World!");
  EXPECT_EQ(Serialize(response, Framing(false, ConnectionField::kNone, kDate)),
            "HTTP/1.1 200 OK\r\n"
            "Server: percore\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Content-Length: 13\r\n"
            "Content-Type: text/plain\r\n"
            "X-Id: 7\r\n"
            "\r\n"
            "Hello, World!");
}

TEST(HttpResponseTest, ConnectionFieldAndNoDate) {
  HttpResponse response;
  EXPECT_EQ(Serialize(response, Framing(false, ConnectionField::kClose, "")),
            "HTTP/1.1 200 OK\r\nServer: percore\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(Serialize(response, Framing(false, ConnectionField::kKeepAlive, "")),
            "HTTP/1.1 200 OK\r\nServer: percore\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
}

TEST(HttpResponseTest, HeadKeepsContentLengthButDropsTheBody) {
  HttpResponse response;
  response.set_body("12345");
  EXPECT_EQ(Serialize(response, Framing(true, ConnectionField::kNone, "")),
            "HTTP/1.1 200 OK\r\nServer: percore\r\nContent-Length: 5\r\n\r\n");
}

TEST(HttpResponseTest, BodilessStatusesHaveNoContentLength) {
  HttpResponse response;
  response.set_body("ignored");
  for (int status : {100, 204, 304}) {
    response.set_status(status);
    const std::string wire = Serialize(response, {});
    EXPECT_EQ(wire.find("Content-Length"), std::string::npos) << status;
    EXPECT_EQ(wire.find("ignored"), std::string::npos) << status;
    EXPECT_EQ(wire.substr(wire.size() - 4), "\r\n\r\n");
  }
}

TEST(HttpResponseTest, StatusCodesAndReasons) {
  HttpResponse response;
  response.set_status(299);
  EXPECT_EQ(Serialize(response, {}).substr(0, 15), "HTTP/1.1 299 \r\n");  // no reason phrase
  response.set_status(42);
  EXPECT_EQ(response.status(), 500);
  response.set_status(1000);
  EXPECT_EQ(response.status(), 500);
  EXPECT_EQ(HttpReasonPhrase(404), "Not Found");
  EXPECT_EQ(HttpReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(HttpReasonPhrase(413), "Content Too Large");
  EXPECT_EQ(HttpReasonPhrase(599), "");
}

TEST(HttpResponseTest, AddHeaderRefusesResponseSplitting) {
  HttpResponse response;
  EXPECT_FALSE(response.AddHeader("X-A", "a\r\nSet-Cookie: evil=1"));
  EXPECT_FALSE(response.AddHeader("X-A", "a\nb"));
  EXPECT_FALSE(response.AddHeader("X-A", std::string_view("a\0b", 3)));
  EXPECT_FALSE(response.AddHeader("X A", "v"));
  EXPECT_FALSE(response.AddHeader("", "v"));
  EXPECT_FALSE(response.AddHeader("X:A", "v"));
  EXPECT_TRUE(response.headers().empty());
  EXPECT_TRUE(response.AddHeader("X-A", "tab\tand space ok"));
  EXPECT_EQ(response.headers(), "X-A: tab\tand space ok\r\n");
}

TEST(HttpResponseTest, ResetKeepsNothingButCapacity) {
  HttpResponse response;
  response.set_status(404);
  response.AddHeader("A", "b");
  response.set_body(std::string(100, 'x'));
  response.set_close_connection(true);
  const size_t capacity = response.body().capacity();
  response.Reset();
  EXPECT_EQ(response.status(), 200);
  EXPECT_TRUE(response.headers().empty());
  EXPECT_TRUE(response.body().empty());
  EXPECT_FALSE(response.close_connection());
  EXPECT_EQ(response.body().capacity(), capacity);
}

TEST(HttpResponseTest, ErrorResponses) {
  HttpResponse response;
  SetErrorResponse(405, response);
  EXPECT_EQ(response.status(), 405);
  EXPECT_EQ(response.body(), "Method Not Allowed\n");
  EXPECT_EQ(response.headers(), "Content-Type: text/plain; charset=utf-8\r\n");
}

TEST(HttpResponseTest, ManyResponsesAppendInOrder) {
  Buffer out;
  HttpResponse response;
  for (int i = 0; i < 1000; ++i) {
    response.Reset();
    response.set_body(std::to_string(i));
    AppendHttpResponse(response, {}, out);
  }
  std::string_view wire = out.view();
  for (int i = 0; i < 1000; ++i) {
    const std::string body = std::to_string(i);
    const std::string expected = "HTTP/1.1 200 OK\r\nServer: percore\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_EQ(wire.substr(0, expected.size()), expected) << i;
    wire.remove_prefix(expected.size());
  }
  EXPECT_TRUE(wire.empty());
}

TEST(HttpDateTest, FormatsImfFixdate) {
  char text[kHttpDateLength];
  FormatHttpDate(784111777, text);  // the example of RFC 9110 §5.6.7
  EXPECT_EQ(std::string_view(text, kHttpDateLength), "Sun, 06 Nov 1994 08:49:37 GMT");
  FormatHttpDate(0, text);
  EXPECT_EQ(std::string_view(text, kHttpDateLength), "Thu, 01 Jan 1970 00:00:00 GMT");
  FormatHttpDate(951782400, text);  // a leap day
  EXPECT_EQ(std::string_view(text, kHttpDateLength), "Tue, 29 Feb 2000 00:00:00 GMT");
  FormatHttpDate(4102444799, text);
  EXPECT_EQ(std::string_view(text, kHttpDateLength), "Thu, 31 Dec 2099 23:59:59 GMT");
}

TEST(HttpDateTest, CacheServesTheCurrentSecond) {
  const int64_t before = WallNanos() / 1'000'000'000;
  const int64_t mono = MonotonicNanos();
  const std::string first(CachedHttpDate(mono));
  const std::string again(CachedHttpDate(mono));  // same instant: the cached text
  const int64_t after = WallNanos() / 1'000'000'000;
  EXPECT_EQ(first, again);
  bool matched = false;
  for (int64_t t = before; t <= after; ++t) {
    char text[kHttpDateLength];
    FormatHttpDate(t, text);
    matched = matched || first == std::string_view(text, kHttpDateLength);
  }
  EXPECT_TRUE(matched) << first;
  // A monotonic reading past the cached second forces a refresh from the wall clock.
  const std::string later(CachedHttpDate(mono + 2'000'000'000));
  const int64_t now = WallNanos() / 1'000'000'000;
  bool later_matched = false;
  for (int64_t t = before; t <= now; ++t) {
    char text[kHttpDateLength];
    FormatHttpDate(t, text);
    later_matched = later_matched || later == std::string_view(text, kHttpDateLength);
  }
  EXPECT_TRUE(later_matched) << later;
}

}  // namespace
}  // namespace percore
