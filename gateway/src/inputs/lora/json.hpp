// A small, strict, bounded JSON parser for what the Semtech packet forwarder sends (rxpk, stat).
//
// Strict RFC 8259: no comments, no trailing commas, no leading zeros, no NaN/Infinity, no raw
// control characters in strings, valid UTF-8 and \u escapes (paired surrogates), nothing after
// the top-level value but whitespace. Duplicate keys in an object are rejected (a repeated "data"
// or "stat" is ambiguous, and the safe reading of an ambiguous packet is none).
//
// Bounded: depth, node count, members per object and decoded string length are capped by Limits,
// so a hostile datagram costs at most O(size) time and a fixed amount of memory. A Document keeps
// its node table and string arena between parses: once warmed up, parsing does not allocate.
//
// Values are light handles into the Document; they are valid until the next parse(). Pure; any
// thread, one Document per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace citygate::lora::json {

enum class Type : std::uint8_t { Null, Bool, Number, String, Array, Object };

enum class Error : std::uint8_t {
  None,
  Empty,           // only whitespace
  Syntax,          // unexpected character or end of input
  Depth,           // nested deeper than Limits::maxDepth
  TooManyNodes,    // more values than Limits::maxNodes
  TooManyMembers,  // an object or array with more than Limits::maxMembers entries
  StringTooLong,   // a decoded string longer than Limits::maxStringBytes
  BadEscape,       // unknown escape, bad \u digits, unpaired surrogate
  BadUtf8,         // invalid UTF-8 in a string
  ControlChar,     // raw character < 0x20 in a string
  BadNumber,       // number grammar, or out of the double range
  DuplicateKey,    // the same key twice in one object
  TrailingData,    // something after the top-level value
};

std::string_view errorName(Error e);

struct Limits {
  std::uint32_t maxDepth = 8;
  std::uint32_t maxNodes = 2048;
  std::uint32_t maxMembers = 256;
  std::uint32_t maxStringBytes = 2048;
};

class Document;

class Value {
 public:
  Value() = default;

  bool valid() const { return doc_ != nullptr; }
  Type type() const;
  bool isNull() const { return valid() && type() == Type::Null; }
  bool isBool() const { return valid() && type() == Type::Bool; }
  bool isNumber() const { return valid() && type() == Type::Number; }
  bool isString() const { return valid() && type() == Type::String; }
  bool isArray() const { return valid() && type() == Type::Array; }
  bool isObject() const { return valid() && type() == Type::Object; }

  bool boolean() const;
  double number() const;
  std::string_view string() const;
  // Elements of an array or members of an object.
  std::uint32_t size() const;

  // Object member by key; an invalid Value when absent or when this is not an object.
  Value get(std::string_view key) const;

  // Iteration: arrays yield their elements; objects yield their members' values, with key().
  class Iterator {
   public:
    Value operator*() const { return Value(doc_, index_); }
    std::string_view key() const;  // objects only
    Iterator& operator++();
    bool operator!=(const Iterator& o) const { return index_ != o.index_; }

   private:
    friend class Value;
    Iterator(const Document* doc, std::uint32_t index, bool object) : doc_(doc), index_(index), object_(object) {}
    const Document* doc_;
    std::uint32_t index_;  // the element (array) or the member's value (object)
    bool object_;
  };
  Iterator begin() const;
  Iterator end() const;

 private:
  friend class Document;
  Value(const Document* doc, std::uint32_t index) : doc_(doc), index_(index) {}
  const Document* doc_ = nullptr;
  std::uint32_t index_ = 0;
};

class Document {
 public:
  explicit Document(Limits limits = {});

  // Parses `text`; on error the document is empty and errorOffset() says where it failed.
  Error parse(std::string_view text);
  std::size_t errorOffset() const { return errorOffset_; }
  Value root() const { return nodes_.empty() ? Value() : Value(this, 0); }

 private:
  friend class Value;
  struct Node {
    Type type = Type::Null;
    bool boolean = false;
    std::uint32_t size = 0;  // elements / members
    std::uint32_t next = 0;  // index just past this node's subtree
    std::uint32_t strOffset = 0;
    std::uint32_t strLen = 0;
    double number = 0.0;
  };

  Error parseValue(std::uint32_t depth);
  Error parseString(std::uint32_t& offset, std::uint32_t& length);
  Error parseNumber(double& out);
  Error parseLiteral(std::string_view word);
  Error newNode(Type type, std::uint32_t& index);
  void skipWhitespace();

  Limits limits_;
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t errorOffset_ = 0;
  std::vector<Node> nodes_;
  std::string strings_;
};

}  // namespace citygate::lora::json
