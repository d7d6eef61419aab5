// citygatectl's pure parts: the probe table (every type x order), the human formatting, and the
// LoRa commissioning hints.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <ctime>

#include "cli/cli.hpp"
#include "cli/format.hpp"
#include "cli/probe.hpp"
#include "cli/terminal.hpp"
#include "inputs/modbus/decode.hpp"

using namespace citygate;
using namespace citygate::cli;

namespace {

const ProbeRow& row(const std::vector<ProbeRow>& rows, const std::string& type, std::uint32_t at) {
  for (const auto& r : rows) {
    if (r.type == type && r.at == at) return r;
  }
  FAIL("no row " << type << " @" << at);
  return rows.front();
}

std::vector<std::uint16_t> float32(float v, pb::WordOrder order) {
  std::uint32_t raw;
  std::memcpy(&raw, &v, 4);
  std::uint16_t out[2];
  modbus::encode32(raw, order, out);
  return {out[0], out[1], 0, 0};
}

}  // namespace

TEST_CASE("probe: 123456.0 stored CDAB shows 123456 in the CDAB column, and only there") {
  const auto regs = float32(123456.0F, pb::CDAB);
  CHECK(regs[0] == 0x2000);
  CHECK(regs[1] == 0x47F1);
  const Probe p = interpret(10, regs);
  const auto& f = row(p.rows32, "f32", 10);
  CHECK(f.cells[1].text == "123456");
  CHECK(f.cells[0].text != "123456");
  CHECK(f.cells[2].text != "123456");
  CHECK(f.cells[3].text != "123456");
  const std::string page = renderProbe(p, Style{});
  CHECK(page.find("123456") != std::string::npos);
  // every order of the same value lands in its own column
  for (int o = 0; o < 4; ++o) {
    const auto order = static_cast<pb::WordOrder>(o + 1);
    const Probe q = interpret(0, float32(-229.01F, order));
    CHECK(row(q.rows32, "f32", 0).cells[o].text == "-229.01");
  }
}

TEST_CASE("probe: integers exactly, 64-bit forms, offsets, text") {
  std::uint16_t w[4];
  modbus::encode64(0x0102030405060708ULL, pb::DCBA, w);
  Probe p = interpret(100, std::vector<std::uint16_t>(w, w + 4));
  CHECK(row(p.rows64, "u64", 100).cells[3].text == "72623859790382856");
  CHECK(p.rows32.size() == 9);  // u32 i32 f32 at 100, 101, 102
  CHECK(p.rows64.size() == 3);
  const Probe n = interpret(0, std::vector<std::uint16_t>{0xFFFF, 0xFFFE, 0x4347, 0x2D30});
  CHECK(row(n.rows32, "i32", 0).cells[0].text == "-2");
  CHECK(row(n.rows32, "u32", 0).cells[0].text == "4294967294");
  CHECK(n.asciiAB.substr(4) == "CG-0");
  CHECK(n.asciiBA.substr(4) == "GC0-");
  double d = 1.5;
  std::uint64_t raw;
  std::memcpy(&raw, &d, 8);
  modbus::encode64(raw, pb::CDAB, w);
  p = interpret(0, std::vector<std::uint16_t>(w, w + 4));
  CHECK(row(p.rows64, "f64", 0).cells[1].text == "1.5");
  const std::string json = probeJson(p, "");
  CHECK(json.find("\"CDAB\":1.5") != std::string::npos);
}

TEST_CASE("probe JSON keeps NaN as a string") {
  const Probe p = interpret(0, std::vector<std::uint16_t>{0x7FC0, 0x0000});
  const std::string json = probeJson(p, "");
  CHECK(json.find("\"ABCD\":\"NaN\"") != std::string::npos);
}

TEST_CASE("relative times, durations, sizes") {
  using namespace std::chrono;
  const auto now = system_clock::time_point(seconds(1'700'000'000));
  google::protobuf::Timestamp t;
  CHECK(relativeTime(t, now) == "never");
  t.set_seconds(1'700'000'000 - 12);
  CHECK(relativeTime(t, now) == "12 s ago");
  t.set_seconds(1'700'000'000 - 3 * 60 - 5);
  CHECK(relativeTime(t, now) == "3 min ago");
  t.set_seconds(1'700'000'000 - 2 * 3600 - 14 * 60);
  CHECK(relativeTime(t, now) == "2 h 14 min ago");
  t.set_seconds(1'700'000'000 + 20);
  CHECK(relativeTime(t, now) == "in 20 s");
  CHECK(bytes(812) == "812 B");
  CHECK(bytes(12595) == "12.3 KiB");
  CHECK(bytes(256ULL << 20) == "256 MiB");
  CHECK(micros(250) == "250 µs");
  CHECK(micros(18000) == "18 ms");
  CHECK(number(38.239999) == "38.24");
  CHECK(percent(1.04902) == "1.0 %");
  CHECK(percent(0) == "0 %");
  CHECK(percent(0.004) == "<0.1 %");
  CHECK(percent(100) == "100 %");
}

TEST_CASE("state changes as the platform's alarms show them: local HH:MM:SS beside the relative time") {
  using namespace std::chrono;
  const std::string before = std::getenv("TZ") != nullptr ? std::getenv("TZ") : "";
  ::setenv("TZ", "CET-1", 1);  // UTC+1, as a POSIX rule: no tzdata needed
  ::tzset();
  const auto now = system_clock::time_point(seconds(1'700'000'000));  // 2023-11-14 22:13:20 UTC
  google::protobuf::Timestamp t;
  CHECK(stateSince(t, now) == "never");
  CHECK(pointInTime(t, now) == "never");
  t.set_seconds(1'700'000'000 - 4 * 60 - 3);
  CHECK(stateSince(t, now) == "23:09:17, 4 min");
  CHECK(pointInTime(t, now) == "23:09:17 (4 min ago)");
  t.set_seconds(1'700'000'000 + 20);
  CHECK(pointInTime(t, now) == "23:13:40 (in 20 s)");
  t.set_seconds(1'700'000'000);
  t.set_nanos(400'000'000);  // just ahead
  CHECK(pointInTime(t, now) == "23:13:20 (now)");
  t.set_nanos(0);
  t.set_seconds(1'700'000'000 + 3600);  // tomorrow, local time
  CHECK(pointInTime(t, now) == "2023-11-15 00:13:20 (in 1 h)");
  t.set_seconds(1'700'000'000 - 86400 - 3600);
  CHECK(stateSince(t, now) == "2023-11-13 22:13:20, 1 d 1 h");
  if (before.empty()) {
    ::unsetenv("TZ");
  } else {
    ::setenv("TZ", before.c_str(), 1);
  }
  ::tzset();
}

TEST_CASE("tables align on what is visible, colour codes and UTF-8 aside") {
  Style colour{true};
  Table t({"DEVICE", "VALUE"});
  t.add({colour.paint("air", Colour::Green), "38 µg/m³"});
  t.add({"traffic-01", "x"});
  const std::string out = t.render(Style{});
  CHECK(out == "DEVICE      VALUE\n" + colour.paint("air", Colour::Green) + "         38 µg/m³\ntraffic-01  x\n");
  CHECK(displayWidth(colour.paint("µg/m³", Colour::Red)) == 5);
}

TEST_CASE("readings for people: units, lanes, generic values") {
  pb::Reading r;
  auto* a = r.mutable_air_quality_observed();
  a->mutable_no2()->set_value(38.24);
  a->mutable_no2()->set_unit_code("GQ");
  a->mutable_temperature()->set_value(21.5);
  a->mutable_temperature()->set_unit_code("CEL");
  CHECK(observationSummary(r) == "no2 38.24 µg/m³  temperature 21.5 °C");
  // Fractions (0..1, unit C62) are shown in per cent.
  a->mutable_relative_humidity()->set_value(0.655);
  a->mutable_relative_humidity()->set_unit_code("C62");
  CHECK(observationSummary(r) == "no2 38.24 µg/m³  temperature 21.5 °C  relative_humidity 65.5 %");
  a->clear_relative_humidity();

  pb::Reading t;
  auto* f = t.mutable_traffic_flow_observed();
  f->set_lane_id(2);
  f->mutable_intensity()->set_value(17);
  f->mutable_intensity()->set_unit_code("H87");
  f->set_congested(true);
  CHECK(observationSummary(t) == "lane 2 intensity 17 veh  congested yes");
  const auto rows = observationRows(t);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0][0] == "lane 2 intensity");

  pb::Reading g;
  (*g.mutable_generic()->mutable_values())["power"].set_value(5);
  (*g.mutable_generic()->mutable_text_values())["serial"] = "CG-0042";
  CHECK(observationSummary(g) == "power 5  serial \"CG-0042\"");

  pb::Reading p;
  p.mutable_parking_spot()->set_status(pb::OCCUPIED);
  p.mutable_parking_spot()->set_bay("A");
  CHECK(observationSummary(p) == "bay A status occupied");
}

// ---- LoRa commissioning hints (lora.cpp) ----

namespace {
std::size_t widest(const std::string& text) {
  std::size_t w = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    w = std::max(w, displayWidth(std::string_view(text).substr(start, end - start)));
    start = end + 1;
  }
  return w;
}
// The text with its line breaks and indentation folded into single spaces (wrapping aside).
std::string folded(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n') {
      out += text[i];
      continue;
    }
    while (i + 1 < text.size() && text[i + 1] == ' ') ++i;
    out += ' ';
  }
  return out;
}
}  // namespace

TEST_CASE("device ID of a LoRa device with only MIC failures: a hint with the count and last time, 80 columns") {
  const auto now = std::chrono::system_clock::now();
  pb::DeviceHealth h;
  (*h.mutable_frames_rejected())["mic_failed"] = 3;
  h.set_last_rejected_reason("mic_failed");
  h.mutable_last_rejected_at()->set_seconds(
      std::chrono::duration_cast<std::chrono::seconds>((now - std::chrono::seconds(125)).time_since_epoch()).count());
  const std::string text = loraDeviceHints(Style{}, h, now);
  INFO(text);
  CHECK(widest(text) <= 80);
  const std::string out = folded(text);
  CHECK(out.find("frames from this DevAddr fail the MIC check: the NwkSKey in the config does not") !=
        std::string::npos);
  CHECK(out.find("3 frames (mic_failed), the last at ") != std::string::npos);
  CHECK(out.find(", 2 min ago") != std::string::npos);
  CHECK(out.rfind("Hint         ", 0) == 0);

  // The resume margin: not a replay; says from which counter frames are accepted again.
  pb::DeviceHealth m;
  (*m.mutable_frames_rejected())["fcnt_below_resume_margin"] = 2;
  (*m.mutable_frames_rejected())["replay"] = 1;
  m.set_f_cnt_floor(36);
  const std::string marginText = loraDeviceHints(Style{}, m, now);
  INFO(marginText);
  CHECK(widest(marginText) <= 80);
  const std::string margin = folded(marginText);
  CHECK(margin.find("frame counter below the resume margin after an unclean stop: expected, the node") !=
        std::string::npos);
  CHECK(margin.find("FCnt 37") != std::string::npos);
  CHECK(margin.find("2 frames (fcnt_below_resume_margin)") != std::string::npos);
  CHECK(margin.find("1 frame (replay)") != std::string::npos);

  // Once the device delivers, past rejections need no hint; nothing rejected: nothing to say.
  h.set_readings(1);
  CHECK(loraDeviceHints(Style{}, h, now).empty());
  CHECK(loraDeviceHints(Style{}, pb::DeviceHealth{}, now).empty());
}

TEST_CASE("lora heard for people: an empty table says what it means, a full one fits 80 columns") {
  // Noon today, local: the times below are today's (a time of another day also shows its date).
  std::time_t t = std::time(nullptr);
  std::tm noon{};
  ::localtime_r(&t, &noon);
  noon.tm_hour = 12;
  noon.tm_min = 0;
  noon.tm_sec = 0;
  const auto now = std::chrono::system_clock::from_time_t(std::mktime(&noon));
  pb::LoraHeardResponse l;
  CHECK(loraHeardText(l, now, Style{}).find("LoRa is not configured") == 0);
  l.set_bind("127.0.0.1:1700");
  l.set_capacity(64);
  const std::string empty = loraHeardText(l, now, Style{});
  CHECK(empty.find("No unconfigured DevAddr heard since the LoRa source started.") == 0);
  CHECK(folded(empty).find("no lora device of the configuration has") != std::string::npos);
  CHECK(widest(empty) <= 80);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  for (int i = 0; i < 3; ++i) {
    auto& e = *l.add_heard();
    e.set_dev_addr(i == 0 ? "26011FAB" : "0100000" + std::to_string(i));
    e.set_frames(123456);
    e.set_last_rssi(-112.5);
    e.set_last_snr(-12.25);
    e.set_data_rate("SF12BW125");
    e.mutable_last_heard_at()->set_seconds(secs - 8000);  // "2 h 13 min ago": the widest relative time
  }
  l.set_evicted(17);
  l.set_unknown_frames(370368);
  const std::string full = loraHeardText(l, now, Style{});
  CHECK(full.find("DEVADDR") != std::string::npos);
  CHECK(full.find("26011FAB  123456  -112.5 dBm  -12.25 dB  SF12BW125  ") != std::string::npos);
  CHECK(folded(full).find("17 other DevAddr(s) dropped: the table keeps the 64 heard last.") != std::string::npos);
  CHECK(widest(full) <= 80);
}

TEST_CASE("long lines wrap at spaces under their first column gap, within the width") {
  const std::string option =
      "  --device ID   only this device's readings, from the moment the request reaches the daemon";
  const auto lines = wrapLine(option, 60);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "  --device ID   only this device's readings, from the moment");
  CHECK(lines[1] == "                the request reaches the daemon");
  for (const auto& l : lines) CHECK(displayWidth(l) <= 60);
  // No gap: continuation two past the line's indentation; a word longer than the room is cut.
  const auto plain = wrapLine("usage: citygatectl modbus read BUS UNIT TABLE ADDR COUNT [--timeout MS]", 40);
  REQUIRE(plain.size() == 2);
  CHECK(plain[0] == "usage: citygatectl modbus read BUS UNIT");
  CHECK(plain[1] == "  TABLE ADDR COUNT [--timeout MS]");
  const auto word = wrapLine(std::string(100, 'x'), 40);
  REQUIRE(word.size() == 3);
  CHECK(word[0].size() == 40);
  for (const auto& l : word) CHECK(displayWidth(l) <= 40);
  // UTF-8 counts by code point, colour codes not at all; a short line is left alone.
  const std::string units = "no2 38.24 µg/m³  o3 40.1 µg/m³  pm25 12.5 µg/m³  pm10 20.1 µg/m³";
  for (const auto& l : wrapLine(units, 30)) CHECK(displayWidth(l) <= 30);
  const std::string painted = Style{true}.paint("DOWN", Colour::Red) + " since 22:33:39";
  CHECK(wrapLine(painted, 20) == std::vector<std::string>{painted});
}

TEST_CASE("a table wider than the width drops columns in the stated order, then wraps its last") {
  Table t({"DEVICE", "KIND", "PROFILE", "STATE", "LATEST VALUES"});
  t.dropWhenNarrow({"KIND", "PROFILE", "DEVICE"});
  t.add({"air-pilatusplatz", "modbus", "vaisala-aqt530", "OK",
         "no2 38.24 µg/m³  o3 40.1 µg/m³  pm25 12.5 µg/m³  pm10 20.1 µg/m³  temperature 21.5 °C"});
  Style wide;
  const std::string all = t.render(wide);
  CHECK(all.find("vaisala-aqt530") != std::string::npos);
  Style narrow;
  narrow.width = 60;
  const std::string fitted = t.render(narrow);
  CHECK(fitted.find("modbus") == std::string::npos);            // dropped first
  CHECK(fitted.find("vaisala-aqt530") == std::string::npos);    // then this
  CHECK(fitted.find("air-pilatusplatz") != std::string::npos);  // the first column stays
  std::size_t lines = 0;
  for (std::size_t at = 0, nl; (nl = fitted.find('\n', at)) != std::string::npos; at = nl + 1, ++lines) {
    CHECK(displayWidth(std::string_view(fitted).substr(at, nl - at)) <= 60);
  }
  CHECK(lines > 2);                                         // the values wrapped under their column
  const std::size_t column = fitted.find("LATEST VALUES");  // where the last column starts
  CHECK(fitted.find("\n" + std::string(column, ' ') + "pm25") != std::string::npos);
}
