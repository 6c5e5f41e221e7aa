#include "services/http/http_request.h"

namespace percore {

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
