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

#include "core/sink.hpp"
#include "outputs/mqtt/session.hpp"

namespace citygate::mqtt {

struct ReadingsStats {
  std::uint64_t published = 0;  // readings
  std::uint64_t acked = 0;      // readings
  std::uint64_t batchesPublished = 0;
  std::uint64_t batchesAcked = 0;
  std::uint64_t batchesRejected = 0;
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

  const ReadingsStats& stats() const { return stats_; }
  const std::string& topic() const { return topic_; }

  ReadingsSink(std::shared_ptr<Session> session, std::string leaf, Framing framing);  // use create()

 private:
  void onSessionState(bool connected);
  void onPublished(std::uint32_t count, const std::function<void(core::Outcome)>& done, const Status& result);

  std::shared_ptr<Session> session_;
  std::string leaf_;
  Framing framing_;
  std::string topic_;
  std::string header_;   // gateway_id and boot_id, framed once
  std::string trailer_;  // the epoch, after the readings
  std::function<void(bool)> readyCb_;
  ReadingsStats stats_;
};

}  // namespace citygate::mqtt
