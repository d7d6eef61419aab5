// Diagnostics: every config problem as FILE:LINE:COL: message (1-based line and column), and the
// locator that finds where a parsed field was written, for semantic checks after parsing.
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/text_format.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace citygate::config {

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 = the file as a whole
  int column = 0;  // 1-based
  std::string message;

  std::string str() const;
};

class Diagnostics {
 public:
  void add(std::string file, int line, int column, std::string message);
  void add(Diagnostic d) { items_.push_back(std::move(d)); }
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  std::string str() const;  // one per line
  void append(const Diagnostics& other);

 private:
  std::vector<Diagnostic> items_;
};

// Where a field (or element of a repeated field) of a parsed message was written. A Location
// without a tree points at the file itself (line 0), or at the parent's position.
class Location {
 public:
  Location() = default;
  Location(std::string file, const google::protobuf::TextFormat::ParseInfoTree* tree,
           const google::protobuf::Message* msg, int line, int column)
      : file_(std::move(file)), tree_(tree), msg_(msg), line_(line), column_(column) {}

  // The position of `field` (index for repeated fields) in this message; falls back to this
  // message's own position when the field was not written.
  Location field(std::string_view name, int index = -1) const;
  // The nested message `name`[index], for further lookups inside it.
  Location child(std::string_view name, int index = -1) const;

  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }

  void error(Diagnostics& d, std::string message) const { d.add(file_, line_, column_, std::move(message)); }

 private:
  const google::protobuf::FieldDescriptor* descriptor(std::string_view name) const;

  std::string file_;
  const google::protobuf::TextFormat::ParseInfoTree* tree_ = nullptr;
  const google::protobuf::Message* msg_ = nullptr;
  int line_ = 0;
  int column_ = 0;
};

// A message parsed from text format, with the parse tree its locations come from.
struct ParsedText {
  std::unique_ptr<google::protobuf::TextFormat::ParseInfoTree> tree;
  Location root;
};

// Parses `text` (the content of `file`) into `out`. Text that is not UTF-8 (a Latin-1 byte), syntax
// errors and unknown fields go to `diags` as FILE:LINE:COL. Returns false on any error.
bool parseText(const std::string& file, const std::string& text, google::protobuf::Message& out, Diagnostics& diags,
               ParsedText& parsed);

// The one text rule for configurations and profiles, wherever they come from (a file, `config
// validate`, `config apply`): UTF-8. False with a FILE:LINE:COL diagnostic at the first byte that
// is not (columns count as protobuf's tokenizer counts them: bytes, a tab to the next multiple of 8).
bool checkUtf8(const std::string& file, std::string_view text, Diagnostics& diags);

// The 1-based line and column of byte `at` of `text`, as protobuf's tokenizer counts them (bytes,
// a tab to the next multiple of 8): for a FILE:LINE:COL diagnostic of a place found in the text.
std::pair<int, int> textPosition(std::string_view text, std::size_t at);

// Reads a whole file through readSmallFile() (config/files.hpp): regular files only, at most
// `maxBytes`; false with a diagnostic (FILE: message) when it cannot.
bool readFile(const std::string& path, std::string& out, Diagnostics& diags, std::size_t maxBytes);

}  // namespace citygate::config
