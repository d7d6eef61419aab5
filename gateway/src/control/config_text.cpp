#include "control/config_text.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

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

}  // namespace

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
