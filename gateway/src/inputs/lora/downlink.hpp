// Class A downlinks through the Semtech UDP packet forwarder (EU868, LoRaWAN 1.0.x), pure: no
// sockets, time comes in as arguments (tests drive it on an injected clock).
//
//   PULL_RESP  srv->gw  ver | token(2) | 0x03 | JSON {"txpk":{...}}
//   TX_ACK     gw->srv  ver | token | 0x05 | EUI(8) [| JSON {"txpk_ack":{"error":"..."}}]
//
// After an accepted uplink (its dedup window closed, the best reception chosen) the Downlinks
// scheduler decides whether the device needs an answer: the ACK bit for a confirmed uplink,
// LinkCheckAns for a LinkCheckReq in FOpts, or the next application downlink of its queue. The
// frame is an unconfirmed (or confirmed, for a confirmed application downlink) data down, FCntDown
// from the device's persisted counter, FRMPayload encrypted with AppSKey, MIC with NwkSKey. It is
// sent for RX1 (the uplink's tmst + 1 s, same frequency and data rate: RX1DROffset 0) when that
// window can still be met, else for RX2 (tmst + 2 s, 869.525 MHz SF12BW125); per gateway, the
// ETSI duty cycle of the window's sub-band (g1 1 %, g3 10 %, ...) over the last hour must allow
// its airtime, else RX2 is tried, else the downlink is refused. A TX_ACK TOO_LATE or
// COLLISION_PACKET for an RX1 transmission is retried in RX2 when it can still be met. Every
// downlink that is not sent is counted by DropReason and logged by the caller: never silently.
//
// FCntDown: every counter handed out is below a reservation written to the state file before
// (lora-fcntdown.state, atomically, mode 0600, like the uplink counters' storage copy); the
// reservation runs kFcntDownReserve ahead and is renewed when half is used, so a counter is never
// reused across restarts, crashes or power cuts (a restart skips at most the unused reservation,
// which LoRaWAN 1.0.x devices accept).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "inputs/lora/crypto.hpp"
#include "inputs/lora/json.hpp"

namespace citygate::lora {

// ---- TX_ACK ----
enum class TxAckError : std::uint8_t {
  None,
  TooLate,
  TooEarly,
  CollisionPacket,
  CollisionBeacon,
  TxFreq,
  TxPower,
  GpsUnlocked,
  Unknown,  // an error string this build does not know
  kCount
};
inline constexpr std::size_t kTxAckErrorCount = static_cast<std::size_t>(TxAckError::kCount);
inline constexpr std::array<std::string_view, kTxAckErrorCount> kTxAckErrorNames{
    "NONE",    "TOO_LATE", "TOO_EARLY",    "COLLISION_PACKET", "COLLISION_BEACON",
    "TX_FREQ", "TX_POWER", "GPS_UNLOCKED", "UNKNOWN"};
inline std::string_view txAckErrorName(TxAckError e) {
  return kTxAckErrorNames[static_cast<std::size_t>(e)];
}

// The JSON after a TX_ACK header: empty (older forwarders: success), or {"txpk_ack":{"error":E}}
// ("warn" is accepted and ignored; no "error" means NONE). nullopt: not JSON, or not that shape.
std::optional<TxAckError> parseTxAck(std::string_view body, json::Document& doc);

// ---- why a downlink was not sent ----
enum class DropReason : std::uint8_t {
  NoPullAddress,    // the gateway has sent no PULL_DATA: there is nowhere to send the PULL_RESP
  NoTmst,           // the uplink carried no concentrator timestamp
  NotEu868,         // the window's frequency is in no EU868 sub-band
  TooLate,          // neither RX1 nor RX2 can be met any more
  DutyCycle,        // neither window's sub-band has the airtime left on that gateway
  FcntDownUnsaved,  // the FCntDown reservation is used up and its renewal not written yet
  RetryTooLate,     // TX_ACK TOO_LATE / COLLISION_PACKET on RX1, and RX2 cannot be met
  RetryDutyCycle,   // ... and RX2's sub-band has no airtime left
  TxAckError,       // the forwarder refused the transmission (any other error, or in RX2)
  InflightFull,     // more transmissions awaiting their TX_ACK than kMaxInflight (the oldest is forgotten)
  SendFailed,       // the socket would not send the PULL_RESP
  CryptoError,
  JoinStateUnsaved,  // a join-accept whose DevNonce / JoinNonce could not be written before RX2
  kCount
};
inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::kCount);
inline constexpr std::array<std::string_view, kDropReasonCount> kDropReasonNames{
    "no_pull_address",   "no_tmst",        "not_eu868",         "too_late",     "duty_cycle",
    "fcnt_down_unsaved", "retry_too_late", "retry_duty_cycle",  "tx_ack_error", "inflight_full",
    "send_failed",       "crypto_error",   "join_state_unsaved"};
inline std::string_view dropReasonName(DropReason r) {
  return kDropReasonNames[static_cast<std::size_t>(r)];
}

// ---- application downlinks ----
enum class EnqueueResult : std::uint8_t { Queued, Disabled, UnknownDevice, BadPort, TooLarge, QueueFull };
std::string_view enqueueResultName(EnqueueResult r);

// ---- radio ----
// LoRa time on air (Semtech AN1200.13): explicit header, coding rate 4/5, preamble 8, low data
// rate optimisation for SF11/SF12 at 125 kHz, no payload CRC (downlinks).
std::chrono::microseconds loraAirtime(int sf, int bandwidthKhz, std::size_t phyLength, bool crc = false);
// "SF9BW125" -> {9, 125}; nullopt otherwise.
std::optional<std::pair<int, int>> parseDatr(std::string_view datr);

enum class SubBand : std::uint8_t { G, G1, G2, G3, G4, kCount };  // ETSI EN 300 220 (EU868)
inline constexpr std::array<std::string_view, 5> kSubBandNames{"g", "g1", "g2", "g3", "g4"};
// The sub-band of a frequency in MHz; nullopt outside 863-870 MHz (or between the bands).
std::optional<SubBand> subBandOf(double mhz);
// Duty cycle of a sub-band: 0.01, 0.01, 0.001, 0.1, 0.01.
double dutyCycleLimit(SubBand b);

// Airtime per gateway and sub-band over a sliding hour.
class DutyCycle {
 public:
  static constexpr auto kWindow = std::chrono::hours(1);
  bool allows(std::uint64_t gatewayEui, SubBand band, std::chrono::microseconds airtime, SteadyTime now);
  void record(std::uint64_t gatewayEui, SubBand band, std::chrono::microseconds airtime, SteadyTime now);
  // A transmission the forwarder refused (TX_ACK error) did not air.
  void refund(std::uint64_t gatewayEui, SubBand band, std::chrono::microseconds airtime, SteadyTime at);
  std::chrono::microseconds used(std::uint64_t gatewayEui, SubBand band, SteadyTime now);

 private:
  struct Entry {
    SteadyTime at;
    std::chrono::microseconds airtime;
  };
  struct Gateway {
    std::uint64_t eui = 0;
    std::array<std::deque<Entry>, 5> bands;
  };
  std::deque<Entry>& band(std::uint64_t eui, SubBand b);
  std::vector<Gateway> gateways_;
};

// ---- class A receive windows (EU868) ----
inline constexpr double kRx2FrequencyMhz = 869.525;
inline constexpr std::string_view kRx2Datr = "SF12BW125";
inline constexpr auto kReceiveDelay1 = std::chrono::seconds(1);
inline constexpr auto kJoinAcceptDelay1 = std::chrono::seconds(5);

struct Window {
  bool rx2 = false;
  std::uint32_t tmst = 0;  // the concentrator's counter (us) at which to transmit
  SteadyTime at{};         // our estimate of when that is
  double frequency = 0.0;  // MHz
  std::string datr;
};
// RX1 opens `delay` after the uplink's end (tmst), on its frequency and data rate; RX2 one second
// later on 869.525 MHz SF12BW125. `receivedAt` is when the uplink's datagram arrived (its tmst).
Window rx1Window(std::uint32_t tmst, SteadyTime receivedAt, double frequency, std::string_view datr,
                 std::chrono::seconds delay = kReceiveDelay1);
Window rx2Window(std::uint32_t tmst, SteadyTime receivedAt, std::chrono::seconds delay = kReceiveDelay1,
                 std::string_view datr = kRx2Datr);
// EU868 data rates: DR0..DR5 = SF12..SF7 BW125, DR6 = SF7BW250. nullopt for anything else.
std::optional<int> eu868DataRate(std::string_view datr);
std::string eu868Datr(int dr);
// RX1's data rate: the uplink's lowered by RX1DROffset (EU868: not below DR0).
std::string rx1Datr(std::string_view uplinkDatr, int offset);
// Whether a PULL_RESP sent now reaches the forwarder `lead` before the window.
inline bool canMeet(const Window& w, SteadyTime now, std::chrono::milliseconds lead) {
  return now + lead <= w.at;
}

// ---- frames ----
// An uplink's FOpts MAC commands the gateway answers (parsing stops at an unknown CID).
struct UplinkMac {
  bool linkCheckReq = false;
  bool devStatusAns = false;
  std::uint8_t battery = 0;
  std::int8_t devStatusMargin = 0;
};
UplinkMac parseUplinkMac(std::span<const std::uint8_t> fopts);
// LinkCheckAns margin: the uplink's SNR above the demodulation floor of its spreading factor
// (SF7 -7.5 dB ... SF12 -20 dB), 0..254.
std::uint8_t linkMargin(double snr, int sf);

struct DataDown {
  std::uint32_t devAddr = 0;
  std::uint32_t fcnt = 0;
  bool confirmed = false;  // MType 101 (else 011)
  bool ack = false;
  std::vector<std::uint8_t> fopts;  // at most 15 bytes
  bool hasPort = false;
  std::uint8_t fport = 0;
  std::vector<std::uint8_t> payload;  // plaintext
};
// MHDR | DevAddr | FCtrl | FCnt | FOpts | [FPort | FRMPayload] | MIC, as a network server builds it.
std::optional<std::vector<std::uint8_t>> buildDataDown(Crypto& crypto, const Key& nwkSKey, const Key& appSKey,
                                                       const DataDown& d);

struct TxParams {
  std::uint32_t tmst = 0;
  double frequency = 0.0;
  std::string datr;
  int power = 14;  // dBm
};
// PULL_RESP: version | token | 0x03 | {"txpk":{"imme":false,"tmst":..,"freq":..,"rfch":0,"powe":..,
// "modu":"LORA","datr":..,"codr":"4/5","ipol":true,"size":..,"data":..}}
std::vector<std::uint8_t> buildPullResp(std::uint8_t version, std::uint16_t token, const TxParams& tx,
                                        std::span<const std::uint8_t> phy);

// ---- FCntDown state file ----
//   citygate-lora-fcntdown 1
//   device <id> <devaddr> <kcv> <reserved>   every counter from <reserved> on is unused
//   crc32 <8 hex digits>                     (the frame: state_file.hpp)
struct FcntDownRecord {
  std::string id;
  std::uint32_t devAddr = 0;
  std::uint32_t keyCheck = 0;
  std::uint32_t reserved = 0;
};
std::string encodeFcntDown(const std::vector<FcntDownRecord>& records);
std::optional<std::vector<FcntDownRecord>> decodeFcntDown(std::string_view text, std::string* why);
inline constexpr std::uint32_t kFcntDownReserve = 256;

// ---- the scheduler ----
struct DownlinkOptions {
  int txPower = 14;                    // dBm
  std::size_t queueDepth = 8;          // application downlinks waiting per device
  std::chrono::milliseconds lead{50};  // a PULL_RESP must reach the forwarder this early
  std::chrono::milliseconds txAckTimeout{3000};
};

struct DownlinkDevice {
  std::string id;
  std::uint32_t devAddr = 0;
  std::string devEui;  // upper case, or empty
  Key nwkSKey;
  Key appSKey;
  std::uint32_t keyCheck = 0;
  // Receive windows of data downlinks: the defaults, or what an OTAA device was told in its join-accept.
  std::chrono::seconds rx1Delay{1};
  std::uint8_t rx1DrOffset = 0;
  std::string rx2Datr{kRx2Datr};
};

// An accepted uplink, with its best reception (after the dedup window).
struct AcceptedUplink {
  std::size_t device = 0;
  std::uint64_t gatewayEui = 0;
  std::uint8_t version = 2;
  bool hasTmst = false;
  std::uint32_t tmst = 0;
  SteadyTime receivedAt{};
  double frequency = 0.0;
  std::string datr;
  double snr = 0.0;
  bool confirmed = false;
  bool ackBit = false;  // the uplink acknowledges our last confirmed downlink
  UplinkMac mac;
  // A join-request: the join-accept to send (JOIN_ACCEPT_DELAY1/2), and the generation of the
  // joins' state that must be durable first (FrameProcessor::joinGeneration).
  bool join = false;
  std::vector<std::uint8_t> joinAccept;
  std::uint64_t joinGeneration = 0;
};

struct Tx {
  std::uint64_t gatewayEui = 0;
  std::vector<std::uint8_t> datagram;
};

struct DownlinkCounters {
  std::uint64_t sent = 0;  // PULL_RESP sent
  std::uint64_t rx1 = 0;
  std::uint64_t rx2 = 0;
  std::uint64_t retriedRx2 = 0;
  std::uint64_t acks = 0;          // downlinks carrying the ACK bit
  std::uint64_t linkCheckAns = 0;  // LinkCheckAns answered
  std::uint64_t appQueued = 0;
  std::uint64_t appSent = 0;
  std::uint64_t confirmedAcked = 0;  // confirmed application downlinks the device acknowledged
  std::uint64_t txAckUnknownToken = 0;
  std::uint64_t txAckMissing = 0;  // no TX_ACK within txAckTimeout (protocol v1 sends none): fate unknown
  std::uint64_t joinAccepts = 0;   // join-accepts sent
  std::uint64_t devStatusReq = 0;  // DevStatusReq sent in FOpts
  std::array<std::uint64_t, kTxAckErrorCount> txAck{};
  std::array<std::uint64_t, kDropReasonCount> dropped{};
};

class Downlinks {
 public:
  static constexpr std::size_t kMaxInflight = 256;

  Downlinks(std::vector<DownlinkDevice> devices, DownlinkOptions options, Crypto& crypto);

  // An OTAA device joined: its new session (FCntDown starts at 0; persistWanted() asks for the
  // reservation to be written before a data downlink uses it) and receive windows.
  void setSession(std::size_t device, std::uint32_t devAddr, const Key& nwkSKey, const Key& appSKey,
                  std::uint32_t keyCheck, std::chrono::seconds rx1Delay, std::uint8_t rx1DrOffset, std::string rx2Datr);
  // DevStatusReq in the FOpts of the device's next downlink (one is sent after its next uplink).
  EnqueueResult requestDevStatus(std::string_view device);

  // A PULL_DATA: the gateway can be sent downlinks (the caller keeps its address).
  void notePull(std::uint64_t gatewayEui);
  bool hasPull(std::uint64_t gatewayEui) const;

  // What to send for an accepted uplink, if anything: for a join-request (up.join) its join-accept,
  // at JOIN_ACCEPT_DELAY1 (5 s, RX1) or 2 (6 s, RX2). A refusal is counted; `why` says it.
  std::optional<Tx> onUplink(const AcceptedUplink& up, SteadyTime now, std::string* why = nullptr);
  // A TX_ACK: counted by error; an RX1 transmission refused TOO_LATE / COLLISION_PACKET gives the
  // RX2 retry, when it can be met.
  std::optional<Tx> onTxAck(std::uint64_t gatewayEui, std::uint16_t token, TxAckError error, SteadyTime now,
                            std::string* why = nullptr);
  // A downlink the caller gave up (counted by reason).
  void countDrop(DropReason r) { ++counters_.dropped[static_cast<std::size_t>(r)]; }
  // A PULL_RESP the caller could not send.
  void sendFailed(const Tx& tx);
  // Forgets transmissions whose TX_ACK never came (counted as txAckMissing).
  void expire(SteadyTime now);

  // Application downlinks (class A: sent after the device's next uplink). `device` is a DevAddr
  // (8 hex digits) or a DevEUI (16) or a device id.
  EnqueueResult enqueue(std::string_view device, std::uint8_t fport, std::span<const std::uint8_t> bytes,
                        bool confirmed);
  std::size_t queued(std::size_t device) const { return devices_[device].queue.size(); }

  // FCntDown persistence.
  void restore(const std::vector<FcntDownRecord>& records);
  std::vector<FcntDownRecord> reservations() const;  // what to write: next + kFcntDownReserve
  void markPersisted(const std::vector<FcntDownRecord>& written);
  bool persistWanted() const { return persistWanted_; }
  std::uint32_t nextFcntDown(std::size_t device) const { return devices_[device].next; }

  const DownlinkCounters& counters() const { return counters_; }
  DutyCycle& dutyCycle() { return duty_; }

 private:
  struct AppDownlink {
    std::uint8_t fport = 0;
    std::vector<std::uint8_t> bytes;
    bool confirmed = false;
  };
  struct Device {
    DownlinkDevice spec;
    std::uint32_t next = 0;      // the next FCntDown
    std::uint32_t reserved = 0;  // durable: counters below it may be handed out
    std::deque<AppDownlink> queue;
    bool awaitingAck = false;   // a confirmed application downlink was sent
    bool devStatusReq = false;  // a DevStatusReq is to go with the next downlink
  };
  // The first window of `windows` that can be met and whose sub-band allows the airtime.
  struct Choice {
    const Window* window = nullptr;
    SubBand band = SubBand::G;
    std::chrono::microseconds airtime{0};
    DropReason refused = DropReason::TooLate;
    std::string detail;
  };
  Choice choose(const AcceptedUplink& up, const std::array<Window, 2>& windows, std::size_t length, SteadyTime now);
  std::optional<Tx> launch(const AcceptedUplink& up, const Choice& c, const Window& rx2, std::vector<std::uint8_t> phy,
                           SteadyTime now);
  std::optional<Tx> joinAccept(const AcceptedUplink& up, SteadyTime now, std::string* why);
  struct Inflight {
    std::uint16_t token = 0;
    std::uint64_t gatewayEui = 0;
    std::uint8_t version = 2;
    SteadyTime sentAt{};
    Window window;
    Window rx2;
    std::vector<std::uint8_t> phy;
    SubBand band = SubBand::G;
    std::chrono::microseconds airtime{0};
  };
  std::optional<Tx> send(const Inflight& f, SteadyTime now);
  std::optional<Tx> drop(DropReason r, std::string* why, std::string detail);
  std::optional<std::size_t> findDevice(std::string_view key) const;

  DownlinkOptions options_;
  Crypto& crypto_;
  std::vector<Device> devices_;
  std::vector<std::uint64_t> pulls_;
  std::deque<Inflight> inflight_;
  DutyCycle duty_;
  DownlinkCounters counters_;
  std::uint16_t token_ = 0x5A00;
  bool persistWanted_ = true;  // the reservations are written at start
};

}  // namespace citygate::lora
