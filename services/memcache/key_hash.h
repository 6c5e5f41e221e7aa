#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace percore {

// The hash of the key indexes (memcache's items, RESP's keyspace). Keys are short (typically
// 10 to 60 bytes), so the hash takes them eight bytes per step with one 64x64->128 multiply, folded, per step: a few
// instructions a word, where a general-purpose string hash spends most of its time setting up.
// The seed is an address, so it differs between runs (with ASLR) and a client cannot choose
// keys that collide without knowing it.
class KeyHasher {
 public:
  static uint64_t Hash(std::string_view key) {
    const char* p = key.data();
    size_t n = key.size();
    uint64_t h = Seed() ^ n;
    while (n > 8) {
      h = Fold(Load64(p) ^ kMul1, h ^ kMul0);
      p += 8;
      n -= 8;
    }
    // The last 1 to 8 bytes (none for an empty key), read as two overlapping halves or, below
    // four bytes, as first, middle and last byte.
    uint64_t last = 0;
    if (n >= 4) {
      last = (uint64_t{Load32(p)} << 32) | Load32(p + n - 4);
    } else if (n > 0) {
      last = (uint64_t{static_cast<uint8_t>(p[0])} << 16) |
             (uint64_t{static_cast<uint8_t>(p[n >> 1])} << 8) | static_cast<uint8_t>(p[n - 1]);
    }
    return Fold(last ^ kMul1, h ^ kMul2);
  }

 private:
  static constexpr uint64_t kMul0 = 0xa0761d6478bd642fULL;
  static constexpr uint64_t kMul1 = 0xe7037ed1a0b428dbULL;
  static constexpr uint64_t kMul2 = 0x8ebc6af09c88c6e3ULL;

  static uint64_t Seed() {
    static const char anchor = 0;
    return reinterpret_cast<uintptr_t>(&anchor) * kMul2;
  }
  static uint64_t Fold(uint64_t a, uint64_t b) {
    const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
    return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
  }
  static uint64_t Load64(const char* p) {
    uint64_t v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static uint32_t Load32(const char* p) {
    uint32_t v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
};

}  // namespace percore
