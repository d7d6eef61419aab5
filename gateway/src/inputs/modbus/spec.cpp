#include "inputs/modbus/spec.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "inputs/modbus/decode.hpp"

namespace citygate::modbus {

using config::Diagnostics;
using config::Location;

std::chrono::microseconds rtuTransactionTime(std::uint32_t baud, std::uint32_t bitsPerChar, bool bitTable,
                                             std::uint32_t count) {
  const double charUs = 1e6 * bitsPerChar / baud;
  const double t35Us = baud > 19200 ? 1750.0 : 3.5 * charUs;
  const std::uint32_t requestBytes = 8;  // unit, fc, addr(2), count(2), crc(2)
  const std::uint32_t dataBytes = bitTable ? (count + 7) / 8 : 2 * count;
  const std::uint32_t responseBytes = 5 + dataBytes;  // unit, fc, byte count, data, crc(2)
  return std::chrono::microseconds(static_cast<std::int64_t>((requestBytes + responseBytes) * charUs + 2 * t35Us));
}

namespace {

pb::LaneDirection laneDirection(const std::string& s) {
  if (s == "forward") return pb::FORWARD;
  if (s == "backward") return pb::BACKWARD;
  return pb::LANE_DIRECTION_UNSPECIFIED;
}

}  // namespace

bool compileProfile(const config::ProfileEntry& entry, std::vector<core::PointSpec>& points,
                    std::vector<PointRead>& reads, Diagnostics& diags) {
  const pb::DeviceProfile& prof = entry.profile;
  const Location root = entry.parsed.root;
  const std::size_t before = diags.size();
  if (prof.kind() == pb::OBSERVATION_KIND_UNSPECIFIED) {
    root.field("kind").error(diags,
                             "profile '" + prof.name() + "' needs a kind (AIR_QUALITY, TRAFFIC, PARKING, GENERIC)");
    return false;
  }
  if (prof.point_size() == 0) root.error(diags, "profile '" + prof.name() + "' has no points");
  if (prof.max_registers_per_read() > kMaxReadRegisters) {
    root.field("max_registers_per_read").error(diags, "max_registers_per_read must be 1..125");
  }
  const pb::WordOrder defOrder = prof.default_order() == pb::WORD_ORDER_UNSPECIFIED ? pb::ABCD : prof.default_order();
  std::set<std::string> statusBays;
  std::set<std::pair<std::uint32_t, std::string>> laneFields;
  std::set<std::string> airFields;
  for (int i = 0; i < prof.point_size(); ++i) {
    const pb::ProfilePoint& pt = prof.point(i);
    const Location at = root.child("point", i);
    const std::size_t pointErrors = diags.size();
    auto field = core::findField(prof.kind(), pt.field());
    if (!field) {
      at.field("field").error(
          diags, "'" + pt.field() + "' is not a field of " + pb::ObservationKind_Name(prof.kind()) + " observations");
      continue;
    }
    if (pt.table() == pb::REGISTER_TABLE_UNSPECIFIED) {
      at.error(diags,
               "point '" + pt.field() + "' needs a table (COIL, DISCRETE_INPUT, INPUT_REGISTER, HOLDING_REGISTER)");
      continue;
    }
    if (pt.type() == pb::DATA_TYPE_UNSPECIFIED) {
      at.error(diags, "point '" + pt.field() + "' needs a type");
      continue;
    }
    const bool bitTable = isBitTable(pt.table());
    PointRead rd;
    rd.table = pt.table();
    rd.address = pt.address();
    rd.type = pt.type();
    rd.order = pt.order() == pb::WORD_ORDER_UNSPECIFIED ? defOrder : pt.order();
    if (bitTable) {
      if (pt.type() != pb::BOOL) {
        at.field("type").error(diags, pb::DataType_Name(pt.type()) + " does not fit in a " +
                                          pb::RegisterTable_Name(pt.table()) + " (one bit): use BOOL");
      }
      rd.count = 1;
    } else if (pt.type() == pb::BOOL) {
      if (pt.bit() > 15) at.field("bit").error(diags, "bit must be 0..15 for a BOOL in a register");
      rd.count = 1;
      rd.bit = pt.bit();
      rd.bitInRegister = true;
    } else if (pt.type() == pb::STRING) {
      if (pt.string_registers() == 0 || pt.string_registers() > kMaxReadRegisters) {
        at.field("string_registers").error(diags, "a STRING point needs string_registers 1..125");
      }
      if (prof.kind() != pb::GENERIC) at.field("type").error(diags, "STRING points belong to GENERIC profiles");
      rd.count = pt.string_registers();
    } else {
      rd.count = registerCount(pt.type());
      if (pt.bit() != 0) at.field("bit").error(diags, "bit is only for BOOL points");
    }
    if (pt.all_ones_not_available()) {
      if (pt.type() == pb::BOOL || pt.type() == pb::STRING || pt.type() == pb::FLOAT32 || pt.type() == pb::FLOAT64) {
        at.field("all_ones_not_available")
            .error(diags, "all_ones_not_available is for integer points, not " + pb::DataType_Name(pt.type()));
      }
      rd.allOnesNotAvailable = true;
    }
    if (static_cast<std::uint64_t>(pt.address()) + rd.count > 65536) {
      at.field("address").error(diags, "point '" + pt.field() + "' at address " + std::to_string(pt.address()) + " (" +
                                           std::to_string(rd.count) + " register(s)) is outside the table 0..65535");
    }
    std::string why;
    auto conv = core::conversionFor(*field, pt.unit(), &why);
    if (!conv) at.field("unit").error(diags, why);
    if (pt.has_plausible() && !(pt.plausible().min() < pt.plausible().max())) {
      at.field("plausible").error(diags, "plausible range needs min < max");
    }
    if (pt.scale() != 0 && !std::isfinite(pt.scale())) at.field("scale").error(diags, "scale must be finite");
    if (pt.has_writable()) {
      const auto& w = pt.writable();
      if (pt.table() != pb::COIL && pt.table() != pb::HOLDING_REGISTER) {
        at.field("writable")
            .error(diags, "point '" + pt.field() + "' is in " + pb::RegisterTable_Name(pt.table()) +
                              ", which cannot be written: only COIL and HOLDING_REGISTER points are writable");
      } else if (pt.type() == pb::STRING) {
        at.field("writable").error(diags, "STRING points cannot be writable");
      } else if (rd.bitInRegister) {
        at.field("writable")
            .error(diags, "point '" + pt.field() +
                              "' is a bit inside a register: writing one bit of a register is not "
                              "supported (it would need a read-modify-write the device does not make atomic)");
      } else if (!std::isfinite(w.min()) || !std::isfinite(w.max()) || !(w.min() <= w.max())) {
        at.field("writable").error(diags, "writable range needs finite min <= max");
      }
      rd.writable = true;
      rd.writeMin = w.min();
      rd.writeMax = w.max();
    }
    const core::FieldInfo& info = core::fieldInfo(*field);
    if (prof.kind() == pb::TRAFFIC) {
      if (pt.lane_id() == 0)
        at.field("lane_id").error(diags, "traffic point '" + pt.field() + "' needs a lane_id (1..)");
      if (!laneFields.emplace(pt.lane_id(), pt.field()).second) {
        at.field("field").error(diags, "lane " + std::to_string(pt.lane_id()) + " has two '" + pt.field() + "' points");
      }
      if (!pt.lane_direction().empty() && laneDirection(pt.lane_direction()) == pb::LANE_DIRECTION_UNSPECIFIED) {
        at.field("lane_direction").error(diags, "lane_direction must be \"forward\" or \"backward\"");
      }
    }
    if (prof.kind() == pb::PARKING && info.type == core::FieldType::ParkingStatus) {
      if (!statusBays.insert(pt.bay()).second) {
        at.field("bay").error(diags, "bay '" + pt.bay() + "' has two status points");
      }
    }
    if (prof.kind() == pb::AIR_QUALITY && !airFields.insert(pt.field()).second) {
      at.field("field").error(diags, "field '" + pt.field() + "' appears twice");
    }
    if (diags.size() != pointErrors) continue;

    core::PointSpec ps;
    ps.name = pt.field();
    ps.field = *field;
    ps.scale = pt.scale() == 0 ? 1.0 : pt.scale();
    ps.offset = pt.offset();
    ps.conversion = *conv;
    ps.unitCode = field->isGeneric() ? core::genericUnitCode(pt.unit()) : std::string(info.canonicalUnit);
    ps.prepare();
    if (pt.has_plausible()) {
      ps.hasRange = true;
      ps.min = pt.plausible().min();
      ps.max = pt.plausible().max();
    }
    ps.lane = pt.lane_id();
    ps.laneDirection = laneDirection(pt.lane_direction());
    ps.bay = pt.bay();
    ps.invert = pt.invert();
    if (pt.has_deadband()) {
      ps.deadbandAbsolute = pt.deadband().absolute();
      ps.deadbandPercent = pt.deadband().percent();
      ps.maxSilentS = pt.deadband().max_silent_s() == 0 ? 900 : pt.deadband().max_silent_s();
    }
    ps.address = pt.address();
    ps.text = pt.type() == pb::STRING;
    ps.writable = rd.writable;
    points.push_back(std::move(ps));
    reads.push_back(rd);
  }

  // Overlaps: two points reading the same registers (bits of one register excepted).
  std::vector<std::size_t> idx(reads.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    return std::tie(reads[a].table, reads[a].address) < std::tie(reads[b].table, reads[b].address);
  });
  for (std::size_t k = 1; k < idx.size(); ++k) {
    const PointRead& a = reads[idx[k - 1]];
    const PointRead& b = reads[idx[k]];
    if (a.table != b.table || b.address >= a.address + a.count) continue;
    if (a.bitInRegister && b.bitInRegister && a.address == b.address && a.bit != b.bit) continue;
    // Find the profile index of point b for the location: points are in profile order, skipping
    // invalid ones, so search by field and address.
    int line = 0;
    for (int i = 0; i < prof.point_size(); ++i) {
      if (prof.point(i).address() == b.address && prof.point(i).table() == b.table &&
          prof.point(i).field() == points[idx[k]].name) {
        line = i;
      }
    }
    root.child("point", line)
        .field("address")
        .error(diags, "point '" + points[idx[k]].name + "' overlaps point '" + points[idx[k - 1]].name + "' (" +
                          pb::RegisterTable_Name(a.table) + " " + std::to_string(a.address) + ".." +
                          std::to_string(a.address + a.count - 1) + ")");
  }
  return diags.size() == before;
}

std::vector<BusSpec> compileBuses(const config::LoadedConfig& cfg, Diagnostics& diags) {
  const pb::GatewayConfig& c = cfg.config;
  const Location root = cfg.parsed.root;
  std::vector<BusSpec> buses;
  struct Compiled {
    bool ok;
    std::vector<core::PointSpec> points;
    std::vector<PointRead> reads;
  };
  std::map<std::string, Compiled> profiles;

  if (c.modbus_bus_size() > kMaxBuses) {
    root.child("modbus_bus", kMaxBuses)
        .error(diags, "too many Modbus buses: " + std::to_string(c.modbus_bus_size()) + " (at most " +
                          std::to_string(kMaxBuses) +
                          "; each bus has its own thread and the service may run 256 tasks); put the devices "
                          "behind one TCP gateway on one bus, or use fewer buses");
  }
  for (int b = 0; b < c.modbus_bus_size(); ++b) {
    const pb::ModbusBus& bus = c.modbus_bus(b);
    const Location bl = root.child("modbus_bus", b);
    BusSpec spec;
    spec.name = bus.name();
    spec.config = bus;
    spec.config.clear_device();
    switch (bus.transport_case()) {
      case pb::ModbusBus::kTcp:
        spec.kind = BusSpec::Kind::Tcp;
        break;
      case pb::ModbusBus::kRtu:
        spec.kind = BusSpec::Kind::Rtu;
        break;
      case pb::ModbusBus::kRtuOverTcp:
        spec.kind = BusSpec::Kind::RtuOverTcp;
        break;
      default:
        bl.error(diags, "modbus_bus '" + bus.name() + "' needs a transport: rtu { }, tcp { } or rtu_over_tcp { }");
    }
    if (bus.has_tcp() || bus.has_rtu_over_tcp()) {
      const auto& ep = bus.has_tcp() ? bus.tcp() : bus.rtu_over_tcp();
      const Location tl = bl.child(bus.has_tcp() ? "tcp" : "rtu_over_tcp");
      if (ep.host().empty()) tl.error(diags, "host is required");
      if (ep.port() > 65535) tl.field("port").error(diags, "port must be 1..65535");
    }
    std::uint32_t bitsPerChar = 11;
    if (bus.has_rtu()) {
      const auto& r = bus.rtu();
      const Location rl = bl.child("rtu");
      if (r.device().empty()) rl.error(diags, "rtu.device is required (e.g. /dev/ttyS1)");
      static const std::set<std::uint32_t> bauds{1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400};
      if (!bauds.contains(r.baud())) rl.field("baud").error(diags, "unsupported baud rate " + std::to_string(r.baud()));
      if (r.data_bits() != 7 && r.data_bits() != 8) rl.field("data_bits").error(diags, "data_bits must be 7 or 8");
      if (r.stop_bits() != 1 && r.stop_bits() != 2) rl.field("stop_bits").error(diags, "stop_bits must be 1 or 2");
      bitsPerChar = 1 + r.data_bits() + (r.parity() == pb::SerialRtu::NONE ? 0 : 1) + r.stop_bits();
    }
    if (bus.response_timeout_ms() < 10 || bus.response_timeout_ms() > 60000) {
      bl.field("response_timeout_ms").error(diags, "response_timeout_ms must be 10..60000");
    }
    if (bus.retries() > 5) bl.field("retries").error(diags, "retries must be 0..5");
    if (bus.backoff_min_ms() > bus.backoff_max_ms()) {
      bl.field("backoff_min_ms").error(diags, "backoff_min_ms is larger than backoff_max_ms");
    }

    std::map<std::uint32_t, int> unitIds;
    double busUs = 0.0;  // bus time needed per second
    for (int d = 0; d < bus.device_size(); ++d) {
      const pb::ModbusDevice& dev = bus.device(d);
      const Location dl = bl.child("device", d);
      const std::size_t before = diags.size();
      const bool serial = bus.has_rtu() || bus.has_rtu_over_tcp();
      if (serial ? (dev.unit_id() < 1 || dev.unit_id() > 247) : dev.unit_id() > 255) {
        dl.field("unit_id").error(
            diags, "unit_id " + std::to_string(dev.unit_id()) + " is outside " + (serial ? "1..247" : "0..255"));
      }
      if (auto [it, fresh] = unitIds.emplace(dev.unit_id(), d); !fresh) {
        dl.field("unit_id").error(diags, "unit_id " + std::to_string(dev.unit_id()) + " is already used by device '" +
                                             bus.device(it->second).id() + "' on bus '" + bus.name() + "'");
      }
      if (dev.poll_interval_ms() < 100)
        dl.field("poll_interval_ms").error(diags, "poll_interval_ms must be at least 100");
      const config::ProfileEntry* prof = cfg.profiles.find(dev.profile());
      if (prof == nullptr) {
        std::string known;
        for (const auto& n : cfg.profiles.names()) known += (known.empty() ? "" : ", ") + n;
        dl.field("profile").error(diags, "unknown profile '" + dev.profile() + "' (known: " + known + ")");
        continue;
      }
      auto it = profiles.find(dev.profile());
      if (it == profiles.end()) {
        Compiled comp;
        comp.ok = compileProfile(*prof, comp.points, comp.reads, diags);
        it = profiles.emplace(dev.profile(), std::move(comp)).first;
      }
      if (!it->second.ok) {
        dl.field("profile").error(diags, "profile '" + dev.profile() + "' has errors (see above)");
        continue;
      }
      if (diags.size() != before) continue;

      auto sensor = std::make_shared<core::SensorSpec>();
      sensor->id = dev.id();
      sensor->kind = prof->profile.kind();
      sensor->points = it->second.points;
      if (dev.has_location()) {
        sensor->location = dev.location();
      } else if (c.has_location()) {
        sensor->location = c.location();
      }
      sensor->refParkingSite = dev.ref_parking_site();
      sensor->category = prof->profile.category();
      auto* src = sensor->source.mutable_modbus();
      src->set_bus(bus.name());
      src->set_unit_id(dev.unit_id());
      if (!dev.report_by_exception()) {
        for (auto& p : sensor->points) p.deadbandAbsolute = p.deadbandPercent = 0;
      }
      core::buildGroups(*sensor);

      DeviceSpec ds;
      ds.profile = dev.profile();
      ds.unitId = static_cast<std::uint8_t>(dev.unit_id());
      ds.interval = std::chrono::milliseconds(dev.poll_interval_ms());
      ds.timeout = std::chrono::milliseconds(dev.response_timeout_ms());
      ds.reads = it->second.reads;
      ds.limits.maxGap = dev.max_gap_registers() != 0             ? dev.max_gap_registers()
                         : prof->profile.max_gap_registers() != 0 ? prof->profile.max_gap_registers()
                                                                  : 8;
      if (prof->profile.max_registers_per_read() != 0) ds.limits.maxRegisters = prof->profile.max_registers_per_read();
      ds.reportByException = dev.report_by_exception();
      ds.sensor = std::move(sensor);

      if (bus.has_rtu()) {
        std::vector<PlanPoint> pp;
        for (const auto& r : ds.reads) pp.push_back(PlanPoint{r.table, r.address, r.count, false});
        std::chrono::microseconds perPoll{0};
        for (const auto& req : planReads(pp, ds.limits)) {
          perPoll += rtuTransactionTime(bus.rtu().baud(), bitsPerChar, isBitTable(req.table), req.count) +
                     std::chrono::milliseconds(bus.inter_frame_gap_ms());
        }
        busUs += static_cast<double>(perPoll.count()) * 1000.0 / static_cast<double>(dev.poll_interval_ms());
      }
      spec.devices.push_back(std::move(ds));
    }
    spec.utilisation = busUs / 1e6;
    if (bus.has_rtu() && spec.utilisation > 1.0) {
      bl.field("name").error(diags, "bus '" + bus.name() + "' cannot serve its poll plan: it needs " +
                                        std::to_string(static_cast<int>(busUs / 1000)) +
                                        " ms of wire time per second at " + std::to_string(bus.rtu().baud()) +
                                        " baud; lengthen poll intervals, raise the baud rate or split the bus");
    }
    buses.push_back(std::move(spec));
  }
  return buses;
}

}  // namespace citygate::modbus
