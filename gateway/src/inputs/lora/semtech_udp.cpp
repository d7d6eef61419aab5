#include "inputs/lora/semtech_udp.hpp"

#include <cmath>

#include "inputs/lora/base64.hpp"

namespace citygate::lora {

std::optional<Reason> parseDatagram(std::span<const std::uint8_t> d, UdpPacket& out) {
  if (d.size() < 4) return Reason::DatagramTooShort;
  if (d[0] != 1 && d[0] != 2) return Reason::BadVersion;
  if (d[3] > 5) return Reason::UnknownPacketType;
  out = UdpPacket{};
  out.version = d[0];
  out.token = {d[1], d[2]};
  out.type = static_cast<PacketType>(d[3]);
  switch (out.type) {
    case PacketType::PushData:
    case PacketType::PullData:
    case PacketType::TxAck:
      break;
    default:
      return Reason::UnexpectedPacketType;
  }
  if (d.size() < 12) return Reason::DatagramTooShort;
  for (std::size_t i = 4; i < 12; ++i) out.gatewayEui = (out.gatewayEui << 8) | d[i];
  out.body = std::string_view(reinterpret_cast<const char*>(d.data()) + 12, d.size() - 12);
  if (out.type == PacketType::PullData && !out.body.empty()) return Reason::BadPullData;
  return std::nullopt;
}

std::array<std::uint8_t, 4> makeAck(const UdpPacket& r) {
  const auto type = r.type == PacketType::PullData ? PacketType::PullAck : PacketType::PushAck;
  return {r.version, r.token[0], r.token[1], static_cast<std::uint8_t>(type)};
}

namespace {

bool integral(json::Value v, double lo, double hi, double& out) {
  if (!v.isNumber()) return false;
  const double x = v.number();
  if (x != std::floor(x) || x < lo || x > hi) return false;
  out = x;
  return true;
}

bool number(json::Value v, double lo, double hi, double& out) {
  if (!v.isNumber()) return false;
  const double x = v.number();
  if (!(x >= lo && x <= hi)) return false;
  out = x;
  return true;
}

// "SF7BW125": SF5..SF12, a bandwidth in kHz of up to 4 digits.
bool validLoraDatr(std::string_view s) {
  if (s.size() < 7 || s.size() > 10 || s.substr(0, 2) != "SF") return false;
  std::size_t i = 2;
  unsigned sf = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 4) sf = sf * 10 + static_cast<unsigned>(s[i++] - '0');
  if (sf < 5 || sf > 12) return false;
  if (s.substr(i, 2) != "BW") return false;
  i += 2;
  const std::size_t digits = s.size() - i;
  if (digits < 2 || digits > 4) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

}  // namespace

std::optional<Reason> parseRxpk(json::Value o, RxPacket& out) {
  if (!o.isObject()) return Reason::BadRxpk;
  double v = 0.0;
  // stat first: a CRC-failed packet is dropped whatever else it carries.
  if (!integral(o.get("stat"), -1, 1, v)) return Reason::BadRxpk;
  out.stat = static_cast<int>(v);
  if (out.stat != 1) return Reason::CrcFailed;

  const json::Value modu = o.get("modu");
  if (!modu.isString()) return Reason::BadRxpk;
  if (modu.string() == "LORA") {
    out.lora = true;
    const json::Value datr = o.get("datr");
    if (!datr.isString() || !validLoraDatr(datr.string())) return Reason::BadRxpk;
    out.datr = datr.string();
  } else if (modu.string() == "FSK") {
    out.lora = false;
    if (!integral(o.get("datr"), 500, 300000, v)) return Reason::BadRxpk;
    out.fskRate = static_cast<std::uint32_t>(v);
    out.datr = {};
  } else {
    return Reason::BadRxpk;
  }
  if (!number(o.get("freq"), 1.0, 10000.0, out.freq)) return Reason::BadRxpk;

  // Signal: rssi/lsnr at the top level, or the best antenna of rsig[] (multi-antenna gateways).
  const json::Value rssi = o.get("rssi");
  const json::Value rsig = o.get("rsig");
  if (rssi.valid()) {
    if (!number(rssi, -250, 50, out.rssi)) return Reason::BadRxpk;
    out.lsnr = 0.0;
    const json::Value lsnr = o.get("lsnr");
    if (lsnr.valid()) {
      if (!number(lsnr, -50, 50, out.lsnr)) return Reason::BadRxpk;
    } else if (out.lora) {
      return Reason::BadRxpk;
    }
  } else if (rsig.isArray() && rsig.size() > 0) {
    bool first = true;
    for (json::Value ant : rsig) {
      double r = 0.0;
      double s = 0.0;
      if (!ant.isObject() || !number(ant.get("rssic"), -250, 50, r)) return Reason::BadRxpk;
      if (ant.get("lsnr").valid() && !number(ant.get("lsnr"), -50, 50, s)) return Reason::BadRxpk;
      if (first || r > out.rssi) {
        out.rssi = r;
        out.lsnr = s;
        first = false;
      }
    }
  } else {
    return Reason::BadRxpk;
  }

  const json::Value tmst = o.get("tmst");
  out.hasTmst = tmst.valid();
  if (out.hasTmst) {
    if (!integral(tmst, 0, 4294967295.0, v)) return Reason::BadRxpk;
    out.tmst = static_cast<std::uint32_t>(v);
  }
  out.chan = 0;
  out.rfch = 0;
  if (o.get("chan").valid()) {
    if (!integral(o.get("chan"), 0, 255, v)) return Reason::BadRxpk;
    out.chan = static_cast<std::uint32_t>(v);
  }
  if (o.get("rfch").valid()) {
    if (!integral(o.get("rfch"), 0, 255, v)) return Reason::BadRxpk;
    out.rfch = static_cast<std::uint32_t>(v);
  }

  double size = 0.0;
  if (!integral(o.get("size"), 0, 65535, size)) return Reason::BadRxpk;
  const json::Value data = o.get("data");
  if (!data.isString()) return Reason::BadRxpk;
  const auto expected = base64DecodedSize(data.string());
  if (!expected) return Reason::BadBase64;
  if (*expected > kMaxPhyPayload || size > static_cast<double>(kMaxPhyPayload)) return Reason::Oversize;
  const auto n = decodeBase64(data.string(), out.data);
  if (!n) return Reason::BadBase64;
  if (*n != static_cast<std::size_t>(size)) return Reason::SizeMismatch;
  out.size = *n;
  return std::nullopt;
}

namespace {

bool readStat(json::Value s, StatReport& st) {
  if (!s.isObject()) return false;
  st.present = true;
  double v = 0.0;
  auto count = [&](std::string_view key, std::uint64_t& out) {
    const json::Value x = s.get(key);
    if (!x.valid()) return true;
    if (!integral(x, 0, 9007199254740992.0, v)) return false;
    out = static_cast<std::uint64_t>(v);
    return true;
  };
  if (!count("rxnb", st.rxnb) || !count("rxok", st.rxok) || !count("rxfw", st.rxfw) || !count("dwnb", st.dwnb) ||
      !count("txnb", st.txnb)) {
    return false;
  }
  if (s.get("ackr").valid() && !number(s.get("ackr"), 0, 100, st.ackr)) return false;
  if (s.get("time").valid()) {
    if (!s.get("time").isString()) return false;
    st.time = s.get("time").string();
  }
  const json::Value lati = s.get("lati");
  const json::Value lon = s.get("long");
  if (lati.valid() || lon.valid()) {
    if (!number(lati, -90, 90, st.lati) || !number(lon, -180, 180, st.lon)) return false;
    if (s.get("alti").valid() && !number(s.get("alti"), -1000, 100000, st.alti)) return false;
    st.hasPosition = true;
  }
  if (s.get("temp").valid()) {
    if (!number(s.get("temp"), -100, 200, st.temp)) return false;
    st.hasTemp = true;
  }
  return true;
}

}  // namespace

std::optional<Reason> parsePushData(std::string_view body, json::Document& doc, PushVisitor& visitor,
                                    StatReport& stat) {
  stat = StatReport{};
  if (doc.parse(body) != json::Error::None) return Reason::BadJson;
  const json::Value root = doc.root();
  if (!root.isObject()) return Reason::BadPushData;
  const json::Value rxpk = root.get("rxpk");
  const json::Value st = root.get("stat");
  if (rxpk.valid() && !rxpk.isArray()) return Reason::BadPushData;
  if (rxpk.isArray()) {
    RxPacket rx;
    std::size_t n = 0;
    for (json::Value p : rxpk) {
      if (++n > kMaxRxpkPerDatagram) {
        visitor.onRxpkRejected(Reason::RxpkLimit);
        continue;
      }
      if (auto why = parseRxpk(p, rx)) {
        visitor.onRxpkRejected(*why);
      } else {
        visitor.onRxpk(rx);
      }
    }
  }
  if (st.valid() && !readStat(st, stat)) {
    stat.present = false;
    return Reason::BadStat;
  }
  return std::nullopt;
}

std::string formatEui(std::uint64_t eui) {
  static const char* kHex = "0123456789ABCDEF";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i) {
    s[static_cast<std::size_t>(i)] = kHex[eui & 0xF];
    eui >>= 4;
  }
  return s;
}

}  // namespace citygate::lora
