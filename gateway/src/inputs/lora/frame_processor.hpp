// FrameProcessor: LoRaWAN 1.0.x uplinks -> readings, for the devices of the config. Runs on the
// executor; time comes in as arguments, so tests drive it without sleeping.
//
// For each received PHYPayload (an rxpk that passed the UDP checks):
//   1. parse MHDR/FHDR/FOpts (phy_payload.hpp);
//   2. find the sessions with its DevAddr (several devices may share one: the MIC decides);
//   3. the same bytes already seen within the dedup TTL: one more reception of that frame (best
//      RSSI/SNR kept, receptions counted), never a second reading;
//   4. reconstruct the 32-bit FCnt, verify the MIC (AES-CMAC via OpenSSL); a counter at or below
//      the last accepted one is a replay (or the retransmission of the last frame), one above it
//      but at or below the floor an unclean stop raised is fcnt_below_resume_margin, a jump beyond
//      max_fcnt_gap is rejected, a MIC that verifies with no counter is mic_failed;
//   5. decrypt FRMPayload and decode it with the device's codec into a RawSample that waits for
//      the dedup window to close, then goes to `submit` with its LoRa metadata.
// Every rejection is counted by Reason, globally and (when the device is known) per device. A
// data uplink whose DevAddr no device has goes to the heard table (heard.hpp, bounded).
//
// Memory is bounded: the dedup cache holds at most `maxPending` frames (the oldest is published
// early when it is full, never dropped), sessions are fixed by the config, counters are arrays.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "citygate/v1/status.pb.h"
#include "core/normaliser.hpp"
#include "inputs/lora/crypto.hpp"
#include "inputs/lora/downlink.hpp"
#include "inputs/lora/fcnt.hpp"
#include "inputs/lora/heard.hpp"
#include "inputs/lora/join.hpp"
#include "inputs/lora/reasons.hpp"
#include "inputs/lora/semtech_udp.hpp"
#include "inputs/lora/spec.hpp"

namespace spdlog {
class logger;
}

namespace citygate::lora {

struct ProcessorOptions {
  std::chrono::milliseconds dedupWindow{200};
  std::uint32_t maxFcntGap = 16384;
  std::uint32_t resumeMargin = 16;
  std::size_t maxPending = 2048;
  std::optional<JoinSpec> join;  // lora.join: OTAA devices join with it
};

struct ProcessorCounters {
  ReasonCounters rejected{};
  std::uint64_t framesAccepted = 0;        // authentic frames (MIC and counter OK), duplicates not counted
  std::uint64_t duplicates = 0;            // extra receptions merged into a frame
  std::uint64_t readings = 0;              // samples submitted
  std::uint64_t evicted = 0;               // dedup entries published early because the cache was full
  std::uint64_t fcntResets = 0;            // relax_fcnt devices that restarted their counter
  std::uint64_t joinsAccepted = 0;         // join-requests answered (a join-accept built, the session switched)
  std::uint64_t retransmissionsAcked = 0;  // confirmed retransmissions handed to the downlinks for an ACK
};

class FrameProcessor {
 public:
  using Submit = std::function<void(const core::SensorSpec&, core::SensorMemory&, core::RawSample&&)>;

  FrameProcessor(std::vector<DeviceSpec> devices, ProcessorOptions options, std::unique_ptr<Crypto> crypto,
                 Submit submit, std::shared_ptr<spdlog::logger> log);
  ~FrameProcessor();

  // One received packet. nullopt: accepted, or merged as a duplicate; otherwise why it was not.
  std::optional<Reason> onRxpk(const RxPacket& rx, std::uint64_t gatewayEui, SteadyTime now, WallTime wallNow);

  // Counts a rejection found before a frame reached the processor (datagram, rxpk).
  void count(Reason r) { ++counters_.rejected[static_cast<std::size_t>(r)]; }

  // Publishes the frames whose dedup window has closed, and forgets expired entries.
  void flushDue(SteadyTime now);
  // Publishes every pending frame at once (stop).
  void flushAll();
  // When flushDue() next has something to do.
  std::optional<SteadyTime> nextDeadline() const;

  // ---- frame-counter persistence ----
  // Applies the copies found at start (either may be null): per device, a RAM slot of this boot
  // that is not older than the storage copy resumes exactly; otherwise the storage record, exactly
  // after a clean stop, else at max(floor, last + margin). Devices whose DevAddr or keys changed
  // start afresh.
  struct Restored {
    std::size_t exactFromRam = 0;
    std::size_t exactFromStorage = 0;  // clean stop
    std::size_t withMargin = 0;        // storage copy of an unclean stop, no RAM copy
  };
  Restored restore(const FcntState* storage, const FcntRam* ram);
  // The storage copy to write now; `clean` only at a clean stop.
  FcntState snapshot(bool clean) const;
  // After a successful write of `written` (a snapshot()) to the storage: the counters in it are
  // durable. What changed since it was taken stays dirty (and urgent if so).
  void markPersisted(const FcntState& written);
  bool dirty() const { return dirty_; }
  // A counter has run `resumeMargin` ahead of the storage copy: write it before that frame's
  // reading leaves.
  bool urgentPersist() const { return urgent_; }
  // The RAM copy: called with the device's index on every accepted frame, synchronously, before
  // that frame (or any later one) can be submitted. slotView(i) is what slot i holds.
  void setCounterHook(std::function<void(std::size_t)> hook) { counterHook_ = std::move(hook); }
  FcntSlotView slotView(std::size_t index) const;
  // Downlinks: called once per accepted frame when its dedup window closes (before its reading
  // is submitted), with the best reception; AcceptedUplink::device is the device's index in the config.
  void setUplinkHook(std::function<void(const AcceptedUplink&)> hook) { uplinkHook_ = std::move(hook); }
  // The device's spec; for an OTAA device, its current session (DevAddr, keys; zero before a join).
  const DeviceSpec& device(std::size_t index) const { return sessions_[index].spec; }
  bool hasSession(std::size_t index) const { return hasSession(sessions_[index]); }

  // ---- OTAA joins (join.hpp) ----
  // A join-request accepted switches the device to the derived session at once (its counters
  // start afresh, FCnt 0) and bumps the join generation; the join-accept waits in the dedup
  // window like a frame, then goes to the uplink hook (AcceptedUplink::join) with the generation
  // that must be durable (joinSnapshot() written) before it is sent.
  struct JoinsRestored {
    std::size_t sessions = 0;  // devices that resume their session
    std::size_t void_ = 0;     // records of devices whose AppKey or DevEUI changed, or that are gone
  };
  JoinsRestored restoreJoins(const OtaaState& state);
  OtaaState joinSnapshot() const;
  std::uint64_t joinGeneration() const { return joinGen_; }
  bool joinsDirty() const { return joinGen_ != joinSaved_; }
  std::uint64_t joinsPersistedGeneration() const { return joinSaved_; }
  void markJoinsPersisted(std::uint64_t generation) { joinSaved_ = std::max(joinSaved_, generation); }
  std::uint32_t keyCheck(std::size_t index) const { return sessions_[index].keyCheck; }

  const ProcessorCounters& counters() const { return counters_; }
  void fillHealth(google::protobuf::RepeatedPtrField<citygate::v1::DeviceHealth>& out) const;
  std::size_t pendingFrames() const { return pending_.size(); }
  std::size_t deviceCount() const { return sessions_.size(); }
  // DevAddrs heard that no configured device has (`citygatectl lora heard`).
  const HeardTable& heard() const { return heard_; }

 private:
  struct Session {
    DeviceSpec spec;
    std::uint32_t keyCheck = 0;
    bool seen = false;
    std::uint32_t lastFcnt = 0;      // frames at or below it are refused (the floor in effect)
    std::uint32_t lastAccepted = 0;  // the last accepted counter (below lastFcnt after a power cut)
    bool persistedSeen = false;
    std::uint32_t persistedFcnt = 0;  // lastAccepted in the storage copy
    std::uint64_t lastFrameHash = 0;
    core::SensorMemory memory;
    ReasonCounters rejected{};
    std::uint64_t accepted = 0;
    std::uint64_t readings = 0;
    double lastRssi = 0.0;
    double lastSnr = 0.0;
    WallTime lastOkAt{};
    std::string_view lastError;
    std::optional<Reason> lastRejectReason;  // none until a frame of it is rejected
    WallTime lastRejectedAt{};
    // OTAA
    std::uint32_t appKeyCheck = 0;
    bool joined = false;
    std::uint32_t joinNonce = 0;
    std::uint32_t netId = 0;
    std::uint16_t devNonce = 0;
    std::vector<std::uint16_t> usedNonces;  // oldest first, at most kMaxDevNonces
    std::uint64_t joins = 0;
    WallTime lastJoinAt{};
    // the last DevStatusAns
    bool devStatus = false;
    WallTime devStatusAt{};
    std::uint8_t battery = 0;
    std::int8_t margin = 0;
  };
  static bool hasSession(const Session& s) { return !s.spec.otaa || s.joined; }

  struct Pending {
    std::uint64_t hash = 0;
    std::uint8_t len = 0;
    std::array<std::uint8_t, kMaxPhyPayload> phy{};
    SteadyTime flushAt{};
    SteadyTime expiresAt{};
    std::size_t session = 0;
    bool flushed = false;
    bool hasReading = false;
    core::RawSample sample;  // lora meta filled as receptions arrive
    AcceptedUplink uplink;   // the best reception, for the downlink hook
  };

  enum class Verdict : std::uint8_t {
    Accept,
    AcceptReset,
    Replay,
    BelowResumeMargin,
    Retransmission,
    Gap,
    MicFailed,
    CryptoError
  };
  Verdict verify(Session& s, const DataFrame& f, std::uint64_t hash, std::uint32_t& fcntOut);
  std::optional<Reason> onJoinRequest(const RxPacket& rx, std::span<const std::uint8_t> phy, std::uint64_t gatewayEui,
                                      SteadyTime now, WallTime wallNow);
  void mergeDuplicate(Pending& p, const RxPacket& rx, std::uint64_t gatewayEui);
  Pending& addPending(std::uint64_t hash, std::span<const std::uint8_t> phy, std::size_t session, const RxPacket& rx,
                      std::uint64_t gatewayEui, SteadyTime now, WallTime wallNow);
  void rebuildAddrIndex();
  void setSession(Session& s, std::uint32_t devAddr, const SessionKeys& keys);
  void reject(Reason r, Session* s);
  void noteHeard(const DataFrame& f, const RxPacket& rx, std::uint64_t gatewayEui, WallTime wallNow);
  void publish(Pending& p);
  Pending* findPending(std::uint64_t hash, std::span<const std::uint8_t> phy);
  void makeRoom();

  ProcessorOptions options_;
  std::unique_ptr<Crypto> crypto_;
  Submit submit_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<Session> sessions_;
  std::vector<std::pair<std::uint32_t, std::size_t>> byAddr_;      // sorted (DevAddr, session)
  std::deque<Pending> pending_;                                    // arrival order
  std::uint64_t pendingBase_ = 0;                                  // sequence number of pending_.front()
  std::uint64_t flushCursor_ = 0;                                  // first sequence not yet published
  std::unordered_map<std::uint64_t, std::uint64_t> pendingIndex_;  // hash -> sequence
  ProcessorCounters counters_;
  bool dirty_ = false;
  bool urgent_ = false;
  std::function<void(std::size_t)> counterHook_;
  std::function<void(const AcceptedUplink&)> uplinkHook_;
  std::array<std::uint8_t, kMaxPhyPayload> scratch_{};
  HeardTable heard_;
  WallTime lastWall_{};  // of the packet being processed
  std::uint32_t nextJoinNonce_ = 1;
  std::uint64_t joinGen_ = 0;
  std::uint64_t joinSaved_ = 0;
};

// 64-bit FNV-1a of a frame's bytes (the dedup key; equality is confirmed on the bytes).
std::uint64_t frameHash(std::span<const std::uint8_t> phy);

}  // namespace citygate::lora
