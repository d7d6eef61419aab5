#include "cli/format.hpp"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>

#include "cli/terminal.hpp"

namespace citygate::cli {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

Style Style::detect(int fd, bool noColour) {
  Style s;
  const char* nc = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  s.colour = !noColour && ::isatty(fd) == 1 && (nc == nullptr || *nc == '\0') &&
             !(term != nullptr && std::string_view(term) == "dumb");
  return s;
}

std::string Style::paint(std::string_view text, Colour c) const {
  if (!colour || c == Colour::None || text.empty()) return std::string(text);
  const char* code = "";
  switch (c) {
    case Colour::Green:
      code = "\033[32m";
      break;
    case Colour::Yellow:
      code = "\033[33m";
      break;
    case Colour::Red:
      code = "\033[31m";
      break;
    case Colour::Bold:
      code = "\033[1m";
      break;
    case Colour::Dim:
      code = "\033[2m";
      break;
    case Colour::Cyan:
      code = "\033[36m";
      break;
    case Colour::None:
      break;
  }
  return std::string(code) + std::string(text) + "\033[0m";
}

std::size_t displayWidth(std::string_view s) {
  std::size_t w = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0x1B) {  // ESC [ ... final byte
      ++i;
      if (i < s.size() && s[i] == '[') {
        ++i;
        while (i < s.size() && !(s[i] >= 0x40 && s[i] <= 0x7E)) ++i;
      }
      continue;
    }
    if ((c & 0xC0) != 0x80) ++w;  // count lead bytes only
  }
  return w;
}

std::string truncate(std::string_view s, std::size_t width) {
  if (displayWidth(s) <= width) return std::string(s);
  std::string out;
  std::size_t w = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool lead = (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
    if (lead && w + 1 >= width) break;
    out.push_back(s[i]);
    if (lead) ++w;
  }
  return out + "…";
}

std::string Table::render(const Style& style) const {
  const std::size_t n = header_.size();
  std::vector<std::size_t> widths(n, 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < n; ++i) widths[i] = std::max(widths[i], displayWidth(row[i]));
  };
  measure(header_);
  for (const auto& r : rows_) measure(r);
  std::vector<std::size_t> shown(n);
  for (std::size_t i = 0; i < n; ++i) shown[i] = i;
  auto total = [&] {
    std::size_t w = 0;
    for (auto i : shown) w += widths[i] + 2;
    return shown.empty() ? 0 : w - 2;
  };
  for (const auto& name : dropOrder_) {
    if (style.width == 0 || total() <= style.width) break;
    const auto it = std::find(header_.begin(), header_.end(), name);
    const auto at = std::find(shown.begin(), shown.end(), static_cast<std::size_t>(it - header_.begin()));
    if (it != header_.end() && at != shown.begin() && at != shown.end() && at + 1 != shown.end()) shown.erase(at);
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& row, bool head) {
    std::string l;
    std::size_t column = 0;  // where the last cell starts
    for (std::size_t k = 0; k < shown.size(); ++k) {
      const std::size_t i = shown[k];
      const std::string cell = i < row.size() ? row[i] : "";
      if (k + 1 == shown.size()) {
        column = displayWidth(l);
        const std::size_t room = style.width > column ? style.width - column : 0;
        if (cutLast_ && style.width != 0 && displayWidth(cell) > room && room >= 8) {
          l += truncate(cell, room);
          break;
        }
        if (style.width != 0 && displayWidth(cell) > room && room >= 16) {
          const auto parts = wrapLine(cell, room, 0);
          for (std::size_t p = 0; p < parts.size(); ++p) {
            l += (p ? "\n" + std::string(column, ' ') : std::string()) +
                 (head ? style.paint(parts[p], Colour::Bold) : parts[p]);
          }
          break;
        }
      }
      l += head ? style.paint(cell, Colour::Bold) : cell;
      if (k + 1 != shown.size()) l += std::string(widths[i] - displayWidth(cell) + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header_, true);
  for (const auto& r : rows_) line(r, false);
  return out;
}

std::string duration(std::chrono::seconds d) {
  const long long s = d.count();
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return std::to_string(s / 60) + " min";
  if (s < 86400) {
    const long long m = (s % 3600) / 60;
    return std::to_string(s / 3600) + " h" + (m ? " " + std::to_string(m) + " min" : "");
  }
  const long long h = (s % 86400) / 3600;
  return std::to_string(s / 86400) + " d" + (h ? " " + std::to_string(h) + " h" : "");
}

std::string relativeTime(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now) {
  if (!isSet(t)) return "never";
  const auto at =
      std::chrono::system_clock::time_point(std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos()));
  const auto diff = std::chrono::duration_cast<std::chrono::seconds>(now - at);
  if (diff.count() < 0) return "in " + duration(-diff);
  return duration(diff) + " ago";
}

std::string bytes(std::uint64_t n) {
  if (n < 1024) return std::to_string(n) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

std::string clockTime(const google::protobuf::Timestamp& t) {
  const std::time_t secs = static_cast<std::time_t>(t.seconds());
  std::tm tm{};
  ::localtime_r(&secs, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, t.nanos() / 1000000);
  return buf;
}

std::string localClock(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now) {
  const auto secs = static_cast<std::time_t>(t.seconds());
  const std::time_t today = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  std::tm tmNow{};
  ::localtime_r(&secs, &tm);
  ::localtime_r(&today, &tmNow);
  char buf[40];
  if (tm.tm_year == tmNow.tm_year && tm.tm_yday == tmNow.tm_yday) {
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}

std::string stateSince(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now) {
  if (!isSet(t)) return "never";
  const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(t.seconds()));
  const auto diff = std::chrono::duration_cast<std::chrono::seconds>(now - at);
  return localClock(t, now) + ", " + duration(diff.count() < 0 ? std::chrono::seconds(0) : diff);
}

std::string pointInTime(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now) {
  if (!isSet(t)) return "never";
  const auto at =
      std::chrono::system_clock::time_point(std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos()));
  // Less than a second ahead: "now" (relativeTime would call it "0 s ago").
  if (at > now && at - now < std::chrono::seconds(1)) return localClock(t, now) + " (now)";
  return localClock(t, now) + " (" + relativeTime(t, now) + ")";
}

std::string timeAgo(const google::protobuf::Timestamp& t, std::chrono::system_clock::time_point now) {
  if (!isSet(t)) return "never";
  return localClock(t, now) + ", " + relativeTime(t, now);
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string percent(double v) {
  if (std::isnan(v)) return "- %";
  char buf[32];
  if (v > 0 && v < 0.1) return "<0.1 %";
  std::snprintf(buf, sizeof buf, v >= 99.95 || v == 0 ? "%.0f %%" : "%.1f %%", v);
  return buf;
}

std::string micros(std::uint64_t us) {
  char buf[32];
  if (us < 1000) return std::to_string(us) + " µs";
  if (us < 10000) {
    std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(us) / 1000.0);
    return buf;
  }
  if (us < 1000000) return std::to_string(us / 1000) + " ms";
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(us) / 1e6);
  return buf;
}

std::string unitSymbol(std::string_view code) {
  static const std::map<std::string_view, std::string_view> kSymbols{
      {"GQ", "µg/m³"}, {"GP", "mg/m³"}, {"CEL", "°C"},  {"C62", ""},    {"A97", "hPa"}, {"KMH", "km/h"},
      {"MTR", "m"},    {"SEC", "s"},    {"MTS", "m/s"}, {"DD", "°"},    {"59", "ppm"},  {"61", "ppb"},
      {"H87", "veh"},  {"P1", "%"},     {"VLT", "V"},   {"E01", "N/m²"}};
  auto it = kSymbols.find(code);
  return std::string(it == kSymbols.end() ? code : it->second);
}

std::string qualityName(pb::Quality q) {
  switch (q) {
    case pb::GOOD:
      return "GOOD";
    case pb::UNCERTAIN:
      return "UNCERTAIN";
    case pb::BAD:
      return "BAD";
    default:
      return "-";
  }
}

std::string stateName(pb::DeviceState s) {
  switch (s) {
    case pb::OK:
      return "OK";
    case pb::DEGRADED:
      return "DEGRADED";
    case pb::DOWN:
      return "DOWN";
    default:
      return "-";
  }
}

Colour stateColour(pb::DeviceState s) {
  switch (s) {
    case pb::OK:
      return Colour::Green;
    case pb::DEGRADED:
      return Colour::Yellow;
    case pb::DOWN:
      return Colour::Red;
    default:
      return Colour::None;
  }
}

namespace {

struct Value {
  std::string field;
  std::string value;
  std::string unit;
  std::string quality;
};

bool isMeasurement(const FieldDescriptor* f) {
  return f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && f->message_type() == pb::Measurement::descriptor();
}

// Fractions the schema carries as 0..1 (FIWARE's relativeHumidity and occupancy, unit C62) are
// shown to people in per cent, as a hygrometer or a loop detector shows them; --json keeps 0..1.
bool isFraction(const std::string& name, std::string_view unitCode) {
  return unitCode == "C62" && (name == "relative_humidity" || name == "occupancy");
}

void measurement(const pb::Measurement& m, const std::string& name, std::vector<Value>& out) {
  const bool fraction = isFraction(name, m.unit_code());
  out.push_back(Value{name, number(fraction ? m.value() * 100.0 : m.value()),
                      fraction ? "%" : unitSymbol(m.unit_code()),
                      m.quality() == pb::QUALITY_UNSPECIFIED ? "" : qualityName(m.quality())});
}

// The reading's values in schema order; `prefix` is "lane 2 " / "bay A " for multi-part devices.
std::vector<Value> values(const pb::Reading& r, std::string& prefix) {
  std::vector<Value> out;
  prefix.clear();
  const Message* obs = nullptr;
  switch (r.observation_case()) {
    case pb::Reading::kAirQualityObserved:
      obs = &r.air_quality_observed();
      break;
    case pb::Reading::kTrafficFlowObserved: {
      const auto& t = r.traffic_flow_observed();
      prefix = "lane " + std::to_string(t.lane_id()) + " ";
      if (!t.vehicle_type().empty()) prefix += t.vehicle_type() + " ";
      obs = &t;
      break;
    }
    case pb::Reading::kParkingSpot: {
      const auto& p = r.parking_spot();
      if (!p.bay().empty()) prefix = "bay " + p.bay() + " ";
      obs = &p;
      break;
    }
    case pb::Reading::kGeneric: {
      const auto& g = r.generic();
      std::map<std::string, const pb::Measurement*> sorted;
      for (const auto& [k, v] : g.values()) sorted.emplace(k, &v);
      for (const auto& [k, v] : sorted) measurement(*v, k, out);
      std::map<std::string, std::string> texts(g.text_values().begin(), g.text_values().end());
      for (const auto& [k, v] : texts) out.push_back(Value{k, "\"" + v + "\"", "", ""});
      return out;
    }
    case pb::Reading::OBSERVATION_NOT_SET:
      return out;
  }
  const auto* d = obs->GetDescriptor();
  const auto* refl = obs->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated() || !refl->HasField(*obs, f)) continue;
    const std::string& name = f->name();
    if (name == "id" || name == "lane_id" || name == "bay" || name == "vehicle_type") continue;
    if (isMeasurement(f)) {
      measurement(static_cast<const pb::Measurement&>(refl->GetMessage(*obs, f)), name, out);
      continue;
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_ENUM: {
        std::string v = refl->GetEnum(*obs, f)->name();
        std::transform(v.begin(), v.end(), v.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        out.push_back(Value{name, v, "", ""});
        break;
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        out.push_back(Value{name, refl->GetBool(*obs, f) ? "yes" : "no", "", ""});
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        out.push_back(Value{name, refl->GetString(*obs, f), "", ""});
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        out.push_back(Value{name, std::to_string(refl->GetUInt32(*obs, f)), "", ""});
        break;
      default:
        break;  // timestamps and locations: not values
    }
  }
  return out;
}

}  // namespace

std::string observationSummary(const pb::Reading& r) {
  std::string prefix;
  const auto vs = values(r, prefix);
  std::string out = prefix;
  bool first = true;
  for (const auto& v : vs) {
    if (!first) out += "  ";
    first = false;
    out += v.field + " " + v.value;
    if (!v.unit.empty()) out += " " + v.unit;
  }
  return out;
}

std::vector<std::vector<std::string>> observationRows(const pb::Reading& r) {
  std::string prefix;
  std::vector<std::vector<std::string>> rows;
  for (auto& v : values(r, prefix)) {
    rows.push_back({prefix + v.field, v.value, v.unit, v.quality.empty() ? qualityName(r.quality()) : v.quality});
  }
  return rows;
}

std::string toJson(const Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(m, &out, o).ok()) return "{}";
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace citygate::cli
