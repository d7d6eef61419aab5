// citygatectl's output: aligned tables, colour (only on a terminal, and never with NO_COLOR),
// relative times ("12 s ago"), sizes, readings decoded for people, and protobuf's JSON mapping
// for scripts. Pure apart from Style::detect() (isatty, NO_COLOR, TERM).
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "citygate/v1/reading.pb.h"
#include "citygate/v1/status.pb.h"
#include "core/json.hpp"

namespace citygate::cli {

namespace pb = citygate::v1;

enum class Colour : std::uint8_t { None, Green, Yellow, Red, Bold, Dim, Cyan };

struct Style {
  bool colour = false;
  std::size_t width = 0;  // the columns output must fit (cli/terminal.hpp); 0: no limit
  // Colour when `fd` is a terminal, NO_COLOR is unset or empty, TERM is not "dumb" and `noColour`
  // was not asked for.
  static Style detect(int fd, bool noColour);
  std::string paint(std::string_view text, Colour c) const;
};

// A table with a header row; columns are padded to the widest cell (escape codes do not count).
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  // The columns (by header) to leave out, in this order, while the table is wider than the
  // style's width; the first column and the last are always kept.
  Table& dropWhenNarrow(std::vector<std::string> columns) {
    dropOrder_ = std::move(columns);
    return *this;
  }
  // Rows wider than the width get their last cell cut ("…") instead of wrapped: one line a row,
  // for a screen that lists many (the whole value is one command away).
  Table& cutLast(bool cut = true) {
    cutLast_ = cut;
    return *this;
  }
  // Header in bold when the style has colour. The last column is not padded; when a row is still
  // wider than the style's width, its last cell wraps under itself.
  std::string render(const Style& style) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<std::string> dropOrder_;
  bool cutLast_ = false;
};

// Display width: UTF-8 code points, ANSI escape sequences skipped.
std::size_t displayWidth(std::string_view s);
// `s` cut to `width` display columns, the last one "…", when it is wider (whole UTF-8 sequences).
std::string truncate(std::string_view s, std::size_t width);

// A timestamp that was set (protobuf's zero means "never").
inline bool isSet(const google::protobuf::Timestamp& t) {
  return t.seconds() != 0 || t.nanos() != 0;
}

// "12 s ago", "3 min ago", "2 h ago", "4 d ago", "in 20 s"; "never" for an unset time.
std::string relativeTime(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now);
// "45 s", "12 min", "2 h 14 min", "3 d 4 h".
std::string duration(std::chrono::seconds d);
// "812 B", "12.3 KiB", "256 MiB".
std::string bytes(std::uint64_t n);
// Local wall-clock time of day with milliseconds: "14:03:07.218".
std::string clockTime(const google::protobuf::Timestamp& t);
// A state change's time as the platform's alarms show it: local "22:33:39" (with the date,
// "2026-11-30 22:33:39", when it is not today's) beside the relative time. stateSince: "22:33:39,
// 4 min" (for "DOWN since ..."); pointInTime: "22:33:39 (4 min ago)", "22:40:00 (in 20 s)". "never"
// for an unset time. On a terminal and piped alike.
// Local "22:33:39" (with the date when it is not today's), alone.
std::string localClock(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now);
std::string stateSince(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now);
std::string pointInTime(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now);
// "22:33:39, 4 min ago" (the date too when not today's); "never" for an unset time.
std::string timeAgo(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now);
// A number for people: up to 6 significant digits, no trailing zeros ("38.24", "123456", "1e-07").
std::string number(double v);
// "1.0 %", "37.5 %", "<0.1 %", "0 %", "100 %" from a percentage.
std::string percent(double v);
// "1.2 ms", "250 µs", "3 s" from microseconds.
std::string micros(std::uint64_t us);

// UN/CEFACT Rec. 20 code -> symbol ("GQ" -> "µg/m³"); the code itself when unknown.
std::string unitSymbol(std::string_view code);

// The observation of a reading as "no2 38.24 µg/m³  o3 40.1 µg/m³ ..." (lane, bay and status
// included; ids, times and locations left out).
std::string observationSummary(const pb::Reading& r);
// One row per value: {field, value, unit, quality}, "lane 2 intensity" for lanes, "bay A status".
std::vector<std::vector<std::string>> observationRows(const pb::Reading& r);

std::string qualityName(pb::Quality q);
std::string stateName(pb::DeviceState s);
Colour stateColour(pb::DeviceState s);

// Protobuf's JSON mapping with the proto field names and every field printed (zeros included), so
// scripts see a stable shape. `pretty`: indented; otherwise one line (streams: one object a line).
std::string toJson(const google::protobuf::Message& m, bool pretty);

using core::jsonString;  // core/json.hpp

}  // namespace citygate::cli
