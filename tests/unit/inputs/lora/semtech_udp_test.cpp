// Semtech UDP packet-forwarder parsing (protocols.md 3.1) and strict base64.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "inputs/lora/base64.hpp"
#include "inputs/lora/semtech_udp.hpp"
#include "lora_test_util.hpp"

using namespace citygate::lora;
using lora_test::hex;

namespace {

std::vector<std::uint8_t> datagram(std::vector<std::uint8_t> head, std::string_view json) {
  head.insert(head.end(), json.begin(), json.end());
  return head;
}

struct Collect final : PushVisitor {
  std::vector<RxPacket> rx;
  std::vector<Reason> rejected;
  void onRxpk(const RxPacket& p) override { rx.push_back(p); }
  void onRxpkRejected(Reason r) override { rejected.push_back(r); }
};

std::optional<Reason> oneRxpk(const std::string& fields, RxPacket& out) {
  json::Document d;
  REQUIRE(d.parse("{" + fields + "}") == json::Error::None);
  return parseRxpk(d.root(), out);
}

const std::string kGood =
    R"("tmst":3512348611,"chan":2,"rfch":0,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125",)"
    R"("codr":"4/5","rssi":-35,"lsnr":5.1,"size":17,"data":"QPF9vkkAAgABlUN4disR/w0=")";

}  // namespace

TEST_CASE("S1: ChirpStack's header vectors (PULL_DATA, PUSH_DATA with empty JSON)") {
  UdpPacket p;
  const std::vector<std::uint8_t> pull{2, 123, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
  REQUIRE_FALSE(parseDatagram(pull, p));
  CHECK(p.version == 2);
  CHECK(p.type == PacketType::PullData);
  CHECK(p.token[0] == 123);
  CHECK(p.token[1] == 0);
  CHECK(formatEui(p.gatewayEui) == "0102030405060708");
  const auto ack = makeAck(p);
  CHECK(ack == std::array<std::uint8_t, 4>{2, 123, 0, 4});

  const std::vector<std::uint8_t> push{2, 123, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, '{', '}'};
  REQUIRE_FALSE(parseDatagram(push, p));
  CHECK(p.type == PacketType::PushData);
  CHECK(p.body == "{}");
  CHECK(makeAck(p) == std::array<std::uint8_t, 4>{2, 123, 0, 1});
  json::Document d;
  Collect c;
  StatReport st;
  CHECK_FALSE(parsePushData(p.body, d, c, st));
  CHECK(c.rx.empty());
  CHECK_FALSE(st.present);
}

TEST_CASE("D: the derived PUSH_DATA carrying vector L1, and its PUSH_ACK 02 12 34 01") {
  const auto d = datagram(hex("02123400aa555a0000000000"), R"({"rxpk":[{)" + kGood + "}]}");
  UdpPacket p;
  REQUIRE_FALSE(parseDatagram(d, p));
  CHECK(formatEui(p.gatewayEui) == "AA555A0000000000");
  CHECK(makeAck(p) == std::array<std::uint8_t, 4>{0x02, 0x12, 0x34, 0x01});
  json::Document doc;
  Collect c;
  StatReport st;
  REQUIRE_FALSE(parsePushData(p.body, doc, c, st));
  REQUIRE(c.rx.size() == 1);
  CHECK(c.rejected.empty());
  const RxPacket& rx = c.rx[0];
  CHECK(lora_test::toHex(rx.phy()) == "40f17dbe4900020001954378762b11ff0d");
  CHECK(rx.freq == doctest::Approx(868.1));
  CHECK(rx.rssi == -35);
  CHECK(rx.lsnr == doctest::Approx(5.1));
  CHECK(rx.datr == "SF7BW125");
  CHECK(rx.tmst == 3512348611U);
  CHECK(rx.chan == 2);
}

TEST_CASE("protocol version 1 is accepted and echoed, others are not") {
  UdpPacket p;
  REQUIRE_FALSE(parseDatagram(hex("01abcd02aa555a0000000000"), p));
  CHECK(makeAck(p) == std::array<std::uint8_t, 4>{1, 0xab, 0xcd, 4});
  CHECK(parseDatagram(hex("03abcd02aa555a0000000000"), p) == Reason::BadVersion);
  CHECK(parseDatagram(hex("00abcd02aa555a0000000000"), p) == Reason::BadVersion);
}

TEST_CASE("datagram headers: short, unknown and server-bound types are rejected by reason") {
  UdpPacket p;
  CHECK(parseDatagram({}, p) == Reason::DatagramTooShort);
  CHECK(parseDatagram(hex("0212"), p) == Reason::DatagramTooShort);
  CHECK(parseDatagram(hex("02123400aa55"), p) == Reason::DatagramTooShort);
  CHECK(parseDatagram(hex("02123406aa555a0000000000"), p) == Reason::UnknownPacketType);
  CHECK(parseDatagram(hex("02123401"), p) == Reason::UnexpectedPacketType);                  // PUSH_ACK
  CHECK(parseDatagram(hex("02123403aa555a0000000000"), p) == Reason::UnexpectedPacketType);  // PULL_RESP
  CHECK(parseDatagram(hex("02123404"), p) == Reason::UnexpectedPacketType);                  // PULL_ACK
  CHECK(parseDatagram(hex("02123402aa555a000000000000"), p) == Reason::BadPullData);
  REQUIRE_FALSE(parseDatagram(hex("02123405aa555a0000000000"), p));  // TX_ACK without JSON
  CHECK(p.type == PacketType::TxAck);
}

TEST_CASE("rxpk: CRC-failed and no-CRC packets are dropped") {
  RxPacket rx;
  std::string s = kGood;
  s.replace(s.find("\"stat\":1"), 8, "\"stat\":-1");
  CHECK(oneRxpk(s, rx) == Reason::CrcFailed);
  s = kGood;
  s.replace(s.find("\"stat\":1"), 8, "\"stat\":0");
  CHECK(oneRxpk(s, rx) == Reason::CrcFailed);
  s = kGood;
  s.replace(s.find("\"stat\":1"), 8, "\"stat\":2");
  CHECK(oneRxpk(s, rx) == Reason::BadRxpk);
}

TEST_CASE("rxpk: base64 must be strict, unpadded is fine, and size must match") {
  RxPacket rx;
  auto with = [&](std::string_view data, int size) {
    std::string s = kGood;
    s.replace(s.find("\"size\":17"), 9, "\"size\":" + std::to_string(size));
    s.replace(s.find("QPF9vkkAAgABlUN4disR/w0="), 24, data);
    return oneRxpk(s, rx);
  };
  CHECK_FALSE(with("QPF9vkkAAgABlUN4disR/w0", 17));  // unpadded
  CHECK(rx.size == 17);
  // The illustrative junk of PROTOCOL.TXT: '-' is not in the alphabet.
  CHECK(with("-DS4CGaDCdG+48eJNM3Vai-zDpsR71Pn9CPA9uCON84", 32) == Reason::BadBase64);
  CHECK(with("QPF9vkkAAgABlUN4disR_w0=", 17) == Reason::BadBase64);   // URL-safe alphabet
  CHECK(with("QPF9vkkAAgAB lUN4disR/w0=", 17) == Reason::BadBase64);  // whitespace
  CHECK(with("QPF9vkkAAgABlUN4disR/w0==", 17) == Reason::BadBase64);  // bad padding
  CHECK(with("QPF9vkkAAgABlUN4disR/w1=", 17) == Reason::BadBase64);   // non-zero trailing bits
  CHECK(with("QPF9vkkAAgABlUN4disR/w0=", 16) == Reason::SizeMismatch);
  CHECK(with(std::string(400, 'A'), 300) == Reason::Oversize);
  CHECK(with("", 0) == std::nullopt);  // empty data decodes; the frame parser rejects it later
}

TEST_CASE("rxpk: required fields, types and ranges") {
  RxPacket rx;
  auto without = [&](std::string_view field) {
    std::string s = kGood;
    const auto at = s.find("\"" + std::string(field) + "\":");
    auto end = s.find(',', at);
    if (end == std::string::npos) {
      s.erase(at - 1);
    } else {
      s.erase(at, end - at + 1);
    }
    return oneRxpk(s, rx);
  };
  for (const char* f : {"stat", "modu", "datr", "freq", "rssi", "lsnr", "size", "data"}) {
    INFO(f);
    CHECK(without(f) == Reason::BadRxpk);
  }
  CHECK_FALSE(without("tmst"));
  CHECK_FALSE(without("chan"));
  CHECK_FALSE(without("codr"));
  auto replace = [&](std::string_view from, std::string_view to) {
    std::string s = kGood;
    s.replace(s.find(from), from.size(), to);
    return oneRxpk(s, rx);
  };
  CHECK(replace("\"datr\":\"SF7BW125\"", "\"datr\":\"SF13BW125\"") == Reason::BadRxpk);
  CHECK(replace("\"datr\":\"SF7BW125\"", "\"datr\":7") == Reason::BadRxpk);
  CHECK(replace("\"modu\":\"LORA\"", "\"modu\":\"OOK\"") == Reason::BadRxpk);
  CHECK(replace("\"rssi\":-35", "\"rssi\":\"-35\"") == Reason::BadRxpk);
  CHECK(replace("\"tmst\":3512348611", "\"tmst\":4294967296") == Reason::BadRxpk);
  CHECK(replace("\"tmst\":3512348611", "\"tmst\":1.5") == Reason::BadRxpk);
  CHECK(replace("\"freq\":868.1", "\"freq\":-1") == Reason::BadRxpk);
  CHECK_FALSE(replace("\"modu\":\"LORA\",\"datr\":\"SF7BW125\"", "\"modu\":\"FSK\",\"datr\":50000"));
  CHECK_FALSE(rx.lora);
  CHECK(rx.fskRate == 50000);
}

TEST_CASE("rxpk: multi-antenna rsig[] gives the best antenna's signal") {
  RxPacket rx;
  std::string s = kGood;
  s.replace(s.find("\"rssi\":-35,\"lsnr\":5.1,"), 22,
            R"("rsig":[{"ant":0,"chan":2,"rssic":-80,"lsnr":2.5},{"ant":1,"chan":2,"rssic":-61,"lsnr":7.25}],)");
  REQUIRE_FALSE(oneRxpk(s, rx));
  CHECK(rx.rssi == -61);
  CHECK(rx.lsnr == 7.25);
}

TEST_CASE("PUSH_DATA: bad rxpk are rejected one by one, good ones still delivered, stat read") {
  const std::string body = R"({"rxpk":[{)" + kGood + R"(},{"stat":-1},42,{)" + kGood +
                           R"(}],"stat":{"time":"2014-01-12 08:59:28 GMT","lati":46.24,"long":3.2523,"alti":145,)"
                           R"("rxnb":2,"rxok":2,"rxfw":2,"ackr":100.0,"dwnb":2,"txnb":2,"temp":23.5}})";
  json::Document d;
  Collect c;
  StatReport st;
  CHECK_FALSE(parsePushData(body, d, c, st));
  CHECK(c.rx.size() == 2);
  REQUIRE(c.rejected.size() == 2);
  CHECK(c.rejected[0] == Reason::CrcFailed);
  CHECK(c.rejected[1] == Reason::BadRxpk);
  REQUIRE(st.present);
  CHECK(st.rxnb == 2);
  CHECK(st.ackr == 100.0);
  CHECK(st.hasPosition);
  CHECK(st.lon == doctest::Approx(3.2523));
  CHECK(st.temp == 23.5);

  CHECK(parsePushData("{\"rxpk\":{}}", d, c, st) == Reason::BadPushData);
  CHECK(parsePushData("[]", d, c, st) == Reason::BadPushData);
  CHECK(parsePushData("{\"rxpk\":[", d, c, st) == Reason::BadJson);
  CHECK(parsePushData("{\"stat\":{\"rxnb\":-1}}", d, c, st) == Reason::BadStat);
  CHECK_FALSE(st.present);
}

TEST_CASE("PUSH_DATA: more than 64 rxpk in one datagram: the rest are counted, not parsed") {
  std::string body = "{\"rxpk\":[";
  for (int i = 0; i < 70; ++i) body += std::string(i ? "," : "") + "{" + kGood + "}";
  body += "]}";
  json::Document d;
  Collect c;
  StatReport st;
  CHECK_FALSE(parsePushData(body, d, c, st));
  CHECK(c.rx.size() == kMaxRxpkPerDatagram);
  CHECK(c.rejected.size() == 70 - kMaxRxpkPerDatagram);
}

TEST_CASE("base64: round trip of every length up to 255") {
  std::vector<std::uint8_t> data;
  std::array<std::uint8_t, 255> out{};
  for (int n = 0; n <= 255; ++n) {
    const std::string enc = encodeBase64(data);
    const auto got = decodeBase64(enc, out);
    REQUIRE(got);
    CHECK(*got == data.size());
    CHECK(std::equal(data.begin(), data.end(), out.begin()));
    data.push_back(static_cast<std::uint8_t>(n * 37 + 11));
  }
  std::array<std::uint8_t, 2> small{};
  CHECK_FALSE(decodeBase64("QUJD", small));  // 3 bytes do not fit
  CHECK_FALSE(decodeBase64("Q", out));       // one leftover character carries no byte
  CHECK_FALSE(decodeBase64("QQ=", out));     // partial padding
  CHECK_FALSE(decodeBase64("====", out));
}
