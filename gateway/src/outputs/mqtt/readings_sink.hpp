// ReadingsSink: the pipeline's native sink on MQTT, a client of the Session. Frames each batch as a
// ReadingBatch (gateway_id and boot_id from the session's options, then the spool's records as its
// `readings`, then the seq's `epoch`, each appended once through core/wire.hpp with the generated field numbers: the
// bytes protobuf would write for the same message) and publishes it on
// <prefix>/<gateway_id>/readings at QoS 1, not retained, and reports:
//   Delivered  the broker acknowledged it (PUBACK);
//   Rejected   the publish can never succeed as it is (ErrorCause::Invalid: bad topic, too large);
//   Retry      any other failure (the link dropped, not connected, a timeout).
// Ready while the session is connected; the ready callback follows the session's state listener.
//
// Refills (Command.refill, issue 18): with retention on (setRetention), each acknowledged batch's
// payload is kept in a Retention (retention.hpp); refill() publishes the kept batches that hold a
// range again, each with `resent` set (field 5 appended: protobuf merges it into the message).
//
// The audit trail (commands/audit.hpp) uses the same sink with Framing::EachRecord on
// <prefix>/<gateway_id>/audit: each record is already a whole message (an AuditRecord with its
// seq) and is published as it is, one per batch (the audit's fan-out sends batches of one).
//
// Threading: executor only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "citygate/v1/commands.pb.h"
#include "core/sink.hpp"
#include "outputs/mqtt/retention.hpp"
#include "outputs/mqtt/session.hpp"

namespace citygate::mqtt {

struct ReadingsStats {
  std::uint64_t published = 0;  // readings
  std::uint64_t acked = 0;      // readings
  std::uint64_t batchesPublished = 0;
  std::uint64_t batchesAcked = 0;
  std::uint64_t batchesRejected = 0;
  std::uint64_t refills = 0;         // refill commands served (some readings resent)
  std::uint64_t resentReadings = 0;  // readings published again for refills
  std::uint64_t retainedBytes = 0;
  std::optional<WallTime> lastPublishAt;  // a batch handed to the session
  std::optional<WallTime> lastAckAt;      // a batch the broker acknowledged
};

class ReadingsSink final : public core::Sink, public std::enable_shared_from_this<ReadingsSink> {
 public:
  enum class Framing : std::uint8_t {
    ReadingBatch,  // the records are Readings, framed as one ReadingBatch per batch
    EachRecord,    // the records are whole messages: a batch (of one) is its record as it is
  };

  // Registers its state listener with the session; build it before session->start(). `leaf`: the
  // topic's last level, also the sink's name.
  static std::shared_ptr<ReadingsSink> create(std::shared_ptr<Session> session, std::string leaf = "readings",
                                              Framing framing = Framing::ReadingBatch);

  std::string_view name() const override { return leaf_; }
  bool ready() const override { return session_->connected(); }
  void beginBatch(std::string& payload) override;
  void addRecord(std::string& payload, std::uint64_t seq, std::string_view record) override;
  void asyncDeliver(std::string payload, std::uint32_t count, std::function<void(core::Outcome)> done) override;
  void setReadyCallback(std::function<void(bool)> cb) override { readyCb_ = std::move(cb); }

  // Keeps acknowledged batches for refills: up to maxBytes (0: none) for maxAge.
  void setRetention(std::uint64_t maxBytes, std::chrono::seconds maxAge);
  // The platform's Refill (commands::Daemon::refill): `done` gets ACCEPTED with what will be
  // resent, then DONE once the broker acknowledged every resent batch (FAILED if one was not);
  // or REFUSED (REFILL_UNAVAILABLE) at once: another epoch, no retention, nothing of it kept.
  void refill(const citygate::v1::Refill& refill, std::function<void(citygate::v1::CommandResult)> done);

  const ReadingsStats& stats() const { return stats_; }
  const std::string& topic() const { return topic_; }

  ReadingsSink(std::shared_ptr<Session> session, std::string leaf, Framing framing);  // use create()

 private:
  void onSessionState(bool connected);
  void onPublished(std::uint32_t count, std::uint64_t firstSeq, std::uint64_t lastSeq, std::string kept,
                   const std::function<void(core::Outcome)>& done, const Status& result);
  struct Resend;
  void resendNext(const std::shared_ptr<Resend>& r);

  std::shared_ptr<Session> session_;
  std::string leaf_;
  Framing framing_;
  std::string topic_;
  std::string header_;   // gateway_id and boot_id, framed once
  std::string trailer_;  // the epoch, after the readings
  std::function<void(bool)> readyCb_;
  ReadingsStats stats_;
  Retention retention_{0, std::chrono::seconds(0)};
  std::uint64_t batchFirst_ = 0;  // of the batch being framed
  std::uint64_t batchLast_ = 0;
  std::uint64_t ackedSeq_ = 0;  // the highest seq of an acknowledged batch
};

}  // namespace citygate::mqtt
