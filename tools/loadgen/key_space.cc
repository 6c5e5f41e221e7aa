#include "tools/loadgen/key_space.h"

#include <cstring>
#include <string>

namespace percore::loadgen {
namespace {

size_t Digits(uint64_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

// The value starts with "v<index>:" (so a value put under the wrong key is caught at its first
// bytes) and continues with letters that shift with the index and the position.
char FillerByte(uint64_t index, size_t position) {
  return static_cast<char>('a' + (index + position) % 26);
}

}  // namespace

bool KeySpace::Valid() const { return keys_ > 0 && key_size_ >= 1 + Digits(keys_ - 1); }

void KeySpace::WriteKey(uint64_t index, char* out) const {
  out[0] = 'k';
  for (size_t i = key_size_; i > 1; --i) {
    out[i - 1] = static_cast<char>('0' + index % 10);
    index /= 10;
  }
}

void KeySpace::WriteValue(uint64_t index, char* out) const {
  char prefix[24];
  size_t n = 0;
  prefix[n++] = 'v';
  const size_t digits = Digits(index);
  uint64_t rest = index;
  for (size_t i = digits; i > 0; --i) {
    prefix[n + i - 1] = static_cast<char>('0' + rest % 10);
    rest /= 10;
  }
  n += digits;
  prefix[n++] = ':';
  const size_t head = n < value_size_ ? n : value_size_;
  std::memcpy(out, prefix, head);
  for (size_t i = head; i < value_size_; ++i) out[i] = FillerByte(index, i);
}

bool KeySpace::IsValue(uint64_t index, std::string_view bytes) const {
  if (bytes.size() != value_size_) return false;
  thread_local std::string expected;
  expected.resize(value_size_);
  WriteValue(index, expected.data());
  return bytes == expected;
}

}  // namespace percore::loadgen
