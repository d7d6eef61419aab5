// Pipeline: sources -> normaliser -> spool -> sink, on the executor.
//
// submit() normalises a raw sample, numbers each reading with the gateway-wide seq and appends it
// to the spool. pump() moves batches from the spool to the sink: a full batch at once, a partial
// one when its oldest reading has waited max_batch_delay. A batch is acknowledged in the spool
// only when the sink reports Delivered, in seq order; when the sink loses its link, every batch in
// flight is forgotten and the spool rewinds, so the next connection resends them (at least once).
//
// Back-pressure: with BLOCK_SOURCES and a full spool, readings wait in a bounded queue and
// accepting() turns false, which the sources check before they poll.
#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/normaliser.hpp"
#include "core/sensor.hpp"
#include "core/seq_store.hpp"
#include "core/sink.hpp"
#include "spool/spool.hpp"

namespace spdlog {
class logger;
}
namespace google::protobuf {
class Arena;
}

namespace citygate::core {

struct PipelineOptions {
  std::string gatewayId;
  std::string bootId;
  std::uint32_t maxBatchReadings = 200;
  std::chrono::milliseconds maxBatchDelay{500};
  std::uint32_t maxInflightBatches = 8;
  std::size_t maxBatchBytes = 256 * 1024;
  std::size_t maxBlockedReadings = 10000;
  std::chrono::milliseconds retryDelay{1000};
};

struct PipelineStats {
  std::uint64_t readings = 0;  // numbered and handed to the spool
  std::uint64_t batchesSent = 0;
  std::uint64_t batchesDelivered = 0;
  std::uint64_t readingsSent = 0;  // counting resends
  std::uint64_t readingsDelivered = 0;
  std::uint64_t retries = 0;
  std::uint64_t lostBlocked = 0;  // BLOCK_SOURCES overflow (sources ignored the pause)
  std::uint64_t spoolErrors = 0;
  std::uint64_t blockedNow = 0;
};

class Pipeline : public std::enable_shared_from_this<Pipeline> {
 public:
  // The reading and its wire bytes (valid for the call only): a tap that keeps a reading keeps
  // the bytes, which costs a memcpy, not a message copy. The bytes are the reading: a generic
  // observation is only in them (Normaliser's hot path), so a tap that needs it parses them.
  using Tap = std::function<void(const pb::Reading&, std::string_view bytes)>;

  Pipeline(boost::asio::any_io_executor executor, PipelineOptions options, spool::Spool& spool, Sink& sink,
           SeqStore& seq, std::shared_ptr<spdlog::logger> log);
  ~Pipeline();

  void start();
  void stop();

  void submit(const SensorSpec& spec, SensorMemory& memory, RawSample&& sample);
  bool accepting() const { return blocked_.empty(); }

  // Called with every reading after it is numbered (control socket `tail`).
  void setTap(Tap tap) { tap_ = std::move(tap); }

  // Re-examine the spool and the sink (e.g. when the spool has new durable records).
  void pump();

  PipelineStats stats() const;
  const PipelineOptions& options() const { return options_; }

 private:
  struct InFlight {
    std::uint64_t lastSeq;
    std::uint32_t count;
    bool delivered;
  };

  void store(std::uint64_t seq, std::string_view bytes);
  void drainBlocked();
  void onSinkReady(bool ready);
  void onOutcome(std::uint64_t epoch, std::uint64_t lastSeq, Outcome outcome);
  void linkLost();
  void armBatchTimer(std::chrono::steady_clock::duration wait);
  void onBatchTimer(const boost::system::error_code& ec);
  // When the oldest unread reading was numbered; none when it is no longer in the ring.
  std::optional<SteadyTime> oldestUnreadAt() const;

  boost::asio::any_io_executor executor_;
  PipelineOptions options_;
  spool::Spool& spool_;
  Sink& sink_;
  SeqStore& seq_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::steady_timer batchTimer_;
  bool timerArmed_ = false;
  bool stopped_ = false;

  std::string batchHeader_;
  // Readings live on an arena for the length of one submit(): no malloc/free per point.
  std::unique_ptr<char[]> arenaBlock_;  // the arena's first block, reused by every submit()
  std::unique_ptr<google::protobuf::Arena> arena_;
  std::vector<pb::Reading*> scratchReadings_;
  std::vector<GenericWire> scratchGeneric_;  // aligned with scratchReadings_
  std::string scratchBytes_;
  std::deque<std::pair<std::uint64_t, std::string>> blocked_;
  std::deque<InFlight> inflight_;
  std::uint64_t epoch_ = 0;
  // A partial batch goes when its oldest reading has waited max_batch_delay since it was
  // numbered, whenever the spool made it readable (a group commit may come later). The numbering
  // times of the last 1024 seqs are kept; an older reading is due at once.
  struct Numbered {
    std::uint64_t seq = 0;
    SteadyTime at{};
  };
  std::array<Numbered, 1024> numberedAt_{};
  std::uint64_t nextUnread_ = 0;  // seq of the oldest reading not handed out yet (0: none numbered)
  Tap tap_;
  PipelineStats stats_;
};

}  // namespace citygate::core
