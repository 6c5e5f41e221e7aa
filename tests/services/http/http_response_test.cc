#include "services/http/http_response.h"

#include <cstdint>
#include <string>

#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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

TEST(HttpResponseTest, SetBodyFromAPartOfItsOwnBody) {
  HttpResponse response;
  response.set_body("0123456789abcdefghijklmnopqrstuvwxyz");
  const std::string_view tail = std::string_view(response.body()).substr(10);
  response.set_body(tail);
  EXPECT_EQ(response.body(), "abcdefghijklmnopqrstuvwxyz");
  response.set_body(std::string_view(response.body()).substr(0, 3));
  EXPECT_EQ(response.body(), "abc");
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
  // The example of RFC 9110 §5.6.7.
  EXPECT_EQ(FormatHttpDate(absl::FromUnixSeconds(784111777)), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(FormatHttpDate(absl::UnixEpoch()), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(absl::FromUnixSeconds(951782400)), "Tue, 29 Feb 2000 00:00:00 GMT");  // leap day
  EXPECT_EQ(FormatHttpDate(absl::FromUnixSeconds(4102444799)), "Thu, 31 Dec 2099 23:59:59 GMT");
  // The second is truncated, never rounded up.
  EXPECT_EQ(FormatHttpDate(absl::FromUnixSeconds(784111777) + absl::Milliseconds(999)),
            "Sun, 06 Nov 1994 08:49:37 GMT");
  // Four-digit years, zero-padded, as IMF-fixdate requires.
  EXPECT_EQ(FormatHttpDate(absl::FromCivil(absl::CivilSecond(999, 1, 2, 3, 4, 5), absl::UTCTimeZone())),
            "Wed, 02 Jan 0999 03:04:05 GMT");
  for (int64_t t : {int64_t{0}, int64_t{784111777}, int64_t{4102444799}}) {
    EXPECT_EQ(FormatHttpDate(absl::FromUnixSeconds(t)).size(), kHttpDateLength) << t;
  }
}

TEST(HttpDateTest, CacheServesTheCurrentSecond) {
  const int64_t before = absl::ToUnixSeconds(absl::Now());
  const MonoTime mono = MonoTime::Now();
  const std::string first(CachedHttpDate(mono));
  const std::string again(CachedHttpDate(mono));  // same instant: the cached text
  const int64_t after = absl::ToUnixSeconds(absl::Now());
  EXPECT_EQ(first, again);
  bool matched = false;
  for (int64_t t = before; t <= after; ++t) {
    matched = matched || first == FormatHttpDate(absl::FromUnixSeconds(t));
  }
  EXPECT_TRUE(matched) << first;
  // A monotonic time past the cached second forces a refresh from the wall clock.
  const std::string later(CachedHttpDate(mono + absl::Seconds(2)));
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  bool later_matched = false;
  for (int64_t t = before; t <= now; ++t) {
    later_matched = later_matched || later == FormatHttpDate(absl::FromUnixSeconds(t));
  }
  EXPECT_TRUE(later_matched) << later;
}

}  // namespace
}  // namespace percore
