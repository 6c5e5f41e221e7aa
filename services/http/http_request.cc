#include "services/http/http_request.h"

namespace percore {
namespace {

constexpr unsigned char LowerAscii(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + ('a' - 'A')) : c;
}

}  // namespace

bool EqualsIgnoreCaseAscii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(static_cast<unsigned char>(a[i])) != LowerAscii(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const HttpHeader& header : headers) {
    if (EqualsIgnoreCaseAscii(header.name, name)) return header.value;
  }
  return {};
}

bool HttpRequest::has_header(std::string_view name) const {
  for (const HttpHeader& header : headers) {
    if (EqualsIgnoreCaseAscii(header.name, name)) return true;
  }
  return false;
}

}  // namespace percore
