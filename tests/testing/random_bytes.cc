#include "tests/testing/random_bytes.h"

#include <cstdint>
#include <cstring>

namespace percore::test {

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  // One draw from `rng` seeds a SplitMix64 stream for the bytes themselves: a few integer
  // operations per 8 bytes, cheap enough for megabytes of payload in unoptimized builds.
  uint64_t state = rng();
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    state += 0x9e3779b97f4a7c15u;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    std::memcpy(out.data() + i, &z, n - i < 8 ? n - i : 8);
  }
  return out;
}

}  // namespace percore::test
