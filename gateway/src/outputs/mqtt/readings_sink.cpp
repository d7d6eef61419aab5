#include "outputs/mqtt/readings_sink.hpp"

#include <spdlog/spdlog.h>

#include "citygate/v1/reading.pb.h"
#include "core/wire.hpp"

namespace citygate::mqtt {

ReadingsSink::ReadingsSink(std::shared_ptr<Session> session, std::string leaf, Framing framing)
    : session_(std::move(session)), leaf_(std::move(leaf)), framing_(framing), topic_(session_->topic(leaf_.c_str())) {
  if (framing_ == Framing::EachRecord) return;
  // Fields in number order, as protobuf writes them; the readings (3) follow.
  core::wire::appendString(header_, citygate::v1::ReadingBatch::kGatewayIdFieldNumber, session_->options().gatewayId);
  core::wire::appendString(header_, citygate::v1::ReadingBatch::kBootIdFieldNumber, session_->options().bootId);
  // The epoch (4) follows the readings (3), as protobuf writes it.
  if (!session_->options().epoch.empty()) {
    core::wire::appendString(trailer_, citygate::v1::ReadingBatch::kEpochFieldNumber, session_->options().epoch);
  }
}

void ReadingsSink::beginBatch(std::string& payload) {
  payload.append(header_);
}

void ReadingsSink::addRecord(std::string& payload, std::uint64_t /*seq*/, std::string_view record) {
  if (framing_ == Framing::EachRecord) {
    payload.append(record);
    return;
  }
  core::wire::appendLengthDelimited(payload, citygate::v1::ReadingBatch::kReadingsFieldNumber, record);
}

std::shared_ptr<ReadingsSink> ReadingsSink::create(std::shared_ptr<Session> session, std::string leaf,
                                                   Framing framing) {
  auto sink = std::make_shared<ReadingsSink>(std::move(session), std::move(leaf), framing);
  std::weak_ptr<ReadingsSink> weak = sink;
  sink->session_->addStateListener([weak](bool connected) {
    if (auto self = weak.lock()) self->onSessionState(connected);
  });
  return sink;
}

void ReadingsSink::onSessionState(bool connected) {
  if (readyCb_) readyCb_(connected);
}

void ReadingsSink::asyncDeliver(std::string payload, std::uint32_t count, std::function<void(core::Outcome)> done) {
  payload.append(trailer_);  // within the capacity the fan-out reserved
  ++stats_.batchesPublished;
  stats_.published += count;
  stats_.lastPublishAt = session_->wallNow();
  session_->publish(topic_, std::move(payload), 1, false,
                    std::bind_front(&ReadingsSink::onPublished, shared_from_this(), count, std::move(done)));
}

void ReadingsSink::onPublished(std::uint32_t count, const std::function<void(core::Outcome)>& done,
                               const Status& result) {
  if (result) {
    ++stats_.batchesAcked;
    stats_.acked += count;
    stats_.lastAckAt = session_->wallNow();
    done(core::Outcome::Delivered);
    return;
  }
  if (result.cause() == ErrorCause::Invalid) {
    ++stats_.batchesRejected;
    session_->logger()->warn("batch of {} refused: {}", count, result.error());
    done(core::Outcome::Rejected);
    return;
  }
  session_->logger()->debug("batch of {} not acknowledged: {}", count, result.error());
  done(core::Outcome::Retry);
}

}  // namespace citygate::mqtt
