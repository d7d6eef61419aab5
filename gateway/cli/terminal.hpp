// The width citygatectl's human output fits, and the line wrapper that makes it fit: tables drop
// and wrap columns themselves (Table, format.hpp); every other line longer than the width is
// broken at spaces, continuing under the text after its first column gap (a label's value, an
// option's description), so nothing runs past a serial console's 80 columns. JSON is never
// wrapped.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace citygate::cli {

inline constexpr std::size_t kDefaultWidth = 80;
inline constexpr std::size_t kMinWidth = 40;

// COLUMNS when it is set to a number (shells export it; scripts and tests set it), else the
// terminal's width when `fd` is a terminal, else 80. Never below 40.
std::size_t outputWidth(int fd);

// `line` (without its newline) as lines of at most `width` display columns (UTF-8 and colour codes
// aside). A word longer than the room left is cut where it must be.
std::vector<std::string> wrapLine(std::string_view line, std::size_t width);
// The same with continuation lines indented by `indent` columns (0: a table cell).
std::vector<std::string> wrapLine(std::string_view line, std::size_t width, std::size_t indent);

// From here on, every line written to stdout, and to stderr when it is a terminal (piped, an
// error stays the one line a script reads), goes through wrapLine(width). A stderr line still
// open that holds '\r' (a progress line) is passed through as it is.
void wrapStandardStreams(std::size_t width);

// Writes `text` to standard output as it is, after what stdout holds: data that must survive a
// copy and paste (`config show`), not a screen.
void writeUnwrapped(std::string_view text);

}  // namespace citygate::cli
