#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/buffer.h"

namespace percore {

// RESP2 reply encoders. Each appends one complete reply to `out`; none allocates beyond what
// the buffer itself needs to grow.

// "+text\r\n". `text` must not contain CR or LF.
void AppendStatus(Buffer& out, std::string_view text);
// "-message\r\n". `message` starts with its error code ("ERR ...", "WRONGTYPE ..."); CR and LF
// inside it are written as spaces so the reply stays one line.
void AppendError(Buffer& out, std::string_view message);
// ":n\r\n"
void AppendInteger(Buffer& out, int64_t n);
// "$len\r\nbytes\r\n"
void AppendBulk(Buffer& out, std::string_view bytes);
// "$len\r\n": the header of a bulk string whose `len` bytes and CRLF are appended separately
// (a stored value sent in place).
void AppendBulkHeader(Buffer& out, size_t len);
// "$-1\r\n": the RESP2 null bulk string (missing key).
void AppendNullBulk(Buffer& out);
// "*n\r\n": the header of an n-element array; the elements follow.
void AppendArrayHeader(Buffer& out, size_t n);

inline constexpr std::string_view kOkReply = "+OK\r\n";
inline constexpr std::string_view kNullBulkReply = "$-1\r\n";

}  // namespace percore
