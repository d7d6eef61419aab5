// citygatectl: LoRa commissioning aids, pure text (the commands are in commands.cpp): the table of
// `lora heard` (the DevAddrs heard that no configured device has) and the hints `device ID`
// prints for a LoRa device whose frames are all rejected (a wrong key, the resume margin after a
// power cut, ...), so that a count is never left unexplained. Lines of at most 80 columns.
#include <algorithm>
#include <cstdio>
#include <ctime>

#include "cli/cli.hpp"
#include "cli/terminal.hpp"

namespace citygate::cli {

namespace {

using Clock = std::chrono::system_clock;

// The columns the output must fit: the style's (the terminal's), 80 when it sets none.
std::size_t widthOf(const Style& o) {
  return o.width != 0 ? o.width : kDefaultWidth;
}

// `first` then `text`, wrapped at `width` columns with the next lines under `indent` (spaces).
std::string wrapped(const std::string& first, const std::string& indent, const std::string& text, std::size_t width) {
  std::string out;
  for (const auto& l : wrapLine(first + text, width, displayWidth(indent))) out += l + "\n";
  return out;
}

std::string frames(std::uint64_t n) {
  return std::to_string(n) + (n == 1 ? " frame" : " frames");
}

// What a rejection reason means for the technician at the device, or empty for the reasons that
// need no explanation here (counted only).
std::string explanation(const std::string& reason, const pb::DeviceHealth& h) {
  if (reason == "mic_failed") {
    return "frames from this DevAddr fail the MIC check: the NwkSKey in the config does not match the "
           "device (or NwkSKey and AppSKey are swapped)";
  }
  if (reason == "fcnt_below_resume_margin") {
    return "frame counter below the resume margin after an unclean stop: expected, the node catches up "
           "(frames are accepted again from FCnt " +
           std::to_string(static_cast<std::uint64_t>(h.f_cnt_floor()) + 1) + ")";
  }
  if (reason == "replay") {
    return "frames repeat a counter already accepted: a replayed frame, or a node that restarted its "
           "counter (ABP: see relax_fcnt)";
  }
  if (reason == "retransmission") {
    return "the node sends its last frame again (a confirmed uplink that missed its ACK; without "
           "lora.downlink the gateway sends none)";
  }
  if (reason == "join_mic_failed") {
    return "join-requests fail the MIC check: the AppKey in the config does not match the device";
  }
  if (reason == "join_eui_mismatch") {
    return "the device joins with another JoinEUI than the config's join_eui";
  }
  if (reason == "join_dev_nonce_replay") {
    return "a join-request repeats a DevNonce already used: a replayed join-request, or a node that "
           "lost its DevNonce counter";
  }
  if (reason == "join_no_dev_addr") {
    return "every DevAddr of lora.join's range is taken: widen the range";
  }
  if (reason == "fcnt_gap") {
    return "the frame counter jumped more than max_fcnt_gap ahead of the last accepted one";
  }
  if (reason == "unknown_port") {
    return "authentic frames on an FPort the codec does not decode: check the device's codec";
  }
  if (reason == "codec_error") {
    return "authentic frames whose payload does not decode: the AppSKey does not match the device, "
           "or the codec is the wrong one";
  }
  if (reason == "crypto_error") return "OpenSSL failed on these frames (see the lora log)";
  return {};
}

}  // namespace

std::string loraDeviceHints(const Style& o, const pb::DeviceHealth& h, Clock::time_point now) {
  // Only while the device has delivered nothing: then every rejection is the reason why.
  if (h.readings() > 0) return {};
  std::vector<std::pair<std::string, std::uint64_t>> reasons(h.frames_rejected().begin(), h.frames_rejected().end());
  std::sort(reasons.begin(), reasons.end());
  std::string out;
  const std::string label = o.paint("Hint       ", Colour::Yellow) + "  ";
  const std::string indent(13, ' ');
  for (const auto& [reason, count] : reasons) {
    if (count == 0) continue;
    const std::string why = explanation(reason, h);
    if (why.empty()) continue;
    out += wrapped(label, indent, why, widthOf(o));
    std::string tally = frames(count) + " (" + reason + ")";
    if (reason == h.last_rejected_reason() && h.has_last_rejected_at()) {
      tally += ", the last at " + timeAgo(h.last_rejected_at(), now);
    }
    out += wrapped(indent, indent, tally, widthOf(o));
  }
  return out;
}

std::string loraHeardText(const pb::LoraHeardResponse& l, Clock::time_point now, const Style& o) {
  if (l.bind().empty()) return "LoRa is not configured (no lora { } block in the running configuration)\n";
  std::string out;
  if (l.heard_size() == 0) {
    out += "No unconfigured DevAddr heard since the LoRa source started.\n";
    out += wrapped("", "",
                   "A DevAddr is listed here when the packet forwarder (" + l.bind() +
                       "/udp) passes a data uplink whose DevAddr no lora device of the configuration has. "
                       "Nothing listed: every frame heard was from a configured device, or no frame arrived "
                       "(see `citygatectl lora devices` for the concentrators).",
                   widthOf(o));
    return out;
  }
  out += wrapped("", "",
                 "Heard, not configured: " + std::to_string(l.heard_size()) + " DevAddr(s), " +
                     std::to_string(l.unknown_frames()) + " frame(s) since LoRa started.",
                 widthOf(o));
  out += "\n";
  Table t({"DEVADDR", "FRAMES", "RSSI", "SNR", "DR", "LAST HEARD"});
  t.dropWhenNarrow({"DR", "FRAMES", "SNR"});
  for (const auto& e : l.heard()) {
    t.add({e.dev_addr(), std::to_string(e.frames()), number(e.last_rssi()) + " dBm", number(e.last_snr()) + " dB",
           e.data_rate().empty() ? "-" : e.data_rate(), timeAgo(e.last_heard_at(), now)});
  }
  Style fit = o;
  fit.width = widthOf(o);
  out += t.render(fit);
  if (l.evicted() > 0) {
    out += wrapped("", "",
                   std::to_string(l.evicted()) + " other DevAddr(s) dropped: the table keeps the " +
                       std::to_string(l.capacity()) + " heard last.",
                   widthOf(o));
  }
  out += "\n";
  out += wrapped("", "",
                 "To take one in: add a lora device with this dev_addr and its session keys, then "
                 "`citygatectl config apply`. A DevAddr you do not know may be a neighbour's node.",
                 widthOf(o));
  return out;
}

}  // namespace citygate::cli
