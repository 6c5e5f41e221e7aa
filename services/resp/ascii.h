#pragma once

#include <string_view>

namespace percore {

// ASCII case folding for command names and option words, which Redis matches without regard
// to case. Locale-independent and allocation-free.
inline char AsciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

// Whether `text` equals `lower` (which must be lowercase) ignoring the case of `text`.
inline bool EqualsIgnoreCase(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (AsciiLower(text[i]) != lower[i]) return false;
  }
  return true;
}

}  // namespace percore
