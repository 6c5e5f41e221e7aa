// http: "GET <path> HTTP/1.1" with keep-alive. A reply is parsed completely (status line,
// header section, a body framed by Content-Length or chunked coding) and must carry the
// expected status and, when asked, the expected body.

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "tools/loadgen/codec.h"

namespace percore::loadgen {
namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr uint64_t kMaxBodyBytes = 64 << 20;

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Whether a comma-separated header value lists `token` (case-insensitive).
bool HasToken(absl::string_view value, absl::string_view token) {
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(item), token)) return true;
  }
  return false;
}

struct Head {
  int status = 0;
  bool http10 = false;
  bool has_length = false;
  uint64_t length = 0;
  bool chunked = false;
  bool close = false;
  bool keep_alive = false;
};

// Parses the status line and header fields of `head` (without the blank line). Returns an
// error text, or empty on success. Walks the lines in place: no allocation per reply.
std::string ParseHead(absl::string_view head, Head* out) {
  size_t eol = head.find("\r\n");
  const absl::string_view status_line = head.substr(0, eol);
  if (status_line.size() < 12 || !(absl::StartsWith(status_line, "HTTP/1.1 ") ||
                                   absl::StartsWith(status_line, "HTTP/1.0 "))) {
    return absl::StrCat("bad status line ", Excerpt(status_line));
  }
  out->http10 = status_line[7] == '0';
  if (!absl::SimpleAtoi(status_line.substr(9, 3), &out->status) || out->status < 100 ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return absl::StrCat("bad status code in ", Excerpt(status_line));
  }
  while (eol != absl::string_view::npos) {
    const size_t start = eol + 2;
    eol = head.find("\r\n", start);
    const absl::string_view line = head.substr(start, eol == absl::string_view::npos ? absl::string_view::npos : eol - start);
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || colon == 0) return absl::StrCat("bad header line ", Excerpt(line));
    const absl::string_view name = line.substr(0, colon);
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (absl::EqualsIgnoreCase(name, "Content-Length")) {
      uint64_t length = 0;
      if (!absl::SimpleAtoi(value, &length) || (out->has_length && length != out->length)) {
        return absl::StrCat("bad Content-Length ", Excerpt(value));
      }
      out->has_length = true;
      out->length = length;
    } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
      out->chunked = HasToken(value, "chunked");
    } else if (absl::EqualsIgnoreCase(name, "Connection")) {
      out->close |= HasToken(value, "close");
      out->keep_alive |= HasToken(value, "keep-alive");
    }
  }
  if (out->chunked && out->has_length) return "both Content-Length and chunked";
  return {};
}

// Decodes a chunked body starting at input[pos]. Returns false on bad framing (error set),
// true otherwise with *end = 0 while incomplete.
bool DecodeChunked(absl::string_view input, size_t pos, std::string* body, size_t* end, std::string* error) {
  body->clear();
  *end = 0;
  while (true) {
    const size_t eol = input.find("\r\n", pos);
    if (eol == absl::string_view::npos) {
      if (input.size() - pos > 1024) *error = "chunk size line too long";
      return error->empty();
    }
    absl::string_view size_text = input.substr(pos, eol - pos);
    size_text = size_text.substr(0, size_text.find(';'));
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(size_text), &size) || size > kMaxBodyBytes) {
      *error = absl::StrCat("bad chunk size ", Excerpt(size_text));
      return false;
    }
    pos = eol + 2;
    if (size == 0) {
      // Trailer section: empty, or fields up to a blank line.
      if (input.size() - pos < 2) return true;
      if (input.substr(pos, 2) == "\r\n") {
        *end = pos + 2;
        return true;
      }
      const size_t blank = input.find("\r\n\r\n", pos);
      if (blank != absl::string_view::npos) *end = blank + 4;
      return true;
    }
    if (input.size() - pos < size + 2) return true;
    if (input.substr(pos + size, 2) != "\r\n") {
      *error = "chunk data not followed by CRLF";
      return false;
    }
    body->append(input.data() + pos, size);
    if (body->size() > kMaxBodyBytes) {
      *error = "chunked body too large";
      return false;
    }
    pos += size + 2;
  }
}

class HttpCodec final : public Codec {
 public:
  explicit HttpCodec(const Workload& w)
      : request_(absl::StrCat("GET ", w.path, " HTTP/1.1\r\nHost: ", w.host, "\r\n\r\n")),
        expect_status_(w.expect_status),
        check_body_(w.check_body),
        expect_body_(w.expect_body) {}

  void Encode(const Request& request, Buffer& out) const override { out.Append(request_); }

  ReplyCheck Check(const Request& request, std::string_view input_std) const override {
    const absl::string_view input = Absl(input_std);
    const size_t head_end = input.find("\r\n\r\n");
    if (head_end == absl::string_view::npos) {
      if (!absl::StartsWith("HTTP/", input.substr(0, 5))) {
        return ReplyCheck::Wrong(absl::StrCat("not an HTTP response: ", Excerpt(input_std)));
      }
      if (input.size() > kMaxHeadBytes) return ReplyCheck::Wrong("response header section over 64 KiB");
      return ReplyCheck::NeedMore();
    }
    Head head;
    if (std::string error = ParseHead(input.substr(0, head_end), &head); !error.empty()) {
      return ReplyCheck::Wrong(std::move(error));
    }
    const size_t body_start = head_end + 4;
    size_t end = 0;
    thread_local std::string chunked_body;
    absl::string_view body;
    if (head.status < 200) {
      return ReplyCheck::Wrong(absl::StrCat("unexpected interim response ", head.status));
    } else if (head.status == 204 || head.status == 304) {
      end = body_start;
    } else if (head.chunked) {
      std::string error;
      if (!DecodeChunked(input, body_start, &chunked_body, &end, &error)) return ReplyCheck::Wrong(std::move(error));
      if (end == 0) return ReplyCheck::NeedMore();
      body = chunked_body;
    } else if (head.has_length) {
      if (head.length > kMaxBodyBytes) return ReplyCheck::Wrong("Content-Length too large");
      if (input.size() - body_start < head.length) return ReplyCheck::NeedMore();
      end = body_start + head.length;
      body = input.substr(body_start, head.length);
    } else {
      return ReplyCheck::Wrong("response without Content-Length or chunked coding (its end is unknown)");
    }
    if (head.status != expect_status_) {
      return ReplyCheck::Wrong(absl::StrCat("status ", head.status, ", expected ", expect_status_));
    }
    if (check_body_ && body != expect_body_) {
      return ReplyCheck::Wrong(absl::StrCat("body ", Excerpt(std::string_view(body.data(), body.size())),
                                            ", expected ", Excerpt(std::string_view(expect_body_))));
    }
    ReplyCheck ok = ReplyCheck::Ok(end);
    ok.server_closes = head.close || (head.http10 && !head.keep_alive);
    return ok;
  }

 private:
  std::string request_;
  int expect_status_;
  bool check_body_;
  std::string expect_body_;
};

}  // namespace

std::unique_ptr<Codec> NewHttpCodec(const Workload& workload) { return std::make_unique<HttpCodec>(workload); }

}  // namespace percore::loadgen
