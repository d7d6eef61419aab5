#include "cli/terminal.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "cli/format.hpp"

namespace citygate::cli {

std::size_t outputWidth(int fd) {
  if (const char* columns = std::getenv("COLUMNS"); columns != nullptr && *columns != '\0') {
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(columns, columns + std::strlen(columns), n);
    if (ec == std::errc() && *end == '\0' && n > 0) return std::max(n, kMinWidth);
  }
  winsize ws{};
  if (::isatty(fd) == 1 && ::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
    return std::max<std::size_t>(ws.ws_col, kMinWidth);
  }
  return kDefaultWidth;
}

namespace {

// The byte length of the longest prefix of `s` that fits `room` display columns (whole UTF-8
// sequences and colour codes).
std::size_t fitting(std::string_view s, std::size_t room) {
  std::size_t w = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 1;
    if (c == 0x1B) {
      len = 1;
      if (i + 1 < s.size() && s[i + 1] == '[') {
        len = 2;
        while (i + len < s.size() && !(s[i + len] >= 0x40 && s[i + len] <= 0x7E)) ++len;
        if (i + len < s.size()) ++len;
      }
      i += len;
      continue;
    }
    if (c >= 0xF0) {
      len = 4;
    } else if (c >= 0xE0) {
      len = 3;
    } else if (c >= 0xC0) {
      len = 2;
    }
    if (w + 1 > room) break;
    ++w;
    i = std::min(s.size(), i + len);
  }
  return i;
}

// Where continuation lines start: under the text after the first gap of two or more spaces (a
// label's value, an option's description), when that is in the first half of the line; else two
// past the line's own indentation.
std::size_t hangingIndent(std::string_view line, std::size_t width) {
  const std::size_t lead = line.find_first_not_of(' ');
  if (lead == std::string_view::npos) return 0;
  const std::size_t gap = line.find("  ", lead);
  if (gap != std::string_view::npos) {
    // The text after the gap: spaces and colour codes (a painted label's end) skipped.
    std::size_t text = gap;
    while (text < line.size() && (line[text] == ' ' || line[text] == '\x1B')) {
      if (line[text] == '\x1B') {
        text = fitting(line.substr(text), 0) + text;  // past the escape sequence
        if (text < line.size() && line[text] != ' ' && line[text] != '\x1B') break;
        continue;
      }
      ++text;
    }
    if (text < line.size()) {
      const std::size_t column = displayWidth(line.substr(0, text));
      if (column <= width / 2) return column;
    }
  }
  return std::min(lead + 2, width / 2);
}

}  // namespace

std::vector<std::string> wrapLine(std::string_view line, std::size_t width) {
  return wrapLine(line, width, width == 0 ? 0 : hangingIndent(line, width));
}

std::vector<std::string> wrapLine(std::string_view line, std::size_t width, std::size_t indent) {
  std::vector<std::string> out;
  if (width == 0 || displayWidth(line) <= width) {
    out.emplace_back(line);
    return out;
  }
  indent = std::min(indent, width / 2);
  std::string_view rest = line;
  std::size_t prefix = 0;  // columns of indentation the current output line starts with
  while (!rest.empty()) {
    const std::size_t room = width - prefix;
    if (displayWidth(rest) <= room) {
      out.push_back(std::string(prefix, ' ') + std::string(rest));
      break;
    }
    std::size_t cut = fitting(rest, room);
    // Break at the last space that fits, unless that leaves nothing on this line.
    const std::size_t space = rest.substr(0, cut + 1).find_last_of(' ');
    if (space != std::string_view::npos && space > 0 &&
        rest.substr(0, space).find_first_not_of(' ') != std::string_view::npos) {
      cut = space;
    }
    if (cut == 0) cut = fitting(rest, 1) == 0 ? rest.size() : fitting(rest, 1);
    std::string_view piece = rest.substr(0, cut);
    while (!piece.empty() && piece.back() == ' ') piece.remove_suffix(1);
    out.push_back(std::string(prefix, ' ') + std::string(piece));
    rest.remove_prefix(cut);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    prefix = indent;
  }
  return out;
}

namespace {

struct Wrapped {
  int fd;
  std::size_t width;
  std::string pending;  // the line begun, not yet ended
};

// False when the reader is gone (EPIPE and friends), with errno set.
bool writeAll(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

ssize_t wrappedWrite(void* cookie, const char* buf, size_t size) {
  auto* w = static_cast<Wrapped*>(cookie);
  w->pending.append(buf, size);
  std::string out;
  std::size_t start = 0;
  for (std::size_t nl; (nl = w->pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    for (const auto& l : wrapLine(std::string_view(w->pending).substr(start, nl - start), w->width)) out += l + "\n";
  }
  w->pending.erase(0, start);
  if (w->pending.find('\r') != std::string::npos) out += std::exchange(w->pending, {});  // a progress line
  // A reader that went away is an error of the stream, as with plain stdio (`tail | head` ends).
  return writeAll(w->fd, out) ? static_cast<ssize_t>(size) : -1;
}

int wrappedClose(void* cookie) {
  auto* w = static_cast<Wrapped*>(cookie);
  const bool ok = writeAll(w->fd, w->pending);
  delete w;
  return ok ? 0 : EOF;
}

FILE* wrapped(int fd, std::size_t width, int mode) {
  cookie_io_functions_t io{};
  io.write = wrappedWrite;
  io.close = wrappedClose;
  FILE* f = ::fopencookie(new Wrapped{fd, width, {}}, "w", io);
  if (f != nullptr) std::setvbuf(f, nullptr, mode, 0);
  return f;
}

}  // namespace

void wrapStandardStreams(std::size_t width) {
  std::fflush(stdout);
  std::fflush(stderr);
  // Buffered as stdio buffers: by line on a terminal, in blocks into a pipe.
  if (FILE* out = wrapped(STDOUT_FILENO, width, ::isatty(STDOUT_FILENO) == 1 ? _IOLBF : _IOFBF)) stdout = out;
  // A message to a person on a terminal wraps; piped (a script, a log) it stays one line.
  if (::isatty(STDERR_FILENO) == 1) {
    if (FILE* err = wrapped(STDERR_FILENO, width, _IONBF)) stderr = err;  // unbuffered, as stderr is
  }
  // exit() flushes the streams but does not close them: a last line without its newline is
  // written here.
  std::atexit([] {
    std::fflush(stdout);
    std::fflush(stderr);
    std::fclose(stdout);
    std::fclose(stderr);
  });
}

void writeUnwrapped(std::string_view text) {
  std::fflush(stdout);
  (void)writeAll(STDOUT_FILENO, text);  // a reader gone away: nothing more to do, as with stdio
}

}  // namespace citygate::cli
