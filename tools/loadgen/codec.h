#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "core/buffer.h"
#include "tools/loadgen/load_options.h"

namespace percore::loadgen {

// One request as the generator chose it. `key` is a KeySpace index (stores); `seq` numbers the
// requests of one connection (echo writes it into the message so a reordered or duplicated
// reply is caught).
struct Request {
  enum class Op : uint8_t { kGet, kSet, kPing, kEcho, kHttpGet };
  Op op = Op::kEcho;
  uint64_t key = 0;
  uint64_t seq = 0;
};

// The verdict on the bytes at the front of a connection's input, read as the reply to the
// oldest outstanding request.
struct ReplyCheck {
  enum class Status : uint8_t {
    kNeedMore,  // not complete yet
    kOk,        // complete and right
    kMiss,      // complete and right, and the key was not found (stores)
    kWrong,     // not the reply that request must get; `error` says why. Framing is lost.
  };
  Status status = Status::kNeedMore;
  size_t consumed = 0;         // bytes of the reply (kOk, kMiss)
  bool server_closes = false;  // the reply announces that the server closes after it (HTTP)
  std::string error;

  static ReplyCheck NeedMore() { return {}; }
  static ReplyCheck Ok(size_t n) { return {Status::kOk, n, false, {}}; }
  static ReplyCheck Miss(size_t n) { return {Status::kMiss, n, false, {}}; }
  static ReplyCheck Wrong(std::string why) { return {Status::kWrong, 0, false, std::move(why)}; }
};

// A protocol's client side: writes requests and checks replies. Stateless per request, so a
// pipelined connection only remembers the Requests it has outstanding. Immutable after
// construction and shared by every worker thread.
class Codec {
 public:
  virtual ~Codec() = default;

  // Appends the bytes of `request` to `out`.
  virtual void Encode(const Request& request, Buffer& out) const = 0;
  // Checks `input` (everything read and not yet consumed) as the reply to `request`.
  // Any amount of input may be given; a reply may be split anywhere.
  virtual ReplyCheck Check(const Request& request, std::string_view input) const = 0;
};

std::unique_ptr<Codec> NewEchoCodec(const Workload& workload);
std::unique_ptr<Codec> NewHttpCodec(const Workload& workload);
std::unique_ptr<Codec> NewMemcacheCodec(const Workload& workload);
std::unique_ptr<Codec> NewRespCodec(const Workload& workload);
// The codec of workload.protocol.
std::unique_ptr<Codec> NewCodec(const Workload& workload);

// Shortens peer bytes for an error message: at most 60 bytes, control bytes escaped.
std::string Excerpt(std::string_view bytes);
inline std::string Excerpt(absl::string_view bytes) { return Excerpt(std::string_view(bytes.data(), bytes.size())); }

}  // namespace percore::loadgen
