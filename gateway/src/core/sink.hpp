// Sink: where readings go (the MQTT readings publisher; later a Sparkplug B output). A sink frames
// its own payload from the spool's records and reports every delivery as Delivered, Retry or
// Rejected. It never deletes data: SinkFanout acknowledges records in the spool once every sink
// has them (core/fanout.hpp).
//
// Framing: a batch's payload is beginBatch() and then addRecord() for each record, oldest first;
// a record is one serialized Reading with its seq, valid for the call only. A sink writes its
// format through core/wire.hpp with the generated field-number constants, appending each record
// once (the record's only copy on its way from the spool to the payload).
//
// Threading: called on the executor; `done` and the ready callback are invoked on the executor.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace citygate::core {

enum class Outcome : std::uint8_t { Delivered, Retry, Rejected };

class Sink {
 public:
  virtual ~Sink() = default;

  // For logs and per-sink statistics ("readings").
  virtual std::string_view name() const = 0;

  // True while the sink can take a batch (connected).
  virtual bool ready() const = 0;

  // Starts a batch's payload in `payload` (empty, with capacity reserved).
  virtual void beginBatch(std::string& payload) = 0;
  // Appends one record to the batch.
  virtual void addRecord(std::string& payload, std::uint64_t seq, std::string_view record) = 0;

  // Sends a batch made by beginBatch()/addRecord() holding `count` records. Rejected: it can never
  // be delivered as it is (it goes to the dead letters; delivery goes on); Retry: not now (the
  // batch and every later one in flight are sent again).
  virtual void asyncDeliver(std::string payload, std::uint32_t count, std::function<void(Outcome)> done) = 0;

  // Called with true when the sink becomes ready, false when it loses its link (every batch
  // still in flight then completes with Retry).
  virtual void setReadyCallback(std::function<void(bool)> cb) = 0;
};

}  // namespace citygate::core
