#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "services/http/http_request.h"

namespace percore {

// Bounds a parser enforces; each answers a specific status when passed.
struct HttpParserLimits {
  size_t max_head_bytes = 8 * 1024;    // request line + header section (incl. CRLFs): 431
  size_t max_headers = 100;            // header field lines: 431
  size_t max_body_bytes = 1 << 20;     // Content-Length or decoded chunked size: 413
  size_t max_chunk_line_bytes = 4096;  // one chunk-size line with its extensions: 400
  // Chunk framing (size lines, extensions, CRLFs, trailer section): 413. The raw message stays in
  // the input buffer until it is complete, so this bounds memory for tiny-chunk senders.
  size_t max_chunk_framing_bytes = 64 * 1024;
};

// An incremental HTTP/1.x request parser (RFC 9112) over a contiguous view of the input.
//
// Contract: call Parse with everything received for the current message, starting at its first
// byte (leading empty lines included); each call passes the same bytes again plus whatever
// arrived since (the view may move in memory between calls). The parser remembers how far it
// got, so no byte is examined twice in the header section. On kComplete the caller handles
// request(), consumes consumed() bytes of input, and calls Reset() before the next message
// (pipelined bytes after the message are left alone). On kError the caller answers
// error_status() and closes: the framing of what follows is unknown.
//
// The common shape of a header section (an origin-form request line ending in CRLF, well-formed
// "Name: value" CRLF field lines) is read in one pass on the first call for a message (when
// it is all there); anything else, or a head that has not fully arrived, goes to the
// line-by-line parser, which alone decides on errors of syntax. Both give the same results.
//
// No allocation per request once the header vector and the chunked-body storage have grown to
// their working size. Not thread-safe; one parser per connection.
class HttpParser {
 public:
  enum class Result : uint8_t {
    kNeedMore,  // the message is incomplete; call again with more bytes
    kComplete,  // request() and consumed() are valid
    kError,     // error_status() says which response is due; then close
  };

  explicit HttpParser(HttpParserLimits limits = {});

  Result Parse(std::string_view input);
  void Reset();

  const HttpRequest& request() const { return request_; }
  // Bytes of the complete message (after kComplete), including leading empty lines.
  size_t consumed() const { return consumed_; }
  // After kError: 400, 413, 431, 501 or 505.
  int error_status() const { return error_status_; }
  // After kError: a short fixed description of the rule broken (for logs and tests).
  std::string_view error_detail() const { return error_detail_; }
  // True once the header section is parsed (request() head fields are valid), even while the
  // body is still arriving: the moment to answer "Expect: 100-continue".
  bool head_complete() const { return phase_ > Phase::kHead && phase_ != Phase::kFailed; }
  const HttpParserLimits& limits() const { return limits_; }

  // Every message through the line-by-line parser: for tests that hold the one-pass reading
  // of common requests to the same results.
  void DisableFastPathForTesting() { fast_path_ = false; }

 private:
  enum class Phase : uint8_t {
    kHead, kBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone, kFailed,
  };

  enum class FastResult : uint8_t { kComplete, kError, kNotSimple };
  // The one-pass reading of a whole header section of the common shape. kNotSimple leaves
  // no trace (the line-by-line parser then starts afresh); kError comes from a check both
  // paths share (a field's meaning, FinishHead), so it is the error the other path gives.
  FastResult ParseSimpleHead(std::string_view input);
  Result ParseHead(std::string_view input);
  Result ParseChunked(std::string_view input);
  Result Fail(int status, std::string_view detail);
  bool ParseRequestLine(std::string_view line);
  bool ParseHeaderLine(std::string_view line);
  // Records a syntactically valid field and acts on the ones the parser understands.
  bool AddField(std::string_view name, std::string_view value);
  void AppendHeader(std::string_view name, std::string_view value) {
    if (header_count_ == headers_.size()) GrowHeaders();
    headers_[header_count_++] = HttpHeader{name, value};
  }
  void GrowHeaders();
  // Forgets the request line and every field (the state ParseSimpleHead may have touched).
  void ClearHead();
  bool FinishHead();
  bool CheckPartialRequestLine(std::string_view input);
  // Moves every view into the previous input onto the same offsets of the current one.
  void Rebase(std::string_view input);

  HttpParserLimits limits_;
  HttpRequest request_;
  // The fields of this message are the first header_count_; the rest are spare slots, so a
  // field is stored without a capacity check or a call.
  std::vector<HttpHeader> headers_;
  size_t header_count_ = 0;
  std::string chunked_body_;
  Phase phase_ = Phase::kHead;
  const char* base_ = nullptr;  // data() of the previous input
  size_t base_size_ = 0;
  size_t start_ = 0;       // offset of the request line (after leading empty lines)
  size_t line_start_ = 0;  // offset of the line being assembled
  size_t scan_ = 0;        // offset up to which the current line holds no LF
  size_t method_checked_ = 0;  // offset up to which a partial request line's method is checked
  size_t trailer_start_ = 0;
  size_t pos_ = 0;         // body / chunk cursor
  size_t head_end_ = 0;
  uint64_t chunk_remaining_ = 0;
  size_t framing_bytes_ = 0;
  size_t consumed_ = 0;
  int error_status_ = 0;
  std::string_view error_detail_;
  bool request_line_done_ = false;
  // Header facts gathered line by line, judged once the section ends.
  int host_count_ = 0;
  bool content_length_seen_ = false;
  bool transfer_encoding_seen_ = false;
  bool te_last_chunked_ = false;    // the last coding seen is named "chunked"
  bool te_chunked_not_last_ = false;
  bool te_unknown_ = false;         // a coding other than "chunked" without parameters
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool fast_path_ = true;
};

}  // namespace percore
