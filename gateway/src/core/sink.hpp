// Sink: where batches of readings go (the MQTT output). A sink reports every delivery as
// Delivered, Retry or Rejected and never deletes data: only the pipeline acknowledges records in
// the spool, and only after Delivered.
//
// Threading: called on the executor; `done` and the ready callback are invoked on the executor.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace citygate::core {

enum class Outcome : std::uint8_t { Delivered, Retry, Rejected };

class Sink {
 public:
  virtual ~Sink() = default;

  // True while the sink can take a batch (connected).
  virtual bool ready() const = 0;

  // `payload` is a complete serialized ReadingBatch holding `count` readings.
  virtual void asyncDeliver(std::string payload, std::uint32_t count, std::function<void(Outcome)> done) = 0;

  // Called with true when the sink becomes ready, false when it loses its link (every batch
  // still in flight then completes with Retry).
  virtual void setReadyCallback(std::function<void(bool)> cb) = 0;
};

}  // namespace citygate::core
