// RESP (Redis protocol): GET and SET as multibulk arrays, or PING. GET must return the key's
// derived value as a bulk string (or the null bulk string on a miss); SET must return +OK and
// PING +PONG. An error reply ("-...") is a wrong reply.

#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "tools/loadgen/codec.h"
#include "tools/loadgen/key_space.h"

namespace percore::loadgen {
namespace {

constexpr size_t kMaxLine = 1024;

class RespCodec final : public Codec {
 public:
  explicit RespCodec(const Workload& w)
      : keys_(w.keys, w.key_size, w.value_size),
        misses_are_errors_(w.misses_are_errors),
        get_head_(absl::StrCat("*2\r\n$3\r\nGET\r\n$", w.key_size, "\r\n")),
        set_head_(absl::StrCat("*3\r\n$3\r\nSET\r\n$", w.key_size, "\r\n")),
        value_head_(absl::StrCat("\r\n$", w.value_size, "\r\n")) {}

  void Encode(const Request& request, Buffer& out) const override {
    const size_t k = keys_.key_size();
    const size_t v = keys_.value_size();
    if (request.op == Request::Op::kPing) {
      out.Append("*1\r\n$4\r\nPING\r\n");
      return;
    }
    const bool get = request.op == Request::Op::kGet;
    const std::string& head = get ? get_head_ : set_head_;
    char* p = out.Reserve(head.size() + k + value_head_.size() + v + 2);  // enough for either
    char* w = p;
    std::memcpy(w, head.data(), head.size());
    w += head.size();
    keys_.WriteKey(request.key, w);
    w += k;
    if (!get) {
      std::memcpy(w, value_head_.data(), value_head_.size());
      w += value_head_.size();
      keys_.WriteValue(request.key, w);
      w += v;
    }
    std::memcpy(w, "\r\n", 2);
    w += 2;
    out.Commit(static_cast<size_t>(w - p));
  }

  ReplyCheck Check(const Request& request, std::string_view input_std) const override {
    const absl::string_view input(input_std.data(), input_std.size());
    const size_t eol = input.find("\r\n");
    if (eol == absl::string_view::npos) {
      if (input.size() > kMaxLine) return ReplyCheck::Wrong("reply line over 1 KiB");
      return ReplyCheck::NeedMore();
    }
    const absl::string_view line = input.substr(0, eol);
    if (request.op == Request::Op::kPing) return Simple(line, "+PONG", "PING");
    if (request.op == Request::Op::kSet) return Simple(line, "+OK", "SET");
    if (line == "$-1") {
      if (misses_are_errors_) return ReplyCheck::Wrong(absl::StrCat("miss for preloaded key ", request.key));
      return ReplyCheck::Miss(eol + 2);
    }
    uint64_t bytes = 0;
    if (line.empty() || line[0] != '$' || !absl::SimpleAtoi(line.substr(1), &bytes)) {
      return ReplyCheck::Wrong(absl::StrCat("GET answered ", Excerpt(line)));
    }
    if (bytes != keys_.value_size()) {
      return ReplyCheck::Wrong(absl::StrCat("GET key ", request.key, ": ", bytes, " bytes, expected ",
                                            keys_.value_size()));
    }
    const size_t data = eol + 2;
    const size_t end = data + bytes + 2;
    if (input.size() < end) return ReplyCheck::NeedMore();
    if (input.substr(data + bytes, 2) != "\r\n") return ReplyCheck::Wrong("bulk string not followed by CRLF");
    if (!keys_.IsValue(request.key, std::string_view(input.data() + data, bytes))) {
      return ReplyCheck::Wrong(absl::StrCat("GET key ", request.key, ": wrong value ",
                                            Excerpt(std::string_view(input.data() + data, bytes))));
    }
    return ReplyCheck::Ok(end);
  }

 private:
  static ReplyCheck Simple(absl::string_view line, absl::string_view expected, absl::string_view command) {
    if (line == expected) return ReplyCheck::Ok(line.size() + 2);
    return ReplyCheck::Wrong(absl::StrCat(command, " answered ", Excerpt(std::string_view(line.data(), line.size()))));
  }

  KeySpace keys_;
  bool misses_are_errors_;
  std::string get_head_;    // through the key's length line
  std::string set_head_;
  std::string value_head_;  // CRLF after the key, then the value's length line
};

}  // namespace

std::unique_ptr<Codec> NewRespCodec(const Workload& workload) { return std::make_unique<RespCodec>(workload); }

}  // namespace percore::loadgen
