// Lexical rules shared by the IR text printer and parser (bare-name charsets, quoting, floats).
#pragma once
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

namespace gs::text {

/// Characters allowed in unquoted value, node and attribute names.
inline bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '/' || c == '-';
}
/// Characters allowed in unquoted op types and domains (no ':' so that `dom::Op` splits).
inline bool isOpChar(char c) { return c != ':' && isNameChar(c); }

/// A name prints bare if it is non-empty, uses only name characters and does not end with ':'
/// (the parser strips trailing ':' from a bare name because `%y: f32[...]` follows it).
inline bool isBareName(std::string_view s) {
  if (s.empty() || s.back() == ':') return false;
  for (char c : s)
    if (!isNameChar(c)) return false;
  return true;
}
inline bool isBareOp(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!isOpChar(c)) return false;
  return true;
}
/// Dimension symbols print bare only as C identifiers (so they never look like numbers or `?`).
inline bool isBareSymbol(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  return true;
}

/// Double-quoted string; `"` and `\` are escaped, other bytes outside 0x20..0x7e as \n \t \r \xHH.
inline std::string quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[5];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}
inline std::string nameText(std::string_view s) {
  return isBareName(s) ? std::string(s) : quote(s);
}
inline std::string opText(std::string_view s) { return isBareOp(s) ? std::string(s) : quote(s); }

/// Shortest text that parses back to exactly `v` ("0.1", "1e-05", "inf", "-inf", "nan").
template <typename F>
void appendFloat(std::string& out, F v) {
  if (std::isnan(v)) {
    out += "nan";
    return;
  }
  if (std::isinf(v)) {
    out += v < 0 ? "-inf" : "inf";
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

/// Like appendFloat but always looks like a float (`1.0`, never `1`), for attribute values.
inline void appendFloatLiteral(std::string& out, float v) {
  size_t start = out.size();
  appendFloat(out, v);
  if (out.find_first_of(".eni", start) == std::string::npos) out += ".0";
}

}  // namespace gs::text
