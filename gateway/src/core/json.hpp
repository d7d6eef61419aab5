// A JSON string literal (RFC 8259): the one escaping rule of everything citygate writes as JSON by
// hand (citygatectl's tables in --json, the reference consumer's NGSI-LD entities). Header-only:
// the consumer (platform/) uses it without the gateway's libraries.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace citygate::core {

// `s` as a JSON string literal, quotes included; control characters as \uXXXX.
inline std::string jsonString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", c);
          out += esc;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace citygate::core
