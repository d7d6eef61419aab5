#include "inputs/lora/source.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/socket_base.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "config/files.hpp"
#include "core/file_writer.hpp"
#include "core/hash.hpp"
#include "core/seq_store.hpp"

namespace citygate::lora {

namespace asio = boost::asio;
using asio::ip::udp;
namespace pb = citygate::v1;

namespace {
constexpr auto kSummaryEvery = std::chrono::seconds(60);
constexpr auto kPersistRetry = std::chrono::seconds(1);
}  // namespace

// Hands the rxpk of one PUSH_DATA to the processor, counting per concentrator.
class LoraSource::Visitor final : public PushVisitor {
 public:
  Visitor(FrameProcessor& p, std::uint64_t eui, pb::ConcentratorHealth* c, SteadyTime now, WallTime wall)
      : p_(p), eui_(eui), c_(c), now_(now), wall_(wall) {}
  void onRxpk(const RxPacket& rx) override {
    if (c_ != nullptr) c_->set_rxpk(c_->rxpk() + 1);
    (void)p_.onRxpk(rx, eui_, now_, wall_);
  }
  void onRxpkRejected(Reason why) override { p_.count(why); }

 private:
  FrameProcessor& p_;
  std::uint64_t eui_;
  pb::ConcentratorHealth* c_;
  SteadyTime now_;
  WallTime wall_;
};

std::string LoraSource::ramCopyPath(const std::string& runtimeDir, const std::string& statePath) {
  return fmt::format("{}/lora-fcnt-{:016x}.ram", runtimeDir, core::fnv1a64(statePath));
}

LoraSource::LoraSource(asio::any_io_executor executor, core::Clock& clock, LoraSpec spec, Submit submit,
                       std::shared_ptr<spdlog::logger> log)
    : executor_(executor),
      clock_(clock),
      spec_(std::move(spec)),
      submit_(std::move(submit)),
      log_(std::move(log)),
      socket_(executor),
      flushTimer_(clock_.makeTimer()),
      persistTimer_(clock_.makeTimer()),
      doc_(std::make_unique<json::Document>()) {}

LoraSource::~LoraSource() {
  if (ramFd_ >= 0) ::close(ramFd_);
}

Status LoraSource::start() {
  std::string why;
  auto crypto = Crypto::create(&why);
  if (!crypto) return Error{"lora: " + why};
  ProcessorOptions po;
  po.dedupWindow = spec_.dedupWindow;
  po.maxFcntGap = spec_.maxFcntGap;
  po.resumeMargin = spec_.resumeMargin;
  po.join = spec_.join;
  const std::size_t devices = spec_.devices.size();
  processor_ = std::make_unique<FrameProcessor>(std::move(spec_.devices), po, std::move(crypto), submit_, log_);
  spec_.devices.clear();
  // OTAA sessions first: the frame counters are matched to the session's DevAddr and keys.
  if (!spec_.otaaPath.empty()) {
    if (auto st = startJoins(); !st) return st;
  }
  std::vector<DownlinkDevice> downDevices;
  if (spec_.downlink) {
    for (std::size_t i = 0; i < devices; ++i) {
      const DeviceSpec& d = processor_->device(i);
      DownlinkDevice dd;
      dd.id = d.sensor->id;
      dd.devAddr = d.devAddr;
      dd.devEui = d.devEui;
      dd.nwkSKey = d.nwkSKey;
      dd.appSKey = d.appSKey;
      dd.keyCheck = processor_->keyCheck(i);
      if (d.otaa && spec_.join) {
        dd.rx1Delay = std::chrono::seconds(spec_.join->rxDelay);
        dd.rx1DrOffset = spec_.join->rx1DrOffset;
        dd.rx2Datr = eu868Datr(spec_.join->rx2DataRate);
      }
      downDevices.push_back(std::move(dd));
    }
  }

  std::optional<FcntState> storage;
  std::string storageText;
  if (!spec_.statePath.empty()) {
    config::SmallFile in = config::readSmallFile(spec_.statePath, config::kMaxStateBytes);
    if (in.ok()) {
      std::string error;
      if (auto st = decodeFcntState(in.bytes, &error)) {
        storage = std::move(*st);
        storageText = std::move(in.bytes);
      } else {
        setStateAside(error);
      }
    } else if (in.fault == config::FileFault::NotRegular || in.fault == config::FileFault::TooLarge) {
      // Not a state file this daemon wrote (a FIFO, a link to a device, a huge file): set aside
      // like a damaged one, never waited on or read without bound.
      setStateAside(in.error);
    } else if (in.fault != config::FileFault::Missing) {
      return Error{"lora: cannot read " + spec_.statePath + ": " + in.error};
    }
  }
  const std::optional<FcntRam> ram = readRam();
  if (storage || ram) {
    const auto r = processor_->restore(storage ? &*storage : nullptr, ram ? &*ram : nullptr);
    log_->info(
        "frame counters restored: {} exact from the RAM copy, {} exact from {} (clean stop), {} from {} + {} "
        "(unclean stop and no RAM copy of this boot: a power cut)",
        r.exactFromRam, r.exactFromStorage, spec_.statePath, r.withMargin, spec_.statePath, spec_.resumeMargin);
  }
  if (!spec_.statePath.empty()) {
    // The storage copy, written from now on by its own thread; it must say "clean 0" before any
    // frame is accepted (a power cut must add the margin). Not rewritten when it says exactly
    // that already (a crash loop does not wear the card).
    stateWriter_ = std::make_unique<core::FileWriter>(executor_, spec_.statePath, 0600, stateWrite_);
    if (auto st = stateWriter_->start(); !st) return Error{"lora: " + st.error()};
    const FcntState now = processor_->snapshot(false);
    if (std::string text = encodeFcntState(now); text == storageText) {
      processor_->markPersisted(now);
    } else if (!recordPersist(now, stateWriter_->writeNow(text))) {
      return Error{"lora: cannot write " + spec_.statePath + ": " + lastPersistError_};
    }
  }
  if (!ramPath_.empty()) {
    writeRamImage();  // a failure is logged; the storage rule still holds
    processor_->setCounterHook(std::bind_front(&LoraSource::onCounter, this));
  }

  if (spec_.downlink) {
    if (auto st = startDownlinks(std::move(downDevices)); !st) return st;
  }

  boost::system::error_code ec;
  const auto address = asio::ip::make_address(spec_.bind, ec);
  if (ec) return Error{"lora: bad bind address '" + spec_.bind + "': " + ec.message()};
  const udp::endpoint ep(address, spec_.port);
  socket_.open(ep.protocol(), ec);
  if (!ec) socket_.non_blocking(true, ec);
  if (!ec) socket_.bind(ep, ec);
  if (ec) {
    socket_.close(ec);
    return Error{"lora: cannot listen on " + spec_.bind + ":" + std::to_string(spec_.port) + " (udp): " + ec.message()};
  }
  // Room for bursts (a flood must not push valid frames out of the kernel's queue); best effort.
  boost::system::error_code ignored;
  socket_.set_option(asio::socket_base::receive_buffer_size(4 << 20), ignored);
  log_->info("packet forwarder on {}:{} (udp): {} device(s), dedup {} ms", spec_.bind, localPort(), devices,
             spec_.dedupWindow.count());
  lastSummary_ = clock_.steadyNow();
  receive();
  schedulePersist();
  return Ok{};
}

void LoraSource::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  socket_.close(ec);
  flushTimer_->cancel();
  persistTimer_->cancel();
  if (processor_) {
    processor_->flushAll();
    // The clean stop's write, after any write in progress: a source started next (a config
    // apply) reads it at once.
    if (stateWriter_ && persistNow(true)) log_->info("frame counters written to {}", spec_.statePath);
    if (otaaWriter_ && processor_->joinsDirty()) {
      if (auto st = otaaWriter_->writeNow(encodeOtaaState(processor_->joinSnapshot())); !st) {
        log_->error("OTAA sessions not saved at stop: {}", st.error());
      }
    }
  }
  if (stateWriter_) stateWriter_->stop();
  if (otaaWriter_) otaaWriter_->stop();
  if (downWriter_) downWriter_->stop();
  if (ramFd_ >= 0) ::close(std::exchange(ramFd_, -1));
}

std::uint16_t LoraSource::localPort() const {
  boost::system::error_code ec;
  const auto ep = socket_.local_endpoint(ec);
  return ec ? spec_.port : ep.port();
}

void LoraSource::receive() {
  socket_.async_receive_from(asio::buffer(buffer_), sender_,
                             std::bind_front(&LoraSource::onReceive, shared_from_this()));
}

void LoraSource::onReceive(const boost::system::error_code& ec, std::size_t n) {
  if (stopped_ || ec == asio::error::operation_aborted) return;
  if (ec) {
    // ICMP errors surface here on Linux (connection_refused after an ACK to a closed port).
    ++counters_.receiveErrors;
    log_->debug("receive: {}", ec.message());
  } else {
    handleDatagram(n);
    // Drain what is already queued, up to a burst, without another trip through the reactor.
    for (std::size_t i = 1; i < kBurst; ++i) {
      boost::system::error_code e;
      const std::size_t m = socket_.receive_from(asio::buffer(buffer_), sender_, 0, e);
      if (e) break;
      handleDatagram(m);
    }
  }
  // An urgent save goes at once, unless a save failed less than kPersistRetry ago (a machine
  // booted a minute ago has had no failure "long ago": the first failure is an optional).
  if (processor_->urgentPersist() &&
      (!lastPersistFailure_ || clock_.steadyNow() - *lastPersistFailure_ >= kPersistRetry))
    persist();
  if (processor_->joinsDirty()) persistJoins();
  armFlushTimer();
  receive();
}

LoraSource::Concentrator* LoraSource::concentrator(std::uint64_t eui) {
  for (auto& c : concentrators_) {
    if (c.eui == eui) return &c;
  }
  if (concentrators_.size() >= kMaxConcentrators) {
    ++counters_.untracked;
    return nullptr;
  }
  Concentrator& c = concentrators_.emplace_back();
  c.eui = eui;
  c.health.set_gateway_eui(formatEui(eui));
  log_->info("concentrator {} at {}", c.health.gateway_eui(), sender_.address().to_string());
  return &c;
}

void LoraSource::handleDatagram(std::size_t n) {
  ++counters_.datagrams;
  const std::span<const std::uint8_t> d(buffer_.data(), n);
  UdpPacket pkt;
  if (auto why = parseDatagram(d, pkt)) {
    processor_->count(*why);
    return;
  }
  const WallTime wall = clock_.wallNow();
  const SteadyTime now = clock_.steadyNow();
  if (pkt.type == PacketType::PushData || pkt.type == PacketType::PullData) {
    // Acknowledge at once, before any processing (the forwarder measures ackr from this).
    const auto ack = makeAck(pkt);
    boost::system::error_code ec;
    socket_.send_to(asio::buffer(ack), sender_, 0, ec);
    if (ec) ++counters_.acksDropped;
  }
  Concentrator* c = concentrator(pkt.gatewayEui);
  pb::ConcentratorHealth* h = c != nullptr ? &c->health : nullptr;
  if (h != nullptr) {
    toTimestamp(wall, h->mutable_last_seen());
    h->set_protocol_version(pkt.version);
  }
  switch (pkt.type) {
    case PacketType::PullData:
      if (h != nullptr) h->set_pull_data(h->pull_data() + 1);
      if (downlinks_ && c != nullptr) {
        // The address PULL_RESP goes to (NAT may move it: the newest wins).
        auto it = std::find_if(pullAddrs_.begin(), pullAddrs_.end(),
                               [&](const auto& p) { return p.first == pkt.gatewayEui; });
        if (it == pullAddrs_.end()) {
          pullAddrs_.emplace_back(pkt.gatewayEui, sender_);
        } else {
          it->second = sender_;
        }
        downlinks_->notePull(pkt.gatewayEui);
      }
      return;
    case PacketType::TxAck:
      if (h != nullptr) h->set_tx_ack(h->tx_ack() + 1);
      if (downlinks_) onTxAck(pkt);
      return;
    default:
      break;
  }
  if (h != nullptr) h->set_push_data(h->push_data() + 1);
  Visitor visitor(*processor_, pkt.gatewayEui, h, now, wall);
  StatReport stat;
  if (auto why = parsePushData(pkt.body, *doc_, visitor, stat)) processor_->count(*why);
  if (stat.present && h != nullptr) {
    toTimestamp(wall, h->mutable_last_stat_at());
    h->set_rxnb(stat.rxnb);
    h->set_rxok(stat.rxok);
    h->set_rxfw(stat.rxfw);
    h->set_ackr(stat.ackr);
    h->set_dwnb(stat.dwnb);
    h->set_txnb(stat.txnb);
    if (stat.hasTemp) h->set_temperature(stat.temp);
  }
}

void LoraSource::armFlushTimer() {
  const auto next = processor_->nextDeadline();
  if (!next) return;
  if (flushArmedFor_ && *flushArmedFor_ <= *next) return;
  flushArmedFor_ = *next;
  flushTimer_->start(*next - clock_.steadyNow(), std::bind_front(&LoraSource::onFlushTimer, shared_from_this()));
}

void LoraSource::onFlushTimer() {
  if (stopped_) return;
  flushArmedFor_.reset();
  // A counter that must be durable before its reading goes out is being written: the write's
  // completion flushes (onPersisted).
  if (persisting_ && persistingUrgent_) return;
  processor_->flushDue(clock_.steadyNow());
  armFlushTimer();
}

void LoraSource::schedulePersist() {
  persistTimer_->start(spec_.persistInterval, std::bind_front(&LoraSource::onPersistTimer, shared_from_this()));
}

void LoraSource::onPersistTimer() {
  if (stopped_) return;
  // Nothing is written periodically: this only retries a failed urgent write.
  if (processor_->urgentPersist() && stateWriter_) persist();
  if (clock_.steadyNow() - lastSummary_ >= kSummaryEvery) logSummary();
  if (downlinks_) {
    downlinks_->expire(clock_.steadyNow());
    if (downlinks_->persistWanted()) persistFcntDown();
  }
  if (processor_->joinsDirty()) persistJoins();  // retries a failed write
  releaseJoins();                                // and gives up on join-accepts whose RX2 has passed
  schedulePersist();
}

// Unreadable counters: set the file aside for inspection and start afresh; every device's first
// frame sets its counter again (logged, and flagged in health).
void LoraSource::setStateAside(const std::string& why) {
  counters_.stateCorrupt = true;
  const std::string aside = spec_.statePath + ".corrupt";
  std::rename(spec_.statePath.c_str(), aside.c_str());
  log_->error("{}: {}; moved to {}; frame counters start afresh", spec_.statePath, why, aside);
}

// Hands the counters to the state writer's thread; the executor goes on. One write at a time:
// what changes meanwhile is written when it completes (onPersisted).
void LoraSource::persist() {
  if (!stateWriter_ || persisting_) return;
  persisting_ = true;
  persistingUrgent_ = processor_->urgentPersist();
  auto state = std::make_shared<FcntState>(processor_->snapshot(false));
  std::string text = encodeFcntState(*state);
  std::weak_ptr<LoraSource> weak = weak_from_this();
  stateWriter_->write(std::move(text), [weak, state](const Status& st) {
    if (auto self = weak.lock()) self->onPersisted(*state, st);
  });
}

void LoraSource::onPersisted(const FcntState& written, const Status& st) {
  persisting_ = false;
  const bool urgent = std::exchange(persistingUrgent_, false);
  if (stopped_) return;
  recordPersist(written, st);
  if (urgent) {
    processor_->flushDue(clock_.steadyNow());  // held while the write was in flight
    armFlushTimer();
  }
  // A counter ran ahead again while this one was written: at once (not after a failure: the
  // next frame or the timer retries).
  if (st && processor_->urgentPersist()) persist();
}

// Start-up and clean stop: written on this thread (before the socket serves, or after it closed).
bool LoraSource::persistNow(bool clean) {
  const FcntState state = processor_->snapshot(clean);
  return recordPersist(state, stateWriter_->writeNow(encodeFcntState(state)));
}

bool LoraSource::recordPersist(const FcntState& written, const Status& st) {
  if (!st) {
    ++counters_.stateWriteErrors;
    lastPersistFailure_ = clock_.steadyNow();
    if (st.error() != lastPersistError_) log_->error("frame counters not saved: {}", st.error());
    lastPersistError_ = st.error();
    return false;
  }
  if (!lastPersistError_.empty()) log_->info("frame counters saved again to {}", spec_.statePath);
  lastPersistError_.clear();
  ++counters_.stateWrites;
  processor_->markPersisted(written);
  return true;
}

// The RAM copy of this boot, if there is one; anything else (another boot, damaged header) is
// logged and ignored: the storage copy's rule applies.
std::optional<FcntRam> LoraSource::readRam() {
  if (spec_.runtimeDir.empty()) return std::nullopt;
  // A directory others can write to (a /dev/shm name planted by another user) could hold a copy
  // with low counters: a replay window. Such a directory is not used at all.
  if (const std::string why = config::preparePrivateDir(spec_.runtimeDir); !why.empty()) {
    log_->warn("{}: no RAM copy of the frame counters (a kill -9 costs up to {} frames per device)", why,
               spec_.resumeMargin);
    return std::nullopt;
  }
  ramPath_ = ramCopyPath(spec_.runtimeDir, spec_.statePath);
  if (bootId_.empty()) bootId_ = config::kernelBootId();
  if (bootId_.empty()) {
    log_->warn("the kernel's boot id is unknown: no RAM copy of the frame counters");
    ramPath_.clear();
    return std::nullopt;
  }
  const config::SmallFile in = config::readSmallFile(ramPath_, config::kMaxStateBytes);
  if (!in.ok()) {
    if (in.fault != config::FileFault::Missing) log_->warn("{}: {}; not used", ramPath_, in.error);
    return std::nullopt;
  }
  std::string why;
  auto ram = decodeFcntRam(in.bytes, bootId_, &why);
  if (!ram) {
    log_->info("{}: {}; not used", ramPath_, why);
    return std::nullopt;
  }
  if (ram->damagedSlots > 0) {
    log_->warn("{}: {} damaged slot(s): those devices resume from {}", ramPath_, ram->damagedSlots, spec_.statePath);
  }
  return ram;
}

// The whole RAM copy, atomically (temp + rename: tmpfs, no fsync), then kept open for the
// in-place writes of single slots.
bool LoraSource::writeRamImage() {
  if (ramFd_ >= 0) ::close(std::exchange(ramFd_, -1));
  std::vector<FcntSlotView> slots;
  slots.reserve(processor_->deviceCount());
  for (std::size_t i = 0; i < processor_->deviceCount(); ++i) slots.push_back(processor_->slotView(i));
  const std::string image = encodeFcntRam(bootId_, slots);
  const std::string tmp = ramPath_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    dropRam("open " + tmp + ": " + std::strerror(errno));
    return false;
  }
  const ssize_t n = ::write(fd, image.data(), image.size());
  const int err = errno;
  if (n != static_cast<ssize_t>(image.size()) || ::rename(tmp.c_str(), ramPath_.c_str()) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    dropRam("write " + ramPath_ + ": " + (n < 0 ? std::strerror(err) : "short write or rename failed"));
    return false;
  }
  ramFd_ = fd;
  if (!lastRamError_.empty()) log_->info("RAM copy of the frame counters written again to {}", ramPath_);
  lastRamError_.clear();
  return true;
}

// An accepted frame: its device's slot, in place, before the frame's reading can leave.
void LoraSource::onCounter(std::size_t index) {
  if (ramFd_ < 0) {
    writeRamImage();  // removed after a failure: the whole copy again
    return;
  }
  encodeFcntRamSlot(processor_->slotView(index), ramSlot_);
  const ssize_t n = ::pwrite(ramFd_, ramSlot_.data(), ramSlot_.size(), static_cast<off_t>(fcntRamSlotOffset(index)));
  if (n != static_cast<ssize_t>(ramSlot_.size())) {
    dropRam(n < 0 ? std::strerror(errno) : "short write");
    return;
  }
  ++counters_.ramWrites;
}

// A RAM copy that missed a frame must not be found at the next start (it would look exact): it
// is removed; the storage copy's margin rule covers a crash until it is written again.
void LoraSource::dropRam(const std::string& why) {
  ++counters_.ramWriteErrors;
  if (ramFd_ >= 0) ::close(std::exchange(ramFd_, -1));
  ::unlink(ramPath_.c_str());
  if (why != lastRamError_) {
    log_->error(
        "RAM copy of the frame counters not written ({}); removed: until it is written again, a crash "
        "costs up to {} frames per device",
        why, spec_.resumeMargin);
  }
  lastRamError_ = why;
}

void LoraSource::logSummary() {
  lastSummary_ = clock_.steadyNow();
  const auto& now = processor_->counters().rejected;
  std::string text;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < kReasonCount; ++i) {
    const std::uint64_t d = now[i] - summarised_[i];
    if (d == 0) continue;
    total += d;
    text += (text.empty() ? "" : ", ") + std::string(kReasonNames[i]) + " " + std::to_string(d);
  }
  summarised_ = now;
  if (total > 0) log_->warn("{} datagram(s)/frame(s) rejected in the last minute: {}", total, text);
}

// ---- downlinks ----

Status LoraSource::startDownlinks(std::vector<DownlinkDevice> devices) {
  std::string why;
  downCrypto_ = Crypto::create(&why);
  if (!downCrypto_) return Error{"lora: " + why};
  DownlinkOptions o;
  o.txPower = spec_.txPower;
  o.queueDepth = spec_.queueDepth;
  downlinks_ = std::make_unique<Downlinks>(std::move(devices), o, *downCrypto_);
  if (spec_.fcntDownPath.empty()) return Error{"lora: downlinks need state_dir (FCntDown must survive restarts)"};
  // The reservations are written before any downlink can be built: a counter is never handed out
  // twice, whatever stops this process.
  config::SmallFile in = config::readSmallFile(spec_.fcntDownPath, config::kMaxStateBytes);
  if (in.ok()) {
    std::string error;
    if (auto records = decodeFcntDown(in.bytes, &error)) {
      downlinks_->restore(*records);
    } else {
      return Error{
          "lora: " + spec_.fcntDownPath + ": " + error +
          " (FCntDown cannot be resumed safely; move the file aside only if every device rejoins or is re-keyed)"};
    }
  } else if (in.fault != config::FileFault::Missing) {
    return Error{"lora: cannot read " + spec_.fcntDownPath + ": " + in.error};
  } else {
    downlinks_->restore({});
  }
  downWriter_ = std::make_unique<core::FileWriter>(executor_, spec_.fcntDownPath, 0600, stateWrite_);
  if (auto st = downWriter_->start(); !st) return Error{"lora: " + st.error()};
  const auto reserved = downlinks_->reservations();
  if (auto st = downWriter_->writeNow(encodeFcntDown(reserved)); !st) {
    return Error{"lora: cannot write " + spec_.fcntDownPath + ": " + st.error()};
  }
  ++downWrites_;
  downlinks_->markPersisted(reserved);
  processor_->setUplinkHook(std::bind_front(&LoraSource::onUplink, this));
  log_->info("downlinks on (class A, EU868): FCntDown reserved in {}", spec_.fcntDownPath);
  return Ok{};
}

EnqueueResult LoraSource::enqueueDownlink(std::string_view device, std::uint8_t fport,
                                          std::span<const std::uint8_t> bytes, bool confirmed) {
  if (!downlinks_) return EnqueueResult::Disabled;
  return downlinks_->enqueue(device, fport, bytes, confirmed);
}

EnqueueResult LoraSource::requestDevStatus(std::string_view device) {
  if (!downlinks_) return EnqueueResult::Disabled;
  return downlinks_->requestDevStatus(device);
}

void LoraSource::onUplink(const AcceptedUplink& upIn) {
  if (stopped_) return;
  AcceptedUplink up = upIn;
  for (const auto& c : concentrators_) {
    if (c.eui == up.gatewayEui) up.version = static_cast<std::uint8_t>(c.health.protocol_version());
  }
  if (up.join) {
    // The downlinks follow the session the processor switched to at the join-request.
    const DeviceSpec& d = processor_->device(up.device);
    const JoinSpec js = spec_.join.value_or(JoinSpec{});
    downlinks_->setSession(up.device, d.devAddr, d.nwkSKey, d.appSKey, processor_->keyCheck(up.device),
                           std::chrono::seconds(js.rxDelay), js.rx1DrOffset, eu868Datr(js.rx2DataRate));
    if (processor_->joinsPersistedGeneration() < up.joinGeneration) {
      // Its DevNonce and JoinNonce are not durable yet: the accept waits for the write (5 s away).
      std::erase_if(heldJoins_, [&](const AcceptedUplink& h) { return h.device == up.device; });
      heldJoins_.push_back(std::move(up));
      persistJoins();
      return;
    }
  }
  sendUplinkAnswer(up);
}

void LoraSource::sendUplinkAnswer(const AcceptedUplink& up) {
  std::string why;
  const auto tx = downlinks_->onUplink(up, clock_.steadyNow(), &why);
  if (tx) {
    sendTx(*tx);
  } else if (!why.empty()) {
    log_->warn("[{}] {} not sent: {}", processor_->device(up.device).sensor->id, up.join ? "join-accept" : "downlink",
               why);
  }
  if (downlinks_->persistWanted()) persistFcntDown();
}

// Join-accepts whose state is now durable go out; those whose RX2 has passed are dropped (counted).
void LoraSource::releaseJoins() {
  if (heldJoins_.empty()) return;
  const SteadyTime now = clock_.steadyNow();
  std::vector<AcceptedUplink> held;
  held.swap(heldJoins_);
  for (auto& up : held) {
    if (processor_->joinsPersistedGeneration() >= up.joinGeneration) {
      sendUplinkAnswer(up);
    } else if (now >= up.receivedAt + kJoinAcceptDelay1 + std::chrono::seconds(1)) {
      downlinks_->countDrop(DropReason::JoinStateUnsaved);
      log_->warn("[{}] join-accept not sent: {} could not be written in time", processor_->device(up.device).sensor->id,
                 spec_.otaaPath);
    } else {
      heldJoins_.push_back(std::move(up));
    }
  }
}

Status LoraSource::startJoins() {
  std::string text;
  config::SmallFile in = config::readSmallFile(spec_.otaaPath, config::kMaxStateBytes);
  auto aside = [&](const std::string& why) {
    otaaCorrupt_ = true;
    const std::string to = spec_.otaaPath + ".corrupt";
    std::rename(spec_.otaaPath.c_str(), to.c_str());
    log_->error("{}: {}; moved to {}; OTAA devices join again", spec_.otaaPath, why, to);
  };
  if (in.ok()) {
    std::string error;
    if (auto st = decodeOtaaState(in.bytes, &error)) {
      const auto r = processor_->restoreJoins(*st);
      log_->info("OTAA sessions restored from {}: {} resumed, {} void", spec_.otaaPath, r.sessions, r.void_);
      text = std::move(in.bytes);
    } else {
      aside(error);
    }
  } else if (in.fault == config::FileFault::NotRegular || in.fault == config::FileFault::TooLarge) {
    aside(in.error);
  } else if (in.fault != config::FileFault::Missing) {
    return Error{"lora: cannot read " + spec_.otaaPath + ": " + in.error};
  }
  otaaWriter_ = std::make_unique<core::FileWriter>(executor_, spec_.otaaPath, 0600, stateWrite_);
  if (auto st = otaaWriter_->start(); !st) return Error{"lora: " + st.error()};
  const std::string now = encodeOtaaState(processor_->joinSnapshot());
  if (now != text) {
    // Written before any join can be accepted: the JoinNonce must never go back.
    if (auto st = otaaWriter_->writeNow(now); !st) {
      return Error{"lora: cannot write " + spec_.otaaPath + ": " + st.error()};
    }
    ++otaaWrites_;
  }
  processor_->markJoinsPersisted(processor_->joinGeneration());
  return Ok{};
}

// The joins' state, on its writer's thread; join-accepts waiting for it are released when done.
void LoraSource::persistJoins() {
  if (!otaaWriter_ || otaaPersisting_ || !processor_->joinsDirty()) return;
  otaaPersisting_ = true;
  const std::uint64_t generation = processor_->joinGeneration();
  std::weak_ptr<LoraSource> weak = weak_from_this();
  otaaWriter_->write(encodeOtaaState(processor_->joinSnapshot()), [weak, generation](const Status& st) {
    auto self = weak.lock();
    if (!self) return;
    self->otaaPersisting_ = false;
    if (self->stopped_) return;
    if (!st) {
      ++self->otaaWriteErrors_;
      if (st.error() != self->lastOtaaError_) self->log_->error("OTAA sessions not saved: {}", st.error());
      self->lastOtaaError_ = st.error();
      return;  // retried by the persist timer
    }
    self->lastOtaaError_.clear();
    ++self->otaaWrites_;
    self->processor_->markJoinsPersisted(generation);
    self->releaseJoins();
    if (self->processor_->joinsDirty()) self->persistJoins();
  });
}

void LoraSource::onTxAck(const UdpPacket& pkt) {
  const auto error = parseTxAck(pkt.body, *doc_);
  if (!error) {
    processor_->count(Reason::BadTxAck);
    return;
  }
  const auto token = static_cast<std::uint16_t>((pkt.token[0] << 8) | pkt.token[1]);
  std::string why;
  const auto tx = downlinks_->onTxAck(pkt.gatewayEui, token, *error, clock_.steadyNow(), &why);
  if (*error != TxAckError::None) {
    log_->warn("TX_ACK {} from {}{}", txAckErrorName(*error), formatEui(pkt.gatewayEui),
               tx ? ": retried in RX2" : (why.empty() ? "" : ": downlink dropped (" + why + ")"));
  }
  if (tx) sendTx(*tx);
}

void LoraSource::sendTx(const Tx& tx) {
  const auto it =
      std::find_if(pullAddrs_.begin(), pullAddrs_.end(), [&](const auto& p) { return p.first == tx.gatewayEui; });
  boost::system::error_code ec;
  if (it != pullAddrs_.end()) socket_.send_to(asio::buffer(tx.datagram), it->second, 0, ec);
  if (it == pullAddrs_.end() || ec) {
    downlinks_->sendFailed(tx);
    log_->warn("PULL_RESP to {} not sent: {}", formatEui(tx.gatewayEui), ec ? ec.message() : "no address");
  }
}

// A new FCntDown reservation, on the writer's thread; downlinks go on below the old one meanwhile.
void LoraSource::persistFcntDown() {
  if (!downWriter_ || downPersisting_) return;
  downPersisting_ = true;
  auto reserved = std::make_shared<std::vector<FcntDownRecord>>(downlinks_->reservations());
  std::weak_ptr<LoraSource> weak = weak_from_this();
  downWriter_->write(encodeFcntDown(*reserved), [weak, reserved](const Status& st) {
    auto self = weak.lock();
    if (!self) return;
    self->downPersisting_ = false;
    if (self->stopped_) return;
    if (!st) {
      ++self->downWriteErrors_;
      self->log_->error("FCntDown reservation not saved: {}", st.error());
      return;  // retried by the persist timer
    }
    ++self->downWrites_;
    self->downlinks_->markPersisted(*reserved);
  });
}

void LoraSource::fillHealth(pb::GatewayHealth& health) const {
  auto* l = health.mutable_lora();
  for (const auto& c : concentrators_) *l->add_concentrators() = c.health;
  l->set_datagrams(counters_.datagrams);
  l->set_acks_dropped(counters_.acksDropped);
  l->set_concentrators_untracked(counters_.untracked);
  l->set_state_writes(counters_.stateWrites);
  l->set_state_write_errors(counters_.stateWriteErrors);
  l->set_state_corrupt(counters_.stateCorrupt);
  l->set_ram_writes(counters_.ramWrites);
  l->set_ram_write_errors(counters_.ramWriteErrors);
  if (!processor_) return;
  const auto& pc = processor_->counters();
  for (std::size_t i = 0; i < kReasonCount; ++i) {
    if (pc.rejected[i] != 0) (*l->mutable_rejected())[std::string(kReasonNames[i])] = pc.rejected[i];
  }
  l->set_frames_accepted(pc.framesAccepted);
  l->set_duplicates(pc.duplicates);
  l->set_readings(pc.readings);
  l->set_fcnt_resets(pc.fcntResets);
  l->set_dedup_evicted(pc.evicted);
  l->set_pending_frames(processor_->pendingFrames());
  l->set_heard_evicted(processor_->heard().evicted());
  l->set_heard_dev_addrs(static_cast<std::uint32_t>(processor_->heard().size()));
  l->set_joins_accepted(pc.joinsAccepted);
  l->set_retransmissions_acked(pc.retransmissionsAcked);
  l->set_otaa_state_writes(otaaWrites_);
  l->set_otaa_state_write_errors(otaaWriteErrors_);
  l->set_otaa_state_corrupt(otaaCorrupt_);
  processor_->fillHealth(*health.mutable_devices());
  if (!downlinks_) return;
  const DownlinkCounters& dc = downlinks_->counters();
  auto* d = l->mutable_downlink();
  d->set_pull_resp_sent(dc.sent);
  d->set_rx1(dc.rx1);
  d->set_rx2(dc.rx2);
  d->set_retried_rx2(dc.retriedRx2);
  for (std::size_t i = 0; i < kTxAckErrorCount; ++i) {
    if (dc.txAck[i] != 0) (*d->mutable_tx_ack())[std::string(kTxAckErrorNames[i])] = dc.txAck[i];
  }
  for (std::size_t i = 0; i < kDropReasonCount; ++i) {
    if (dc.dropped[i] != 0) (*d->mutable_dropped())[std::string(kDropReasonNames[i])] = dc.dropped[i];
  }
  d->set_acks(dc.acks);
  d->set_link_check_ans(dc.linkCheckAns);
  d->set_app_queued(dc.appQueued);
  d->set_app_sent(dc.appSent);
  d->set_tx_ack_missing(dc.txAckMissing);
  d->set_tx_ack_unknown_token(dc.txAckUnknownToken);
  d->set_gateways_pulling(pullAddrs_.size());
  d->set_fcnt_down_writes(downWrites_);
  d->set_fcnt_down_write_errors(downWriteErrors_);
  d->set_join_accepts(dc.joinAccepts);
  d->set_dev_status_req(dc.devStatusReq);
}

}  // namespace citygate::lora
