#include "inputs/modbus/transport.hpp"

#include "inputs/modbus/link.hpp"
#include "inputs/modbus/mbap.hpp"
#include "inputs/modbus/rtu_framing.hpp"

namespace citygate::modbus {

const char* errorKindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::None:
      return "ok";
    case ErrorKind::Timeout:
      return "timeout";
    case ErrorKind::Exception:
      return "exception";
    case ErrorKind::BadFrame:
      return "bad frame";
    case ErrorKind::Connection:
      return "connection";
  }
  return "?";
}

std::string exceptionName(int code) {
  switch (code) {
    case 1:
      return "01 illegal function";
    case 2:
      return "02 illegal data address";
    case 3:
      return "03 illegal data value";
    case 4:
      return "04 server device failure";
    case 5:
      return "05 acknowledge";
    case 6:
      return "06 server device busy";
    case 7:
      return "07 negative acknowledge";
    case 8:
      return "08 memory parity error";
    case 10:
      return "0A gateway path unavailable";
    case 11:
      return "0B gateway target device failed to respond";
    default:
      return "exception " + std::to_string(code);
  }
}

ReadError Transport::write(std::uint8_t, pb::RegisterTable, std::uint16_t, std::span<const std::uint16_t>,
                           std::chrono::milliseconds) {
  return ReadError{ErrorKind::BadFrame, 0, "writes are not supported on " + describe()};
}

std::uint16_t crc16(std::span<const std::uint8_t> data) {
  std::uint16_t crc = 0xFFFF;
  for (std::uint8_t b : data) {
    crc ^= b;
    for (int i = 0; i < 8; ++i) crc = (crc & 1) ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA001) : crc >> 1;
  }
  return crc;
}

void addDiscarded(std::vector<DiscardedFrames>& to, std::uint8_t unit, std::uint32_t frames) {
  for (auto& d : to) {
    if (d.unit == unit) {
      d.frames += frames;
      return;
    }
  }
  to.push_back(DiscardedFrames{unit, frames});
}

std::uint64_t totalDiscarded(const std::vector<DiscardedFrames>& frames) {
  std::uint64_t n = 0;
  for (const auto& d : frames) n += d.frames;
  return n;
}

std::unique_ptr<Transport> makeTransport(const pb::ModbusBus& bus) {
  if (bus.has_tcp()) {
    return std::make_unique<MbapTransport>(makeTcpLink(bus.tcp().host(), bus.tcp().port(), "tcp"));
  }
  if (bus.has_rtu_over_tcp()) {
    return std::make_unique<RtuTransport>(
        makeTcpLink(bus.rtu_over_tcp().host(), bus.rtu_over_tcp().port(), "rtu-over-tcp"), rtuOverTcpTiming());
  }
  return std::make_unique<RtuTransport>(makeSerialLink(bus.rtu()),
                                        serialRtuTiming(bus.rtu().baud(), bitsPerCharacter(bus.rtu())));
}

std::optional<WritePdu> encodeWritePdu(pb::RegisterTable table, std::uint16_t address,
                                       std::span<const std::uint16_t> values) {
  if (values.empty() || values.size() > 123 || (table == pb::COIL && values.size() != 1) ||
      (table != pb::COIL && table != pb::HOLDING_REGISTER)) {
    return std::nullopt;
  }
  WritePdu w;
  auto put16 = [&w](std::uint16_t v) {
    w.data.push_back(static_cast<std::uint8_t>(v >> 8));
    w.data.push_back(static_cast<std::uint8_t>(v));
  };
  put16(address);
  if (table == pb::COIL) {
    w.function = 0x05;
    put16(values[0] != 0 ? 0xFF00 : 0x0000);
  } else if (values.size() == 1) {
    w.function = 0x06;
    put16(values[0]);
  } else {
    w.function = 0x10;
    put16(static_cast<std::uint16_t>(values.size()));
    w.data.push_back(static_cast<std::uint8_t>(values.size() * 2));
    for (std::uint16_t v : values) put16(v);
  }
  return w;
}

std::string describeError(const ReadError& e, std::uint32_t unit, const std::string& bus,
                          std::chrono::milliseconds timeout) {
  std::string what;
  switch (e.kind) {
    case ErrorKind::Timeout:
      what = "no answer within " + std::to_string(timeout.count()) + " ms";
      break;
    case ErrorKind::Exception:
      what = "exception " + e.message;
      break;
    case ErrorKind::BadFrame:
      what = "bad answer: " + e.message;
      break;
    case ErrorKind::Connection:
      what = "link failed: " + e.message;
      break;
    case ErrorKind::None:
      what = "ok";
      break;
  }
  return "unit " + std::to_string(unit) + " on bus '" + bus + "': " + what;
}

}  // namespace citygate::modbus
