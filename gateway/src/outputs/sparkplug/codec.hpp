// Sparkplug B's bytes at the edge: the topic names of one edge node, the NDEATH (will) and the
// decoders of what hosts send it (NCMD, DCMD, STATE). The decoders take untrusted bytes: every
// failure is a reason in text, never an exception or a crash (tests/fuzz/sparkplug_command.cpp).
//
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace citygate::sparkplug {

inline constexpr std::string_view kNamespace = "spBv1.0";
inline constexpr std::string_view kRebirth = "Node Control/Rebirth";
inline constexpr std::string_view kBdSeq = "bdSeq";
// A command payload larger than this is refused unread (the node's own NBIRTH is far smaller).
inline constexpr std::size_t kMaxCommandBytes = 64 * 1024;
inline constexpr std::size_t kMaxCommandMetrics = 64;

struct Topics {
  Topics(std::string_view group, std::string_view edge, std::string_view hostId);
  std::string nbirth, ndeath, ndata, ncmd;
  std::string dcmdFilter;   // spBv1.0/<group>/DCMD/<edge>/+
  std::string state;        // spBv1.0/STATE/<host_id> (empty without a primary host)
  std::string legacyState;  // STATE/<host_id>, Sparkplug 2.2's form (empty without one)
  // spBv1.0/<group>/<type>/<edge>/<device>
  std::string device(std::string_view type, std::string_view device) const;
  // The device of a DCMD topic; empty when `topic` is not one of this node's.
  std::string_view dcmdDevice(std::string_view topic) const;

 private:
  std::string devicePrefix_;  // spBv1.0/<group>/
  std::string edge_;
  std::string dcmdPrefix_;  // spBv1.0/<group>/DCMD/<edge>/
};

// The NDEATH payload: exactly one metric, bdSeq (Int64), and the payload's timestamp; no seq.
std::string ndeathPayload(std::uint64_t bdSeq, std::uint64_t timestampMs);

// One metric of an NCMD/DCMD: by name or alias, with its value as a number or a bool.
struct CommandMetric {
  std::string name;  // empty when sent by alias only
  std::optional<std::uint64_t> alias;
  std::optional<double> number;  // int, long, float, double (signed types sign-extended)
  std::optional<bool> boolean;
  std::optional<std::string> text;
  bool isNull = false;
};

struct DecodedCommand {
  std::vector<CommandMetric> metrics;
  std::string error;  // why the payload is refused; empty when decoded
  bool ok() const { return error.empty(); }
};

// A Sparkplug B Payload from a host: at most kMaxCommandBytes, kMaxCommandMetrics metrics, each
// named (valid UTF-8, as protobuf checks) or aliased.
DecodedCommand decodeCommand(std::string_view payload);

// The primary host's STATE: 3.0's JSON {"online":bool,"timestamp":ms} (other members ignored), or
// 2.2's plain ONLINE / OFFLINE (no timestamp).
struct HostState {
  bool online = false;
  std::optional<std::uint64_t> timestamp;
};
std::optional<HostState> parseState(std::string_view payload, std::string* why);

}  // namespace citygate::sparkplug
