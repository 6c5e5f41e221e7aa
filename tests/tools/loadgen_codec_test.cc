// The loadgen codecs: the exact request bytes they write, and their verdict on right, wrong,
// split, truncated, oversize and garbage replies.

#include <random>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "core/buffer.h"
#include "gtest/gtest.h"
#include "tools/loadgen/codec.h"
#include "tools/loadgen/key_space.h"

namespace percore::loadgen {
namespace {

using Status = ReplyCheck::Status;

std::string Encoded(const Codec& codec, const Request& r) {
  Buffer out;
  codec.Encode(r, out);
  return std::string(out.view());
}

Request Make(Request::Op op, uint64_t key = 0, uint64_t seq = 0) {
  Request r;
  r.op = op;
  r.key = key;
  r.seq = seq;
  return r;
}

// Every strict prefix of a right reply is incomplete, and the whole reply is complete with
// exactly its own length consumed, also with the next reply already behind it.
void ExpectCompleteOnlyWhenWhole(const Codec& codec, const Request& r, const std::string& reply,
                                 Status whole = Status::kOk) {
  for (size_t n = 0; n < reply.size(); ++n) {
    const ReplyCheck c = codec.Check(r, std::string_view(reply).substr(0, n));
    ASSERT_EQ(c.status, Status::kNeedMore) << "prefix of " << n << " bytes: " << c.error;
  }
  ReplyCheck c = codec.Check(r, reply);
  ASSERT_EQ(c.status, whole) << c.error;
  EXPECT_EQ(c.consumed, reply.size());
  c = codec.Check(r, reply + reply);
  ASSERT_EQ(c.status, whole) << c.error;
  EXPECT_EQ(c.consumed, reply.size());
}

// Random bytes never crash a codec and are never taken for a right reply.
void ExpectGarbageRejectedOrIncomplete(const Codec& codec, const Request& r) {
  std::mt19937 rng(7);
  for (int round = 0; round < 500; ++round) {
    std::string junk(1 + rng() % 300, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    const ReplyCheck c = codec.Check(r, junk);
    EXPECT_TRUE(c.status == Status::kNeedMore || c.status == Status::kWrong) << Excerpt(std::string_view(junk));
  }
}

// --- KeySpace ---

TEST(KeySpaceTest, KeysAreZeroPaddedToTheirSize) {
  const KeySpace keys(1000, 8, 20);
  ASSERT_TRUE(keys.Valid());
  std::string key(8, '?');
  keys.WriteKey(42, key.data());
  EXPECT_EQ(key, "k0000042");
  keys.WriteKey(999, key.data());
  EXPECT_EQ(key, "k0000999");
}

TEST(KeySpaceTest, TooShortAKeySizeIsInvalid) {
  EXPECT_FALSE(KeySpace(1001, 4, 10).Valid());  // "k1000" needs 5
  EXPECT_TRUE(KeySpace(1001, 5, 10).Valid());
  EXPECT_FALSE(KeySpace(0, 32, 10).Valid());
}

TEST(KeySpaceTest, ValuesAreDerivedFromTheKeyAndDifferBetweenKeys) {
  const KeySpace keys(100, 32, 100);
  std::string a(100, '\0'), b(100, '\0'), a2(100, '\0');
  keys.WriteValue(7, a.data());
  keys.WriteValue(8, b.data());
  keys.WriteValue(7, a2.data());
  EXPECT_EQ(a, a2);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.substr(0, 3), "v7:");
  EXPECT_TRUE(keys.IsValue(7, a));
  EXPECT_FALSE(keys.IsValue(8, a));
  EXPECT_FALSE(keys.IsValue(7, a.substr(1)));
}

TEST(KeySpaceTest, TinyValuesAreATruncatedPrefix) {
  const KeySpace keys(100, 32, 2);
  std::string v(2, '\0');
  keys.WriteValue(55, v.data());
  EXPECT_EQ(v, "v5");
  EXPECT_TRUE(KeySpace(100, 32, 0).IsValue(55, ""));
}

// --- echo ---

TEST(EchoCodecTest, ReplyIsTheMessageItself) {
  Workload w;
  w.message_size = 20;
  const auto codec = NewEchoCodec(w);
  const Request r = Make(Request::Op::kEcho, 0, 3);
  const std::string message = Encoded(*codec, r);
  ASSERT_EQ(message.size(), 20u);
  EXPECT_EQ(message.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(message.substr(8), "IJKLMNOPQRST");
  ExpectCompleteOnlyWhenWhole(*codec, r, message);
}

TEST(EchoCodecTest, AnyChangedByteIsWrongEvenBeforeTheReplyIsComplete) {
  Workload w;
  w.message_size = 16;
  const auto codec = NewEchoCodec(w);
  const Request r = Make(Request::Op::kEcho, 0, 9);
  const std::string message = Encoded(*codec, r);
  for (size_t i = 0; i < message.size(); ++i) {
    std::string bad = message;
    bad[i] ^= 0x20;
    EXPECT_EQ(codec->Check(r, bad).status, Status::kWrong) << i;
    EXPECT_EQ(codec->Check(r, std::string_view(bad).substr(0, i + 1)).status, Status::kWrong) << i;
  }
}

TEST(EchoCodecTest, TheReplyToAnotherMessageIsWrong) {
  Workload w;
  const auto codec = NewEchoCodec(w);
  const std::string message4 = Encoded(*codec, Make(Request::Op::kEcho, 0, 4));
  EXPECT_EQ(codec->Check(Make(Request::Op::kEcho, 0, 5), message4).status, Status::kWrong);
}

TEST(EchoCodecTest, OneByteMessages) {
  Workload w;
  w.message_size = 1;
  const auto codec = NewEchoCodec(w);
  const Request r = Make(Request::Op::kEcho, 0, 0x41);
  EXPECT_EQ(Encoded(*codec, r), "A");
  ExpectCompleteOnlyWhenWhole(*codec, r, "A");
  EXPECT_EQ(codec->Check(r, "B").status, Status::kWrong);
}

TEST(EchoCodecTest, Garbage) {
  Workload w;
  w.message_size = 4096;
  ExpectGarbageRejectedOrIncomplete(*NewEchoCodec(w), Make(Request::Op::kEcho, 0, 1));
}

// --- http ---

constexpr char kPlaintextReply[] =
    "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

TEST(HttpCodecTest, RequestIsAKeptAliveGet) {
  Workload w;
  w.protocol = Protocol::kHttp;
  w.host = "bench";
  EXPECT_EQ(Encoded(*NewHttpCodec(w), Make(Request::Op::kHttpGet)),
            "GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n");
}

TEST(HttpCodecTest, PlaintextReplyIsCompleteOnlyWhenWhole) {
  Workload w;
  const auto codec = NewHttpCodec(w);
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kHttpGet), kPlaintextReply);
}

TEST(HttpCodecTest, HeaderNamesAreCaseInsensitive) {
  Workload w;
  const auto codec = NewHttpCodec(w);
  const ReplyCheck c = codec->Check(Make(Request::Op::kHttpGet), "HTTP/1.1 200 OK\r\ncontent-length:13\r\n\r\nHello, World!");
  EXPECT_EQ(c.status, Status::kOk) << c.error;
}

TEST(HttpCodecTest, ChunkedBodyIsDecodedAndChecked) {
  Workload w;
  const auto codec = NewHttpCodec(w);
  const std::string reply =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nHello\r\n8\r\n, World!\r\n0\r\n\r\n";
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kHttpGet), reply);
  const std::string with_trailer =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nD\r\nHello, World!\r\n0\r\nX-T: 1\r\n\r\n";
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kHttpGet), with_trailer);
  const std::string bad_body = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  EXPECT_EQ(codec->Check(Make(Request::Op::kHttpGet), bad_body).status, Status::kWrong);
  const std::string bad_framing = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY";
  EXPECT_EQ(codec->Check(Make(Request::Op::kHttpGet), bad_framing).status, Status::kWrong);
  const std::string bad_size = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
  EXPECT_EQ(codec->Check(Make(Request::Op::kHttpGet), bad_size).status, Status::kWrong);
}

TEST(HttpCodecTest, WrongStatusOrBodyIsWrong) {
  Workload w;
  const auto codec = NewHttpCodec(w);
  const Request r = Make(Request::Op::kHttpGet);
  EXPECT_EQ(codec->Check(r, "HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\nHello, World!").status, Status::kWrong);
  EXPECT_EQ(codec->Check(r, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!").status, Status::kWrong);
  EXPECT_EQ(codec->Check(r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").status, Status::kWrong);
  EXPECT_EQ(codec->Check(r, "HTTP/1.1 100 Continue\r\n\r\n").status, Status::kWrong);
}

TEST(HttpCodecTest, OtherExpectationsCanBeSet) {
  Workload w;
  w.expect_status = 404;
  w.check_body = false;
  const auto codec = NewHttpCodec(w);
  const std::string reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah";
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kHttpGet), reply);
}

TEST(HttpCodecTest, MalformedHeadsAreWrong) {
  Workload w;
  const auto codec = NewHttpCodec(w);
  const Request r = Make(Request::Op::kHttpGet);
  for (const char* reply : {
           "XTTP/1.1 200 OK\r\n\r\n",
           "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
           "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
           "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
           "HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Length: 14\r\n\r\nHello, World!",
           "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n",
           "HTTP/1.1 200 OK\r\nServer: no framing\r\n\r\nHello, World!",
       }) {
    EXPECT_EQ(codec->Check(r, reply).status, Status::kWrong) << reply;
  }
  // Not an HTTP response at all is seen at the first differing byte.
  EXPECT_EQ(codec->Check(r, "-ERR").status, Status::kWrong);
  EXPECT_EQ(codec->Check(r, "HTT").status, Status::kNeedMore);
}

TEST(HttpCodecTest, OversizeHeaderSectionIsWrong) {
  Workload w;
  const auto codec = NewHttpCodec(w);
  std::string reply = "HTTP/1.1 200 OK\r\n";
  while (reply.size() <= 64 * 1024) reply += "X-Filler: 0123456789012345678901234567890123456789\r\n";
  EXPECT_EQ(codec->Check(Make(Request::Op::kHttpGet), reply).status, Status::kWrong);
}

TEST(HttpCodecTest, ConnectionCloseIsReported) {
  Workload w;
  const auto codec = NewHttpCodec(w);
  const Request r = Make(Request::Op::kHttpGet);
  ReplyCheck c = codec->Check(r, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nHello, World!");
  EXPECT_EQ(c.status, Status::kOk);
  EXPECT_TRUE(c.server_closes);
  c = codec->Check(r, "HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!");
  EXPECT_TRUE(c.server_closes);
  c = codec->Check(r, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 13\r\n\r\nHello, World!");
  EXPECT_FALSE(c.server_closes);
  EXPECT_FALSE(codec->Check(r, kPlaintextReply).server_closes);
}

TEST(HttpCodecTest, Garbage) {
  Workload w;
  ExpectGarbageRejectedOrIncomplete(*NewHttpCodec(w), Make(Request::Op::kHttpGet));
}

// --- memcache ---

Workload StoreWorkload(Protocol p) {
  Workload w;
  w.protocol = p;
  w.keys = 100;
  w.key_size = 6;
  w.value_size = 10;
  return w;
}

std::string ValueOf(const Workload& w, uint64_t key) {
  std::string v(w.value_size, '\0');
  KeySpace(w.keys, w.key_size, w.value_size).WriteValue(key, v.data());
  return v;
}

TEST(MemcacheCodecTest, RequestsAreTextCommands) {
  const Workload w = StoreWorkload(Protocol::kMemcache);
  const auto codec = NewMemcacheCodec(w);
  EXPECT_EQ(Encoded(*codec, Make(Request::Op::kGet, 12)), "get k00012\r\n");
  EXPECT_EQ(Encoded(*codec, Make(Request::Op::kSet, 12)), "set k00012 0 0 10\r\nv12:qrstuv\r\n");
}

TEST(MemcacheCodecTest, HitMissAndStored) {
  Workload w = StoreWorkload(Protocol::kMemcache);
  const auto codec = NewMemcacheCodec(w);
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kGet, 12), "VALUE k00012 0 10\r\n" + ValueOf(w, 12) + "\r\nEND\r\n");
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kGet, 12),
                              "VALUE k00012 5 10 77\r\n" + ValueOf(w, 12) + "\r\nEND\r\n");
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kGet, 12), "END\r\n", Status::kMiss);
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kSet, 12), "STORED\r\n");
  w.misses_are_errors = true;
  EXPECT_EQ(NewMemcacheCodec(w)->Check(Make(Request::Op::kGet, 12), "END\r\n").status, Status::kWrong);
}

TEST(MemcacheCodecTest, WrongRepliesAreWrong) {
  const Workload w = StoreWorkload(Protocol::kMemcache);
  const auto codec = NewMemcacheCodec(w);
  const Request get = Make(Request::Op::kGet, 12);
  const std::string v = ValueOf(w, 12);
  for (const std::string& reply : {
           "VALUE k00013 0 10\r\n" + v + "\r\nEND\r\n",       // another key
           "VALUE k00012 0 10\r\n" + ValueOf(w, 13) + "\r\nEND\r\n",  // another key's value
           "VALUE k00012 0 9\r\n" + v.substr(1) + "\r\nEND\r\n",      // short
           "VALUE k00012 0 10\r\n" + v + "\r\nENX\r\n",       // bad trailer
           "VALUE k00012 0 10\r\n" + v + "XXEND\r\n",         // no CRLF after data
           "VALUE k00012 x 10\r\n" + v + "\r\nEND\r\n",       // bad flags
           std::string("VALUE k00012\r\n"),
           std::string("ERROR\r\n"),
           std::string("SERVER_ERROR out of memory\r\n"),
           std::string("STORED\r\n"),
       }) {
    EXPECT_EQ(codec->Check(get, reply).status, Status::kWrong) << reply;
  }
  EXPECT_EQ(codec->Check(Make(Request::Op::kSet, 12), "NOT_STORED\r\n").status, Status::kWrong);
  EXPECT_EQ(codec->Check(Make(Request::Op::kSet, 12), "END\r\n").status, Status::kWrong);
}

TEST(MemcacheCodecTest, OversizeLineAndGarbage) {
  const Workload w = StoreWorkload(Protocol::kMemcache);
  const auto codec = NewMemcacheCodec(w);
  EXPECT_EQ(codec->Check(Make(Request::Op::kGet, 1), std::string(2000, 'V')).status, Status::kWrong);
  ExpectGarbageRejectedOrIncomplete(*codec, Make(Request::Op::kGet, 1));
  ExpectGarbageRejectedOrIncomplete(*codec, Make(Request::Op::kSet, 1));
}

// --- resp ---

TEST(RespCodecTest, RequestsAreMultibulkArrays) {
  Workload w = StoreWorkload(Protocol::kResp);
  const auto codec = NewRespCodec(w);
  EXPECT_EQ(Encoded(*codec, Make(Request::Op::kGet, 7)), "*2\r\n$3\r\nGET\r\n$6\r\nk00007\r\n");
  EXPECT_EQ(Encoded(*codec, Make(Request::Op::kSet, 7)),
            "*3\r\n$3\r\nSET\r\n$6\r\nk00007\r\n$10\r\nv7:klmnopq\r\n");
  EXPECT_EQ(Encoded(*codec, Make(Request::Op::kPing)), "*1\r\n$4\r\nPING\r\n");
}

TEST(RespCodecTest, BulkOkPongAndNull) {
  Workload w = StoreWorkload(Protocol::kResp);
  const auto codec = NewRespCodec(w);
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kGet, 7), "$10\r\n" + ValueOf(w, 7) + "\r\n");
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kGet, 7), "$-1\r\n", Status::kMiss);
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kSet, 7), "+OK\r\n");
  ExpectCompleteOnlyWhenWhole(*codec, Make(Request::Op::kPing), "+PONG\r\n");
  w.misses_are_errors = true;
  EXPECT_EQ(NewRespCodec(w)->Check(Make(Request::Op::kGet, 7), "$-1\r\n").status, Status::kWrong);
}

TEST(RespCodecTest, WrongRepliesAreWrong) {
  const Workload w = StoreWorkload(Protocol::kResp);
  const auto codec = NewRespCodec(w);
  const Request get = Make(Request::Op::kGet, 7);
  for (const std::string& reply : {
           "$10\r\n" + ValueOf(w, 8) + "\r\n",
           "$9\r\n" + ValueOf(w, 7).substr(1) + "\r\n",
           "$10\r\n" + ValueOf(w, 7) + "XX",
           std::string("-ERR unknown command\r\n"),
           std::string("+OK\r\n"),
           std::string(":1\r\n"),
           std::string("$abc\r\n"),
       }) {
    EXPECT_EQ(codec->Check(get, reply).status, Status::kWrong) << reply;
  }
  EXPECT_EQ(codec->Check(Make(Request::Op::kSet, 7), "-OOM\r\n").status, Status::kWrong);
  EXPECT_EQ(codec->Check(Make(Request::Op::kPing), "+OK\r\n").status, Status::kWrong);
  EXPECT_EQ(codec->Check(get, std::string(2000, '$')).status, Status::kWrong);
  ExpectGarbageRejectedOrIncomplete(*codec, get);
  ExpectGarbageRejectedOrIncomplete(*codec, Make(Request::Op::kSet, 7));
}

TEST(ExcerptTest, EscapesAndShortens) {
  EXPECT_EQ(Excerpt(std::string_view("a\r\n\"\x01")), "\"a\\r\\n\\\"\\x01\"");
  EXPECT_EQ(Excerpt(std::string_view(std::string(100, 'x'))), "\"" + std::string(60, 'x') + "\"...");
}

}  // namespace
}  // namespace percore::loadgen
