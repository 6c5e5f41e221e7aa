#include "tools/loadgen/codec.h"

#include <cstdio>

namespace percore::loadgen {

bool ParseProtocol(std::string_view name, Protocol* out) {
  for (Protocol p : {Protocol::kEcho, Protocol::kHttp, Protocol::kMemcache, Protocol::kResp}) {
    if (name == ProtocolName(p)) {
      *out = p;
      return true;
    }
  }
  return false;
}

std::string_view ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kEcho: return "echo";
    case Protocol::kHttp: return "http";
    case Protocol::kMemcache: return "memcache";
    case Protocol::kResp: return "resp";
  }
  return "?";
}

std::unique_ptr<Codec> NewCodec(const Workload& workload) {
  switch (workload.protocol) {
    case Protocol::kEcho: return NewEchoCodec(workload);
    case Protocol::kHttp: return NewHttpCodec(workload);
    case Protocol::kMemcache: return NewMemcacheCodec(workload);
    case Protocol::kResp: return NewRespCodec(workload);
  }
  return nullptr;
}

std::string Excerpt(std::string_view bytes) {
  constexpr size_t kMax = 60;
  std::string out = "\"";
  for (size_t i = 0; i < bytes.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += bytes.size() > kMax ? "\"..." : "\"";
  return out;
}

}  // namespace percore::loadgen
