// memcache text protocol: "get <key>" and "set <key> 0 0 <n>". A hit must return the key's
// derived value under the same key; a set must be answered STORED.

#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "tools/loadgen/codec.h"
#include "tools/loadgen/key_space.h"

namespace percore::loadgen {
namespace {

constexpr size_t kMaxLine = 1024;

class MemcacheCodec final : public Codec {
 public:
  explicit MemcacheCodec(const Workload& w)
      : keys_(w.keys, w.key_size, w.value_size), misses_are_errors_(w.misses_are_errors) {}

  void Encode(const Request& request, Buffer& out) const override {
    const size_t k = keys_.key_size();
    const size_t v = keys_.value_size();
    if (request.op == Request::Op::kGet) {
      char* p = out.Reserve(4 + k + 2);
      std::memcpy(p, "get ", 4);
      keys_.WriteKey(request.key, p + 4);
      std::memcpy(p + 4 + k, "\r\n", 2);
      out.Commit(4 + k + 2);
      return;
    }
    const std::string tail = absl::StrCat(" 0 0 ", v, "\r\n");
    const size_t n = 4 + k + tail.size() + v + 2;
    char* p = out.Reserve(n);
    std::memcpy(p, "set ", 4);
    keys_.WriteKey(request.key, p + 4);
    std::memcpy(p + 4 + k, tail.data(), tail.size());
    keys_.WriteValue(request.key, p + 4 + k + tail.size());
    std::memcpy(p + n - 2, "\r\n", 2);
    out.Commit(n);
  }

  ReplyCheck Check(const Request& request, std::string_view input_std) const override {
    const absl::string_view input(input_std.data(), input_std.size());
    const size_t eol = input.find("\r\n");
    if (eol == absl::string_view::npos) {
      if (input.size() > kMaxLine) return ReplyCheck::Wrong("reply line over 1 KiB");
      return ReplyCheck::NeedMore();
    }
    const absl::string_view line = input.substr(0, eol);
    if (request.op == Request::Op::kSet) {
      if (line == "STORED") return ReplyCheck::Ok(eol + 2);
      return ReplyCheck::Wrong(absl::StrCat("set answered ", Excerpt(line)));
    }
    if (line == "END") {
      if (misses_are_errors_) return ReplyCheck::Wrong(absl::StrCat("miss for preloaded key ", request.key));
      return ReplyCheck::Miss(eol + 2);
    }
    // VALUE <key> <flags> <bytes> [<cas unique>]
    absl::string_view f[6];
    size_t fields = 0;
    for (absl::string_view field : absl::StrSplit(line, ' ')) {
      if (fields == 6) break;
      f[fields++] = field;
    }
    uint32_t flags = 0;
    uint64_t bytes = 0;
    if (fields < 4 || fields > 5 || f[0] != "VALUE" || !absl::SimpleAtoi(f[2], &flags) ||
        !absl::SimpleAtoi(f[3], &bytes)) {
      return ReplyCheck::Wrong(absl::StrCat("get answered ", Excerpt(line)));
    }
    thread_local std::string key;
    key.resize(keys_.key_size());
    keys_.WriteKey(request.key, key.data());
    if (f[1] != absl::string_view(key)) {
      return ReplyCheck::Wrong(absl::StrCat("get ", key, " answered with key ", Excerpt(f[1])));
    }
    if (bytes != keys_.value_size()) {
      return ReplyCheck::Wrong(absl::StrCat("get ", key, ": ", bytes, " bytes, expected ", keys_.value_size()));
    }
    const size_t data = eol + 2;
    const size_t end = data + bytes + 2 + 5;  // data, CRLF, "END\r\n"
    if (input.size() < end) return ReplyCheck::NeedMore();
    if (input.substr(data + bytes, 7) != "\r\nEND\r\n") {
      return ReplyCheck::Wrong(absl::StrCat("get ", key, ": value not followed by END: ",
                                            Excerpt(std::string_view(input.data() + data + bytes, 7))));
    }
    if (!keys_.IsValue(request.key, std::string_view(input.data() + data, bytes))) {
      return ReplyCheck::Wrong(absl::StrCat("get ", key, ": wrong value ",
                                            Excerpt(std::string_view(input.data() + data, bytes))));
    }
    return ReplyCheck::Ok(end);
  }

 private:
  KeySpace keys_;
  bool misses_are_errors_;
};

}  // namespace

std::unique_ptr<Codec> NewMemcacheCodec(const Workload& workload) {
  return std::make_unique<MemcacheCodec>(workload);
}

}  // namespace percore::loadgen
