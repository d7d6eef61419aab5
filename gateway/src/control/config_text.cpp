#include "control/config_text.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "config/diagnostics.hpp"

namespace citygate::control {

namespace {

bool identChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool isSecretName(std::string_view name) {
  auto ends = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  return ends("_key") || ends("secret") || name == "password" || ends("_password");
}

std::vector<std::string_view> splitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto nl = text.find('\n', start);
    if (nl == std::string_view::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// ---- secrets by place (keepRedactedSecrets) ----

constexpr std::string_view kRedacted = "<redacted>";

struct Block {
  std::size_t parent = 0;
  std::string name;
  std::size_t ordinal = 0;  // among the parent's blocks of the same name
  std::string id;           // the raw literal of its `id` (or `name`) field, quotes included
  bool idFromName = false;
};

struct SecretAt {
  std::size_t block = 0;
  std::string field;
  std::size_t begin = 0;  // the value's literal, quotes included
  std::size_t end = 0;
  std::string_view literal;
};

struct SecretScan {
  std::vector<Block> blocks;  // [0]: the file itself
  std::vector<SecretAt> secrets;
};

std::size_t skipString(std::string_view text, std::size_t i) {
  const char q = text[i];
  std::size_t j = i + 1;
  while (j < text.size() && text[j] != q && text[j] != '\n') j += text[j] == '\\' ? 2 : 1;
  return std::min(j + 1, text.size());
}

std::size_t skipBlank(std::string_view text, std::size_t i) {
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') {
      ++i;
    } else if (text[i] == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else {
      break;
    }
  }
  return i;
}

// The blocks and secret literals of a text-format text, by a tokenizer that knows no schema.
SecretScan scanSecrets(std::string_view text) {
  SecretScan scan;
  scan.blocks.emplace_back();
  std::map<std::pair<std::size_t, std::string>, std::size_t> seen;  // (parent, name) -> blocks so far
  std::size_t current = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '#') {
      i = skipBlank(text, i);
    } else if (c == '"' || c == '\'') {
      i = skipString(text, i);
    } else if (c == '}' || c == '>') {
      if (current != 0) current = scan.blocks[current].parent;
      ++i;
    } else if (identChar(c) && (i == 0 || !identChar(text[i - 1]))) {
      std::size_t end = i;
      while (end < text.size() && identChar(text[end])) ++end;
      const std::string name(text.substr(i, end - i));
      std::size_t j = skipBlank(text, end);
      if (j < text.size() && text[j] == ':') j = skipBlank(text, j + 1);
      if (j < text.size() && (text[j] == '{' || text[j] == '<')) {
        Block b;
        b.parent = current;
        b.name = name;
        b.ordinal = seen[{current, name}]++;
        scan.blocks.push_back(std::move(b));
        current = scan.blocks.size() - 1;
        i = j + 1;
      } else if (j < text.size() && (text[j] == '"' || text[j] == '\'')) {
        const std::size_t k = skipString(text, j);
        const std::string_view literal = text.substr(j, k - j);
        Block& b = scan.blocks[current];
        if (name == "id" && (b.id.empty() || b.idFromName)) {
          b.id = literal;
          b.idFromName = false;
        } else if (name == "name" && b.id.empty()) {
          b.id = literal;
          b.idFromName = true;
        }
        if (isSecretName(name)) scan.secrets.push_back(SecretAt{current, name, j, k, literal});
        i = k;
      } else {
        i = end;
      }
    } else {
      ++i;
    }
  }
  return scan;
}

// "lora.device[\"parking-bay-0042\"].nwk_s_key"; a block without an id by its position: "#2".
std::string placeOf(const SecretScan& scan, const SecretAt& s) {
  std::vector<std::size_t> chain;
  for (std::size_t b = s.block; b != 0; b = scan.blocks[b].parent) chain.push_back(b);
  std::string out;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const Block& b = scan.blocks[*it];
    out += b.name + (b.id.empty() ? "#" + std::to_string(b.ordinal + 1) : "[" + b.id + "]") + ".";
  }
  return out + s.field;
}

bool isRedacted(std::string_view literal) {
  return literal.size() == kRedacted.size() + 2 && literal.substr(1, kRedacted.size()) == kRedacted &&
         literal.front() == literal.back();
}

}  // namespace

SecretMerge keepRedactedSecrets(std::string_view file, std::string_view text, std::string_view running) {
  SecretMerge out;
  const SecretScan next = scanSecrets(text);
  std::map<std::string, std::string_view> known;  // place -> literal (real values only)
  std::map<std::string, std::size_t> count;
  {
    const SecretScan run = scanSecrets(running);
    for (const auto& s : run.secrets) {
      const std::string place = placeOf(run, s);
      ++count[place];
      if (!isRedacted(s.literal)) known[place] = s.literal;
    }
  }
  out.text.reserve(text.size());
  std::size_t copied = 0;
  for (const auto& s : next.secrets) {
    if (!isRedacted(s.literal)) continue;
    const std::string place = placeOf(next, s);
    const auto it = known.find(place);
    if (it == known.end() || count[place] != 1) {
      const auto [line, column] = config::textPosition(text, s.begin);
      const std::size_t dot = place.size() - s.field.size();
      const std::string where = dot == 0 ? std::string("the top level") : place.substr(0, dot - 1);
      out.errors.push_back(std::string(file) + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                           s.field + " is \"<redacted>\" (from `config show`), but the running configuration has no " +
                           s.field + " at " + where + " to keep; write the value (or " + s.field + "_file)");
      continue;
    }
    out.text.append(text.substr(copied, s.begin - copied));
    out.text.append(it->second);
    copied = s.end;
    ++out.kept;
  }
  out.text.append(text.substr(copied));
  return out;
}

std::string redactSecrets(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '#') {  // a comment runs to the end of the line
      const auto nl = text.find('\n', i);
      const std::size_t end = nl == std::string_view::npos ? text.size() : nl;
      out.append(text.substr(i, end - i));
      i = end;
      continue;
    }
    if (c == '"' || c == '\'') {  // a string that is not a secret's value: copied as it is
      std::size_t j = i + 1;
      while (j < text.size() && text[j] != c && text[j] != '\n') j += text[j] == '\\' ? 2 : 1;
      j = std::min(j + 1, text.size());
      out.append(text.substr(i, j - i));
      i = j;
      continue;
    }
    if (!identChar(c) || (i > 0 && identChar(text[i - 1]))) {
      out.push_back(c);
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < text.size() && identChar(text[end])) ++end;
    const std::string_view name = text.substr(i, end - i);
    out.append(name);
    i = end;
    if (!isSecretName(name)) continue;
    // name [ws] [:] [ws] "value"
    std::size_t j = i;
    while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
    if (j < text.size() && text[j] == ':') ++j;
    while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
    if (j >= text.size() || (text[j] != '"' && text[j] != '\'')) continue;
    const char q = text[j];
    std::size_t k = j + 1;
    while (k < text.size() && text[k] != q && text[k] != '\n') k += text[k] == '\\' ? 2 : 1;
    out.append(text.substr(i, j - i + 1));
    out.append("<redacted>");
    if (k < text.size() && text[k] == q) {
      out.push_back(q);
      ++k;
    }
    i = std::min(k, text.size());
  }
  return out;
}

std::string unifiedDiff(std::string_view before, std::string_view after, std::string_view beforeName,
                        std::string_view afterName) {
  const auto a = splitLines(before);
  const auto b = splitLines(after);
  std::size_t head = 0;
  while (head < a.size() && head < b.size() && a[head] == b[head]) ++head;
  if (head == a.size() && head == b.size()) return {};
  std::size_t tail = 0;
  while (tail < a.size() - head && tail < b.size() - head && a[a.size() - 1 - tail] == b[b.size() - 1 - tail]) ++tail;
  const std::size_t n = a.size() - head - tail;
  const std::size_t m = b.size() - head - tail;

  // Edit script of the middle: ' ' keep, '-' delete (from a), '+' insert (from b).
  std::vector<char> ops;
  constexpr std::size_t kMaxCells = 1U << 20;
  if (n > 0 && m > 0 && (n + 1) * (m + 1) <= kMaxCells) {
    // LCS table over the suffixes: lcs[i][j] = LCS of a[head+i..] and b[head+j..].
    std::vector<std::uint16_t> lcs((n + 1) * (m + 1), 0);
    auto at = [&](std::size_t i, std::size_t j) -> std::uint16_t& { return lcs[i * (m + 1) + j]; };
    for (std::size_t i = n; i-- > 0;) {
      for (std::size_t j = m; j-- > 0;) {
        at(i, j) = a[head + i] == b[head + j] ? static_cast<std::uint16_t>(at(i + 1, j + 1) + 1)
                                              : std::max(at(i + 1, j), at(i, j + 1));
      }
    }
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < n && j < m) {
      if (a[head + i] == b[head + j]) {
        ops.push_back(' ');
        ++i;
        ++j;
      } else if (at(i + 1, j) >= at(i, j + 1)) {
        ops.push_back('-');
        ++i;
      } else {
        ops.push_back('+');
        ++j;
      }
    }
    ops.insert(ops.end(), n - i, '-');
    ops.insert(ops.end(), m - j, '+');
  } else {
    ops.assign(n, '-');
    ops.insert(ops.end(), m, '+');
  }

  // The whole script with the common head and tail, then hunks with 3 lines of context.
  std::vector<char> all(head, ' ');
  all.insert(all.end(), ops.begin(), ops.end());
  all.insert(all.end(), tail, ' ');
  constexpr std::size_t kContext = 3;
  std::string out;
  out += "--- ";
  out.append(beforeName);
  out += "\n+++ ";
  out.append(afterName);
  out += "\n";
  // Positions in a and b of each op.
  std::vector<std::size_t> ai(all.size() + 1);
  std::vector<std::size_t> bi(all.size() + 1);
  for (std::size_t k = 0, x = 0, y = 0; k <= all.size(); ++k) {
    ai[k] = x;
    bi[k] = y;
    if (k == all.size()) break;
    if (all[k] != '+') ++x;
    if (all[k] != '-') ++y;
  }
  std::size_t k = 0;
  while (k < all.size()) {
    if (all[k] == ' ') {
      ++k;
      continue;
    }
    std::size_t start = k >= kContext ? k - kContext : 0;
    std::size_t end = k;
    // Extend while changes are closer than 2 * context apart.
    for (;;) {
      while (end < all.size() && all[end] != ' ') ++end;
      std::size_t next = end;
      while (next < all.size() && all[next] == ' ' && next - end < 2 * kContext) ++next;
      if (next < all.size() && all[next] != ' ') {
        end = next;
        continue;
      }
      break;
    }
    const std::size_t stop = std::min(all.size(), end + kContext);
    const std::size_t aCount = ai[stop] - ai[start];
    const std::size_t bCount = bi[stop] - bi[start];
    out += "@@ -" + std::to_string(aCount ? ai[start] + 1 : ai[start]) + "," + std::to_string(aCount) + " +" +
           std::to_string(bCount ? bi[start] + 1 : bi[start]) + "," + std::to_string(bCount) + " @@\n";
    for (std::size_t p = start; p < stop; ++p) {
      out.push_back(all[p]);
      out.append(all[p] == '+' ? b[bi[p]] : a[ai[p]]);
      out.push_back('\n');
    }
    k = stop;
  }
  return out;
}

}  // namespace citygate::control
