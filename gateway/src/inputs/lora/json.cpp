#include "inputs/lora/json.hpp"

#include <charconv>
#include <cmath>

namespace citygate::lora::json {

namespace {
constexpr std::size_t kMaxNumberChars = 64;
}

std::string_view errorName(Error e) {
  switch (e) {
    case Error::None:
      return "ok";
    case Error::Empty:
      return "empty";
    case Error::Syntax:
      return "syntax";
    case Error::Depth:
      return "too deep";
    case Error::TooManyNodes:
      return "too many values";
    case Error::TooManyMembers:
      return "too many members";
    case Error::StringTooLong:
      return "string too long";
    case Error::BadEscape:
      return "bad escape";
    case Error::BadUtf8:
      return "bad UTF-8";
    case Error::ControlChar:
      return "control character in string";
    case Error::BadNumber:
      return "bad number";
    case Error::DuplicateKey:
      return "duplicate key";
    case Error::TrailingData:
      return "data after the value";
  }
  return "?";
}

// ---- Value -----------------------------------------------------------------------------------

Type Value::type() const {
  return doc_->nodes_[index_].type;
}
bool Value::boolean() const {
  return valid() && doc_->nodes_[index_].boolean;
}
double Value::number() const {
  return valid() ? doc_->nodes_[index_].number : 0.0;
}

std::string_view Value::string() const {
  if (!isString()) return {};
  const auto& n = doc_->nodes_[index_];
  return std::string_view(doc_->strings_).substr(n.strOffset, n.strLen);
}

std::uint32_t Value::size() const {
  if (!isArray() && !isObject()) return 0;
  return doc_->nodes_[index_].size;
}

Value Value::get(std::string_view key) const {
  if (!isObject()) return {};
  for (auto it = begin(); it != end(); ++it) {
    if (it.key() == key) return *it;
  }
  return {};
}

Value::Iterator Value::begin() const {
  if (!isArray() && !isObject()) return Iterator(doc_, index_, false);
  const bool object = type() == Type::Object;
  if (doc_->nodes_[index_].size == 0) return end();
  // Objects: the first member's key is at index_+1, its value at index_+2.
  return Iterator(doc_, index_ + (object ? 2 : 1), object);
}

Value::Iterator Value::end() const {
  if (!isArray() && !isObject()) return Iterator(doc_, index_, false);
  const bool object = type() == Type::Object;
  // Past the subtree; for objects the iterator points at values, so the end is next + 1.
  return Iterator(doc_, doc_->nodes_[index_].next + (object ? 1 : 0), object);
}

std::string_view Value::Iterator::key() const {
  if (!object_) return {};
  return Value(doc_, index_ - 1).string();
}

Value::Iterator& Value::Iterator::operator++() {
  // The next element follows this one's subtree; for objects skip the next member's key too.
  index_ = doc_->nodes_[index_].next + (object_ ? 1 : 0);
  return *this;
}

// ---- Document --------------------------------------------------------------------------------

Document::Document(Limits limits) : limits_(limits) {
  nodes_.reserve(limits_.maxNodes);
}

void Document::skipWhitespace() {
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    ++pos_;
  }
}

Error Document::newNode(Type type, std::uint32_t& index) {
  if (nodes_.size() >= limits_.maxNodes) return Error::TooManyNodes;
  index = static_cast<std::uint32_t>(nodes_.size());
  nodes_.push_back(Node{});
  nodes_.back().type = type;
  return Error::None;
}

Error Document::parse(std::string_view text) {
  text_ = text;
  pos_ = 0;
  errorOffset_ = 0;
  nodes_.clear();
  strings_.clear();
  strings_.reserve(text.size());  // decoded strings never exceed the input
  skipWhitespace();
  Error e = Error::None;
  if (pos_ >= text_.size()) {
    e = Error::Empty;
  } else {
    e = parseValue(1);
    if (e == Error::None) {
      skipWhitespace();
      if (pos_ != text_.size()) e = Error::TrailingData;
    }
  }
  if (e != Error::None) {
    errorOffset_ = pos_;
    nodes_.clear();
    strings_.clear();
  }
  return e;
}

Error Document::parseLiteral(std::string_view word) {
  if (text_.substr(pos_, word.size()) != word) return Error::Syntax;
  pos_ += word.size();
  return Error::None;
}

Error Document::parseValue(std::uint32_t depth) {
  if (depth > limits_.maxDepth) return Error::Depth;
  if (pos_ >= text_.size()) return Error::Syntax;
  const char c = text_[pos_];
  std::uint32_t idx = 0;
  Error e = Error::None;
  switch (c) {
    case '{': {
      if ((e = newNode(Type::Object, idx)) != Error::None) return e;
      ++pos_;
      skipWhitespace();
      std::uint32_t members = 0;
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
      } else {
        for (;;) {
          skipWhitespace();
          if (pos_ >= text_.size() || text_[pos_] != '"') return Error::Syntax;
          if (++members > limits_.maxMembers) return Error::TooManyMembers;
          std::uint32_t keyIdx = 0;
          if ((e = newNode(Type::String, keyIdx)) != Error::None) return e;
          std::uint32_t off = 0;
          std::uint32_t len = 0;
          if ((e = parseString(off, len)) != Error::None) return e;
          nodes_[keyIdx].strOffset = off;
          nodes_[keyIdx].strLen = len;
          nodes_[keyIdx].next = keyIdx + 1;
          // Duplicate keys: walk the members parsed so far (bounded by maxMembers).
          const std::string_view key = std::string_view(strings_).substr(off, len);
          for (std::uint32_t k = idx + 1; k < keyIdx;) {
            const Node& kn = nodes_[k];
            if (std::string_view(strings_).substr(kn.strOffset, kn.strLen) == key) return Error::DuplicateKey;
            k = nodes_[k + 1].next;  // past the member's value
          }
          skipWhitespace();
          if (pos_ >= text_.size() || text_[pos_] != ':') return Error::Syntax;
          ++pos_;
          skipWhitespace();
          if ((e = parseValue(depth + 1)) != Error::None) return e;
          skipWhitespace();
          if (pos_ >= text_.size()) return Error::Syntax;
          if (text_[pos_] == ',') {
            ++pos_;
            continue;
          }
          if (text_[pos_] == '}') {
            ++pos_;
            break;
          }
          return Error::Syntax;
        }
      }
      nodes_[idx].size = members;
      break;
    }
    case '[': {
      if ((e = newNode(Type::Array, idx)) != Error::None) return e;
      ++pos_;
      skipWhitespace();
      std::uint32_t elements = 0;
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
      } else {
        for (;;) {
          skipWhitespace();
          if (++elements > limits_.maxMembers) return Error::TooManyMembers;
          if ((e = parseValue(depth + 1)) != Error::None) return e;
          skipWhitespace();
          if (pos_ >= text_.size()) return Error::Syntax;
          if (text_[pos_] == ',') {
            ++pos_;
            continue;
          }
          if (text_[pos_] == ']') {
            ++pos_;
            break;
          }
          return Error::Syntax;
        }
      }
      nodes_[idx].size = elements;
      break;
    }
    case '"': {
      if ((e = newNode(Type::String, idx)) != Error::None) return e;
      std::uint32_t off = 0;
      std::uint32_t len = 0;
      if ((e = parseString(off, len)) != Error::None) return e;
      nodes_[idx].strOffset = off;
      nodes_[idx].strLen = len;
      break;
    }
    case 't':
    case 'f': {
      if ((e = newNode(Type::Bool, idx)) != Error::None) return e;
      nodes_[idx].boolean = c == 't';
      if ((e = parseLiteral(c == 't' ? "true" : "false")) != Error::None) return e;
      break;
    }
    case 'n': {
      if ((e = newNode(Type::Null, idx)) != Error::None) return e;
      if ((e = parseLiteral("null")) != Error::None) return e;
      break;
    }
    default: {
      if (c != '-' && (c < '0' || c > '9')) return Error::Syntax;
      if ((e = newNode(Type::Number, idx)) != Error::None) return e;
      double v = 0.0;
      if ((e = parseNumber(v)) != Error::None) return e;
      nodes_[idx].number = v;
      break;
    }
  }
  nodes_[idx].next = static_cast<std::uint32_t>(nodes_.size());
  return Error::None;
}

Error Document::parseNumber(double& out) {
  const std::size_t start = pos_;
  auto digit = [&](std::size_t i) { return i < text_.size() && text_[i] >= '0' && text_[i] <= '9'; };
  if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
  if (!digit(pos_)) return Error::BadNumber;
  if (text_[pos_] == '0') {
    ++pos_;
    if (digit(pos_)) return Error::BadNumber;  // leading zero
  } else {
    while (digit(pos_)) ++pos_;
  }
  if (pos_ < text_.size() && text_[pos_] == '.') {
    ++pos_;
    if (!digit(pos_)) return Error::BadNumber;
    while (digit(pos_)) ++pos_;
  }
  if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    if (!digit(pos_)) return Error::BadNumber;
    while (digit(pos_)) ++pos_;
  }
  // No number the packet forwarder sends is this long; the cap also means a mantissa alone can
  // never overflow a double, so out-of-range below is decided by the exponent's sign.
  if (pos_ - start > kMaxNumberChars) return Error::BadNumber;
  const char* first = text_.data() + start;
  const char* last = text_.data() + pos_;
  double v = 0.0;
  const auto [ptr, ec] = std::from_chars(first, last, v);
  if (ec == std::errc::result_out_of_range) {
    const std::string_view token(first, pos_ - start);
    const auto e = token.find_first_of("eE");
    if (e != std::string_view::npos && e + 1 < token.size() && token[e + 1] == '-') {
      out = 0.0;  // underflow: harmless
      return Error::None;
    }
    return Error::BadNumber;  // overflow
  }
  if (ec != std::errc() || ptr != last || !std::isfinite(v)) return Error::BadNumber;
  out = v;
  return Error::None;
}

namespace {

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void appendUtf8(std::string& s, std::uint32_t cp) {
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the valid UTF-8 sequence starting at s[0] (a non-ASCII lead byte), or 0.
std::size_t utf8Sequence(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (s.size() < len) return 0;
  for (std::size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;  // overlong, out of range, or a surrogate
  }
  return len;
}

}  // namespace

Error Document::parseString(std::uint32_t& offset, std::uint32_t& length) {
  ++pos_;  // opening quote
  offset = static_cast<std::uint32_t>(strings_.size());
  auto tooLong = [&] { return strings_.size() - offset > limits_.maxStringBytes; };
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    const auto uc = static_cast<unsigned char>(c);
    if (c == '"') {
      ++pos_;
      length = static_cast<std::uint32_t>(strings_.size() - offset);
      return Error::None;
    }
    if (uc < 0x20) return Error::ControlChar;
    if (c == '\\') {
      if (pos_ + 1 >= text_.size()) return Error::Syntax;
      const char esc = text_[pos_ + 1];
      pos_ += 2;
      switch (esc) {
        case '"':
          strings_.push_back('"');
          break;
        case '\\':
          strings_.push_back('\\');
          break;
        case '/':
          strings_.push_back('/');
          break;
        case 'b':
          strings_.push_back('\b');
          break;
        case 'f':
          strings_.push_back('\f');
          break;
        case 'n':
          strings_.push_back('\n');
          break;
        case 'r':
          strings_.push_back('\r');
          break;
        case 't':
          strings_.push_back('\t');
          break;
        case 'u': {
          auto hex4 = [&](std::uint32_t& out) {
            if (pos_ + 4 > text_.size()) return false;
            out = 0;
            for (int i = 0; i < 4; ++i) {
              const int d = hexDigit(text_[pos_ + static_cast<std::size_t>(i)]);
              if (d < 0) return false;
              out = (out << 4) | static_cast<std::uint32_t>(d);
            }
            pos_ += 4;
            return true;
          };
          std::uint32_t cp = 0;
          if (!hex4(cp)) return Error::BadEscape;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Error::BadEscape;  // lone low surrogate
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo = 0;
            if (pos_ + 2 > text_.size() || text_[pos_] != '\\' || text_[pos_ + 1] != 'u') return Error::BadEscape;
            pos_ += 2;
            if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return Error::BadEscape;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          appendUtf8(strings_, cp);
          break;
        }
        default:
          return Error::BadEscape;
      }
      if (tooLong()) return Error::StringTooLong;
      continue;
    }
    if (uc < 0x80) {
      strings_.push_back(c);
      ++pos_;
    } else {
      const std::size_t n = utf8Sequence(text_.substr(pos_));
      if (n == 0) return Error::BadUtf8;
      strings_.append(text_.substr(pos_, n));
      pos_ += n;
    }
    if (tooLong()) return Error::StringTooLong;
  }
  return Error::Syntax;  // unterminated
}

}  // namespace citygate::lora::json
