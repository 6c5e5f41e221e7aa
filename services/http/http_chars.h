#pragma once

#include <array>
#include <string_view>

namespace percore {

// Character classes of RFC 9110 §5.6, RFC 9112 and RFC 3986, as 256-entry tables (one load per
// byte).
namespace http_chars {

struct Tables {
  std::array<bool, 256> tchar{};        // token: ALPHA DIGIT and !#$%&'*+-.^_`|~
  std::array<bool, 256> target{};       // request-target bytes: VCHAR and obs-text (no CTL, no SP)
  std::array<bool, 256> field_value{};  // field-value bytes: VCHAR, obs-text, SP, HTAB
  std::array<bool, 256> reg_name{};     // RFC 3986 unreserved and sub-delims (reg-name less %XX)
  std::array<bool, 256> scheme{};       // RFC 3986 scheme after its first ALPHA: ALPHA DIGIT + - .
  std::array<bool, 256> hexdig{};       // HEXDIG: DIGIT and A-F in either case
};

constexpr Tables MakeTables() {
  Tables t;
  for (int c = 0; c < 256; ++c) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    const bool vchar = c >= 0x21 && c <= 0x7e;
    const bool obs_text = c >= 0x80;
    t.tchar[c] = alpha || digit || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                       std::string_view::npos;
    t.target[c] = vchar || obs_text;
    t.field_value[c] = vchar || obs_text || c == ' ' || c == '\t';
    t.reg_name[c] = alpha || digit ||
                    std::string_view("-._~!$&'()*+,;=").find(static_cast<char>(c)) !=
                        std::string_view::npos;
    t.scheme[c] = alpha || digit || c == '+' || c == '-' || c == '.';
    t.hexdig[c] = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }
  return t;
}

inline constexpr Tables kTables = MakeTables();

inline bool IsTchar(char c) { return kTables.tchar[static_cast<unsigned char>(c)]; }
inline bool IsTargetChar(char c) { return kTables.target[static_cast<unsigned char>(c)]; }
inline bool IsFieldValueChar(char c) { return kTables.field_value[static_cast<unsigned char>(c)]; }
inline bool IsRegNameChar(char c) { return kTables.reg_name[static_cast<unsigned char>(c)]; }
inline bool IsSchemeChar(char c) { return kTables.scheme[static_cast<unsigned char>(c)]; }
inline bool IsHexDigit(char c) { return kTables.hexdig[static_cast<unsigned char>(c)]; }
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }
inline bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool IsOws(char c) { return c == ' ' || c == '\t'; }

inline bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTchar(c)) return false;
  }
  return true;
}

// Strips optional whitespace (SP / HTAB) from both ends.
inline std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace http_chars
}  // namespace percore
