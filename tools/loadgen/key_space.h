#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace percore::loadgen {

// Keys and values for the store protocols. A key is "k" and its index zero-padded to
// key_size bytes; the value under key i is a pure function of i and value_size, so a reply to
// a get can be checked without remembering what was set (any client, any run, same bytes).
class KeySpace {
 public:
  KeySpace(uint64_t keys, size_t key_size, size_t value_size)
      : keys_(keys), key_size_(key_size), value_size_(value_size) {}

  // Whether every index in [0, keys) fits in key_size bytes ("k" plus at least its digits).
  bool Valid() const;

  uint64_t keys() const { return keys_; }
  size_t key_size() const { return key_size_; }
  size_t value_size() const { return value_size_; }

  // Writes exactly key_size() / value_size() bytes at `out`.
  void WriteKey(uint64_t index, char* out) const;
  void WriteValue(uint64_t index, char* out) const;
  // Whether `bytes` is the value of key `index`.
  bool IsValue(uint64_t index, std::string_view bytes) const;

 private:
  uint64_t keys_;
  size_t key_size_;
  size_t value_size_;
};

}  // namespace percore::loadgen
