// LoraSource: the Semtech UDP packet-forwarder server, on the executor (boost::asio UDP, never
// blocking: the socket is non-blocking and every wait is asynchronous).
//
// PUSH_DATA is acknowledged (PUSH_ACK) the moment its header is valid, before its JSON is even
// parsed; PULL_DATA gets PULL_ACK. The rxpk go to the FrameProcessor; stat reports and traffic
// counters are kept per concentrator (at most kMaxConcentrators gateway EUIs). A burst is drained
// up to kBurst datagrams per wake-up, then the executor serves others.
//
// Frame counters (fcnt.hpp, README.md): at start, the RAM copy (runtime_dir/lora-fcnt-<hash>.ram, trusted
// only with the running kernel's boot id) and the storage copy (state_dir/lora-fcnt.state) are read
// and merged by FrameProcessor::restore; the storage copy is written back as "clean 0" unless it
// says exactly that already, and the RAM copy is rewritten whole. Then every accepted frame
// rewrites its device's RAM slot in place (one pwrite on tmpfs, on the executor, before the
// frame's reading can leave); the storage copy is written only when a device runs `resume margin`
// ahead of it (its readings wait for that write; on a core::FileWriter thread, never on the
// executor), and with "clean 1" at stop. A failed RAM write removes the RAM copy (a stale copy
// must never look exact; the storage rule still holds) and is retried at the next frame. A corrupt
// state file is set aside (renamed *.corrupt), logged, and visible in health; start() fails only
// when the storage copy cannot be written at all or the port cannot be bound.
//
// OTAA (join.hpp): the joins' state (state_dir/lora-otaa.state: JoinNonce, per device its session's
// derivation values and used DevNonces) is read at start before the frame counters (a device
// resumes its session without a rejoin), written on its own core::FileWriter thread after every
// accepted join-request, and a join-accept is sent only once the state naming its DevNonce and
// JoinNonce is durable. A damaged file is set aside like the counters' (devices join again).
#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/udp.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "citygate/v1/status.pb.h"
#include "core/clock.hpp"
#include "core/file_writer.hpp"
#include "core/result.hpp"
#include "inputs/lora/downlink.hpp"
#include "inputs/lora/frame_processor.hpp"
#include "inputs/lora/spec.hpp"

namespace spdlog {
class logger;
}

namespace citygate::lora {

struct SourceCounters {
  std::uint64_t datagrams = 0;
  std::uint64_t acksDropped = 0;
  std::uint64_t untracked = 0;
  std::uint64_t stateWrites = 0;
  std::uint64_t stateWriteErrors = 0;
  std::uint64_t receiveErrors = 0;
  std::uint64_t ramWrites = 0;       // slots written to the RAM copy
  std::uint64_t ramWriteErrors = 0;  // failed writes of the RAM copy (the copy is then removed)
  bool stateCorrupt = false;
};

class LoraSource : public std::enable_shared_from_this<LoraSource> {
 public:
  using Submit = FrameProcessor::Submit;
  static constexpr std::size_t kMaxConcentrators = 64;
  static constexpr std::size_t kBurst = 64;
  // The RAM copy's file: in runtimeDir, named after the storage copy (a runtime_dir shared by
  // mistake never mixes two gateways' counters).
  static std::string ramCopyPath(const std::string& runtimeDir, const std::string& statePath);

  // `clock` (time, the flush and persist timers) must outlive the source.
  LoraSource(boost::asio::any_io_executor executor, core::Clock& clock, LoraSpec spec, Submit submit,
             std::shared_ptr<spdlog::logger> log);
  ~LoraSource();

  Status start();
  // Closes the socket, publishes the frames still in their dedup window, writes the counters.
  void stop();

  // The bound port (the configured one, or the kernel's choice for port 0).
  std::uint16_t localPort() const;
  void fillHealth(citygate::v1::GatewayHealth& health) const;
  const SourceCounters& counters() const { return counters_; }
  const FrameProcessor* processor() const { return processor_.get(); }
  // Downlinks (lora.downlink.enabled; null otherwise). On the executor.
  const Downlinks* downlinks() const { return downlinks_.get(); }
  // An application downlink for a device (DevAddr, DevEUI or id), sent after its next uplink.
  // On the executor, after start().
  EnqueueResult enqueueDownlink(std::string_view device, std::uint8_t fport, std::span<const std::uint8_t> bytes,
                                bool confirmed);
  // A DevStatusReq for a device (DevAddr, DevEUI or id), sent with the downlink after its next
  // uplink; the DevStatusAns (battery, margin) shows in its DeviceHealth. On the executor.
  EnqueueResult requestDevStatus(std::string_view device);
  // Test seam: the state file's write (default core::writeFileAtomic); before start().
  void setStateWrite(core::FileWriter::WriteFn write) { stateWrite_ = std::move(write); }
  // Test seam: the kernel's boot id (default: /proc/sys/kernel/random/boot_id); before start().
  void setBootId(std::string bootId) { bootId_ = std::move(bootId); }

 private:
  struct Concentrator {
    std::uint64_t eui = 0;
    citygate::v1::ConcentratorHealth health;
  };
  class Visitor;

  void receive();
  void onReceive(const boost::system::error_code& ec, std::size_t n);
  void handleDatagram(std::size_t n);
  Concentrator* concentrator(std::uint64_t eui);
  void armFlushTimer();
  void onFlushTimer();
  void schedulePersist();
  void onPersistTimer();
  void persist();
  void onPersisted(const FcntState& written, const Status& st);
  bool persistNow(bool clean);
  bool recordPersist(const FcntState& written, const Status& st);
  void setStateAside(const std::string& why);
  std::optional<FcntRam> readRam();
  bool writeRamImage();
  void onCounter(std::size_t index);
  void dropRam(const std::string& why);
  void logSummary();
  Status startDownlinks(std::vector<DownlinkDevice> devices);
  void onUplink(const AcceptedUplink& up);
  void onTxAck(const UdpPacket& pkt);
  void sendTx(const Tx& tx);
  void persistFcntDown();
  Status startJoins();
  void persistJoins();
  void releaseJoins();
  void sendUplinkAnswer(const AcceptedUplink& up);

  boost::asio::any_io_executor executor_;
  core::Clock& clock_;
  LoraSpec spec_;
  Submit submit_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::ip::udp::socket socket_;
  boost::asio::ip::udp::endpoint sender_;
  std::unique_ptr<core::Timer> flushTimer_;
  std::unique_ptr<core::Timer> persistTimer_;
  std::optional<SteadyTime> flushArmedFor_;
  std::unique_ptr<FrameProcessor> processor_;
  core::FileWriter::WriteFn stateWrite_;
  std::unique_ptr<core::FileWriter> stateWriter_;
  bool persisting_ = false;        // a write of the counters is on the writer's thread
  bool persistingUrgent_ = false;  // ... one that readings wait for
  std::unique_ptr<json::Document> doc_;
  std::array<std::uint8_t, 65536> buffer_{};
  std::vector<Concentrator> concentrators_;
  SourceCounters counters_;
  bool stopped_ = false;
  std::optional<SteadyTime> lastPersistFailure_;  // none until a write of the state file fails
  std::string lastPersistError_;
  std::string bootId_;
  std::string ramPath_;  // empty: no RAM copy
  int ramFd_ = -1;       // the RAM copy, open for in-place slot writes
  RamSlot ramSlot_{};
  std::string lastRamError_;
  SteadyTime lastSummary_;  // set by start()
  std::unique_ptr<Crypto> downCrypto_;
  std::unique_ptr<Downlinks> downlinks_;
  std::vector<std::pair<std::uint64_t, boost::asio::ip::udp::endpoint>> pullAddrs_;  // per gateway EUI
  std::unique_ptr<core::FileWriter> downWriter_;
  bool downPersisting_ = false;
  std::uint64_t downWrites_ = 0;
  std::uint64_t downWriteErrors_ = 0;
  ReasonCounters summarised_{};
  // OTAA: the joins' state (state_dir/lora-otaa.state), and the join-accepts that wait for it to
  // be durable (at most one per device: a newer join of the device replaces its older one).
  std::unique_ptr<core::FileWriter> otaaWriter_;
  bool otaaPersisting_ = false;
  std::uint64_t otaaWrites_ = 0;
  std::uint64_t otaaWriteErrors_ = 0;
  bool otaaCorrupt_ = false;
  std::string lastOtaaError_;
  std::vector<AcceptedUplink> heldJoins_;
};

}  // namespace citygate::lora
