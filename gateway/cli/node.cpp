// `citygatectl node show|provision --port TTY [FILE]`: a sensor node's provisioning record over
// its service UART (node_link.hpp; firmware/README.md "Service UART"). No daemon involved: the
// technician's laptop on the node's service port.
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "citygate/v1/node.pb.h"
#include "cli/cli.hpp"
#include "cli/node_link.hpp"

namespace citygate::cli {

namespace {

constexpr std::uint32_t kDefaultTimeoutMs = 2000;

struct PortOptions {
  std::string port;
  std::uint32_t baud = node::kServiceBaud;
  std::chrono::milliseconds timeout{kDefaultTimeoutMs};
};

// --port (required), --baud, --timeout; `rc` set when they are wrong.
bool portOptions(const Ctx& ctx, const Args& a, const std::string& command, PortOptions& o, int& rc) {
  if (!a.has("port") || a.value("port").empty()) {
    rc = usageError(ctx, command, command + " needs --port TTY (the node's service UART, e.g. /dev/ttyUSB0)");
    return false;
  }
  o.port = a.value("port");
  if (a.has("baud")) {
    const auto b = parseUint(a.value("baud"), 4000000);
    if (!b) {
      rc = usageError(ctx, command, "--baud wants a number");
      return false;
    }
    o.baud = *b;
  }
  if (a.has("timeout")) {
    const auto t = parseUint(a.value("timeout"), 600000);
    if (!t || *t == 0) {
      rc = usageError(ctx, command, "--timeout wants milliseconds, 1..600000");
      return false;
    }
    o.timeout = std::chrono::milliseconds(*t);
  }
  return true;
}

std::string kindText(pb::NodeKind k) {
  switch (k) {
    case pb::NODE_TRAFFIC_COUNTER:
      return "traffic counter";
    case pb::NODE_AIR_QUALITY:
      return "air-quality node";
    default:
      return "unspecified";
  }
}

std::string hex(const std::string& bytes) {
  static const char* const kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string hex32(std::uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "%08x", v);
  return text;
}

// One exchange and its failures, reported. 0 and `reply` filled when the node answered `type`.
int ask(const Ctx& ctx, const PortOptions& o, node::Type type, std::string_view payload, node::Frame& reply) {
  node::SerialPort port;
  std::string error;
  int code = kExitFailed;
  if (!port.open(o.port, o.baud, error, code)) return fail(ctx, code, error);
  const auto x = port.exchange(type, payload, o.timeout);
  const std::string where = o.port + " at " + std::to_string(o.baud) + " baud";
  // A record may have been written by a node whose reply was lost (it resets right after).
  const std::string unconfirmed =
      type == node::Type::Provision
          ? "; if the node took the record, `citygatectl node show --port " + o.port + "` shows it"
          : "";
  using Outcome = node::Exchange::Outcome;
  switch (x.outcome) {
    case Outcome::Reply:
      break;
    case Outcome::Timeout:
      return fail(ctx, kExitFailed,
                  "no reply from a node on " + where + " within " + std::to_string(o.timeout.count()) +
                      " ms (is the node powered, the cable on its service port, the baud rate " +
                      std::to_string(node::kServiceBaud) + "?)" + unconfirmed);
    case Outcome::FrameRefused: {
      const auto e = node::parseError(x.reply.payload);
      return fail(ctx, kExitFailed,
                  "the node on " + where + " could not read the request (" + node::reasonName(e.reason) + ": " +
                      e.text + "); nothing was changed");
    }
    case Outcome::BadReply:
      return fail(ctx, kExitFailed,
                  "the reply from " + where + " is damaged (" + x.detail +
                      "): line noise or a wrong baud rate? Nothing is known to have changed; try again");
    case Outcome::Interrupted:
      return fail(ctx, kExitInterrupted, "interrupted");
    case Outcome::IoError:
      return fail(ctx, kExitFailed, o.port + ": " + x.detail + unconfirmed);
  }
  if (x.reply.type == static_cast<std::uint8_t>(node::Type::Error)) {
    const auto e = node::parseError(x.reply.payload);
    return fail(ctx, kExitFailed,
                "the node refused: " + e.text + " (" + node::reasonName(e.reason) + "); nothing was changed");
  }
  if (x.reply.type != (static_cast<std::uint8_t>(type) | node::kReplyBit)) {
    return fail(ctx, kExitFailed,
                "the node on " + where + " answered with an unexpected frame type " + std::to_string(x.reply.type));
  }
  reply = x.reply;
  return 0;
}

// The record for people, one "label  value" line each.
std::string recordText(const Style& o, const pb::NodeProvisioning& r) {
  std::string out;
  auto row = [&](const std::string& label, const std::string& value) {
    std::string padded = label;
    if (padded.size() < 12) padded.resize(12, ' ');
    out += o.paint(padded, Colour::Bold) + " " + value + "\n";
  };
  row("Node id", r.node_id());
  row("Kind", kindText(r.kind()));
  if (r.has_traffic()) {
    const auto& t = r.traffic();
    row("Modbus", "unit " + std::to_string(t.unit_id()) + ", " +
                      (t.baud() == 0 ? std::string("19200 (default)") : std::to_string(t.baud())) + " baud 8E1");
    row("Period", t.period_s() == 0 ? std::string("60 s (default)") : std::to_string(t.period_s()) + " s");
    for (const auto& lane : t.lane()) {
      row("Lane " + std::to_string(lane.lane_id()),
          lane.direction() + ", detector " +
              (lane.detector_length_cm() == 0 ? std::string("length not measured")
                                              : std::to_string(lane.detector_length_cm()) + " cm"));
    }
  }
  if (r.has_air()) {
    const auto& a = r.air();
    row("DevEUI", hex(a.dev_eui()));
    if (!a.join_eui().empty()) {
      row("Activation", "OTAA (joins the network; the DevAddr comes with the join-accept)");
      row("JoinEUI", hex(a.join_eui()));
    } else {
      row("Activation", "ABP");
      row("DevAddr", hex32(a.dev_addr()));
    }
    row("Keys", r.keys_set() ? "set (never shown)" : o.paint("NOT SET", Colour::Red));
    row("Confirmed", a.confirmed_every() == 0   ? std::string("no (unconfirmed uplinks)")
                     : a.confirmed_every() == 1 ? std::string("every uplink")
                                                : "every " + std::to_string(a.confirmed_every()) + "th uplink");
    row("Interval", a.interval_s() == 0 ? std::string("300 s (default)") : std::to_string(a.interval_s()) + " s");
    row("FCnt margin",
        a.fcnt_resume_margin() == 0 ? std::string("16 (default)") : std::to_string(a.fcnt_resume_margin()));
  } else if (r.kind() == pb::NODE_AIR_QUALITY) {
    row("Keys", r.keys_set() ? "set (never shown)" : "not set");
  }
  return out;
}

// A text-format parse error as FILE:LINE:COL: message.
class FileErrors final : public google::protobuf::io::ErrorCollector {
 public:
  explicit FileErrors(std::string file) : file_(std::move(file)) {}
  void AddError(int line, int column, const std::string& message) override {
    lines.push_back(file_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message);
  }
  std::vector<std::string> lines;

 private:
  std::string file_;
};

// The file holds keys: refused unless it is a regular file of 0600 or stricter that belongs to
// the user or root, as citygated refuses its key files (config/loader.cpp, secretProblems).
std::string keyFileProblem(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path + ": " + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return path + " is not a regular file";
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return path + " has mode " + mode + ": a file holding a node's keys must be 0600 or stricter (chmod 600 '" + path +
           "')";
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return path + " belongs to uid " + std::to_string(st.st_uid) +
           ": a file holding a node's keys must belong to you (uid " + std::to_string(::geteuid()) + ") or root";
  }
  return {};
}

// What the node would refuse as not fitting its bounds (node.options), said with the field's
// name here rather than as "bad_record" there.
std::string boundsProblem(const pb::NodeProvisioning& r) {
  if (r.node_id().empty() || r.node_id().size() > 32) return "node_id must be 1..32 characters";
  if (r.kind() == pb::NODE_KIND_UNSPECIFIED) return "kind is not set (NODE_TRAFFIC_COUNTER or NODE_AIR_QUALITY)";
  if (r.keys_set()) return "keys_set is read-back only: leave it out";
  if (r.traffic().lane_size() > 4) return "traffic: at most 4 lanes";
  for (const auto& lane : r.traffic().lane()) {
    if (lane.direction().size() > 9) return "lane " + std::to_string(lane.lane_id()) + ": direction is too long";
  }
  const auto& a = r.air();
  if (r.has_air()) {
    if (a.dev_eui().size() != 8)
      return "air.dev_eui must be 8 bytes (it has " + std::to_string(a.dev_eui().size()) + ")";
    if (!a.app_key().empty() || !a.join_eui().empty()) {  // OTAA
      if (a.app_key().size() != 16) {
        return "air.app_key must be 16 bytes (it has " + std::to_string(a.app_key().size()) + ")";
      }
      if (a.join_eui().size() != 8) {
        return "air.join_eui must be 8 bytes (it has " + std::to_string(a.join_eui().size()) + ")";
      }
      if (a.dev_addr() != 0 || !a.nwk_s_key().empty() || !a.app_s_key().empty()) {
        return "air: OTAA (app_key, join_eui) takes no dev_addr, nwk_s_key or app_s_key";
      }
    } else {
      if (a.nwk_s_key().size() != 16) {
        return "air.nwk_s_key must be 16 bytes (it has " + std::to_string(a.nwk_s_key().size()) + ")";
      }
      if (a.app_s_key().size() != 16) {
        return "air.app_s_key must be 16 bytes (it has " + std::to_string(a.app_s_key().size()) + ")";
      }
    }
    if (a.confirmed_every() > 100) return "air.confirmed_every must be 0..100";
  }
  return {};
}

}  // namespace

int cmdNodeShow(const Ctx& ctx, const Args& a) {
  PortOptions o;
  int rc = 0;
  if (!portOptions(ctx, a, "node show", o, rc)) return rc;
  node::Frame reply;
  if (const int code = ask(ctx, o, node::Type::Show, {}, reply); code != 0) return code;
  if (reply.payload.size() < 5) return fail(ctx, kExitFailed, "the node's SHOW reply is too short");
  const auto state = static_cast<std::uint8_t>(reply.payload[0]);
  std::uint32_t generation = 0;
  for (int i = 4; i >= 1; --i)
    generation = generation << 8 | static_cast<std::uint8_t>(reply.payload[static_cast<std::size_t>(i)]);
  pb::NodeProvisioning record;
  if (!record.ParseFromString(reply.payload.substr(5))) {
    return fail(ctx, kExitFailed, "the node's record does not decode as a NodeProvisioning");
  }
  const char* stateName = state == 1 ? "provisioned" : state == 2 ? "unreadable" : "not_provisioned";
  if (ctx.json) {
    std::printf("{\"port\":%s,\"state\":\"%s\",\"generation\":%u,\"record\":%s}\n", jsonString(o.port).c_str(),
                stateName, generation, toJson(record, false).c_str());
    return 0;
  }
  if (state != 1) {
    std::printf("%s on %s: %s\n", kindText(record.kind()).c_str(), o.port.c_str(),
                state == 0 ? "not provisioned (no valid record in its flash)"
                           : "its record is damaged or from another firmware (provision it again)");
    return 0;
  }
  std::fputs(recordText(ctx.out, record).c_str(), stdout);
  std::printf("%s %s\n", ctx.out.paint("Record      ", Colour::Bold).c_str(),
              ("generation " + std::to_string(generation) + " (in force since the node's last reset)").c_str());
  return 0;
}

int cmdNodeProvision(const Ctx& ctx, const Args& a) {
  PortOptions o;
  int rc = 0;
  if (!portOptions(ctx, a, "node provision", o, rc)) return rc;
  const std::string& file = a.positional.at(2);
  if (const auto problem = keyFileProblem(file); !problem.empty()) return fail(ctx, kExitConfig, problem);
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return fail(ctx, kExitConfig, file + ": cannot read it");
  pb::NodeProvisioning record;
  FileErrors errors(file);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text.str(), &record)) {
    for (const auto& line : errors.lines) std::fprintf(stderr, "%s\n", line.c_str());
    return fail(ctx, kExitConfig, file + ": not a NodeProvisioning text proto");
  }
  if (const auto problem = boundsProblem(record); !problem.empty())
    return fail(ctx, kExitConfig, file + ": " + problem);
  std::string payload;
  record.SerializeToString(&payload);
  if (payload.size() > node::kMaxPayload) {
    return fail(ctx, kExitConfig,
                file + ": the record is " + std::to_string(payload.size()) + " bytes, over " +
                    std::to_string(node::kMaxPayload));
  }
  node::Frame reply;
  if (const int code = ask(ctx, o, node::Type::Provision, payload, reply); code != 0) return code;
  std::uint32_t generation = 0;
  for (int i = 3; i >= 0 && reply.payload.size() >= 4; --i) {
    generation = generation << 8 | static_cast<std::uint8_t>(reply.payload[static_cast<std::size_t>(i)]);
  }
  if (ctx.json) {
    std::printf("{\"port\":%s,\"node_id\":%s,\"generation\":%u,\"reset\":true}\n", jsonString(o.port).c_str(),
                jsonString(record.node_id()).c_str(), generation);
    return 0;
  }
  std::printf("%s provisioned (record generation %u); the node resets to apply it\n", record.node_id().c_str(),
              generation);
  return 0;
}

}  // namespace citygate::cli
