#include "config/diagnostics.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>

#include <cstdio>

#include "config/files.hpp"
#include "core/utf8.hpp"

namespace citygate::config {

namespace gp = google::protobuf;

std::string Diagnostic::str() const {
  std::string s = file;
  if (line > 0) {
    s += ":" + std::to_string(line) + ":" + std::to_string(column);
  }
  s += ": " + message;
  return s;
}

void Diagnostics::add(std::string file, int line, int column, std::string message) {
  items_.push_back(Diagnostic{std::move(file), line, column, std::move(message)});
}

std::string Diagnostics::str() const {
  std::string s;
  for (const auto& d : items_) s += d.str() + "\n";
  return s;
}

void Diagnostics::append(const Diagnostics& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

const gp::FieldDescriptor* Location::descriptor(std::string_view name) const {
  if (msg_ == nullptr) return nullptr;
  return msg_->GetDescriptor()->FindFieldByName(std::string(name));
}

Location Location::field(std::string_view name, int index) const {
  const gp::FieldDescriptor* fd = descriptor(name);
  if (tree_ == nullptr || fd == nullptr) return *this;
  const int idx = fd->is_repeated() ? (index < 0 ? 0 : index) : -1;
  const auto loc = tree_->GetLocation(fd, idx);
  if (loc.line < 0) return *this;
  return Location(file_, nullptr, nullptr, loc.line + 1, loc.column + 1);
}

Location Location::child(std::string_view name, int index) const {
  const gp::FieldDescriptor* fd = descriptor(name);
  if (fd == nullptr || fd->type() != gp::FieldDescriptor::TYPE_MESSAGE) return *this;
  const int idx = fd->is_repeated() ? (index < 0 ? 0 : index) : -1;
  const Location at = field(name, index);
  const gp::Message* sub = nullptr;
  const gp::Reflection* refl = msg_->GetReflection();
  if (fd->is_repeated()) {
    if (idx < refl->FieldSize(*msg_, fd)) sub = &refl->GetRepeatedMessage(*msg_, fd, idx);
  } else {
    sub = &refl->GetMessage(*msg_, fd);
  }
  const gp::TextFormat::ParseInfoTree* nested = tree_ ? tree_->GetTreeForNested(fd, idx) : nullptr;
  return Location(file_, nested, sub, at.line_, at.column_);
}

namespace {

class Collector final : public gp::io::ErrorCollector {
 public:
  Collector(const std::string& file, Diagnostics& diags) : file_(file), diags_(diags) {}
  void AddError(int line, gp::io::ColumnNumber column, const std::string& message) override {
    diags_.add(file_, line + 1, column + 1, clean(message));
  }
  void AddWarning(int line, gp::io::ColumnNumber column, const std::string& message) override {
    diags_.add(file_, line + 1, column + 1, "warning: " + clean(message));
  }

 private:
  static std::string clean(std::string m) {
    // protobuf says 'Message type "citygate.v1.ModbusBus" has no field named "devices".': name the
    // fields that are valid there, as a technician needs them.
    const std::string prefix = "Message type \"";
    const std::string noField = "\" has no field named \"";
    if (m.rfind(prefix, 0) == 0) {
      const auto end = m.find(noField);
      if (end != std::string::npos) {
        const std::string type = m.substr(prefix.size(), end - prefix.size());
        const std::string field = m.substr(end + noField.size(), m.size() - end - noField.size() - 2);
        std::string out = "unknown field \"" + field + "\"";
        if (const auto* d = gp::DescriptorPool::generated_pool()->FindMessageTypeByName(type)) {
          out += " in " + d->name() + "; valid fields: ";
          for (int i = 0; i < d->field_count(); ++i) out += (i ? ", " : "") + d->field(i)->name();
        }
        return out;
      }
    }
    if (m.size() >= 5 && m.compare(m.size() - 5, 5, "got: ") == 0) m += "end of file (a '}' missing?)";
    return m;
  }
  const std::string& file_;
  Diagnostics& diags_;
};

}  // namespace

std::pair<int, int> textPosition(std::string_view text, std::size_t at) {
  int line = 1;
  int column = 0;
  for (std::size_t i = 0; i < at && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 0;
    } else if (text[i] == '\t') {
      column += 8 - column % 8;
    } else {
      ++column;
    }
  }
  return {line, column + 1};
}

bool checkUtf8(const std::string& file, std::string_view text, Diagnostics& diags) {
  const std::size_t bad = core::firstInvalidUtf8(text);
  if (bad == std::string_view::npos) return true;
  const auto [line, column] = textPosition(text, bad);
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(text[bad])));
  diags.add(file, line, column,
            std::string("byte ") + hex +
                " is not UTF-8: a configuration is UTF-8 text (from Latin-1: iconv -f latin1 -t utf-8)");
  return false;
}

bool parseText(const std::string& file, const std::string& text, gp::Message& out, Diagnostics& diags,
               ParsedText& parsed) {
  const std::size_t before = diags.size();
  parsed.tree = std::make_unique<gp::TextFormat::ParseInfoTree>();
  parsed.root = Location(file, parsed.tree.get(), &out, 0, 0);
  if (!checkUtf8(file, text, diags)) return false;
  Collector collector(file, diags);
  gp::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  parser.WriteLocationsTo(parsed.tree.get());
  parser.AllowUnknownField(false);
  parser.AllowUnknownExtension(false);
  const bool ok = parser.ParseFromString(text, &out);
  if (!ok && diags.size() == before) diags.add(file, 0, 0, "cannot parse");
  return ok && diags.size() == before;
}

bool readFile(const std::string& path, std::string& out, Diagnostics& diags, std::size_t maxBytes) {
  SmallFile f = readSmallFile(path, maxBytes);
  if (!f.ok()) {
    diags.add(path, 0, 0, f.error);
    return false;
  }
  out = std::move(f.bytes);
  return true;
}

}  // namespace citygate::config
