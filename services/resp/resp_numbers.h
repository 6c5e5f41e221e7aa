#pragma once

#include <cstdint>
#include <string_view>

namespace percore {

// Parses a signed 64-bit decimal the way Redis reads integers from requests and from stored
// values: an optional '-', then digits with no leading zero ("0" alone is fine), no '+', no
// spaces, at most 20 characters, in range. Anything else is not an integer.
bool ParseRedisInt64(std::string_view text, int64_t* value);

}  // namespace percore
