#include "outputs/mqtt/readings_sink.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

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
  batchFirst_ = 0;
  batchLast_ = 0;
  payload.append(header_);
}

void ReadingsSink::addRecord(std::string& payload, std::uint64_t seq, std::string_view record) {
  if (batchFirst_ == 0) batchFirst_ = seq;
  batchLast_ = seq;
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
  // Retention on: the payload is kept for refills once acknowledged (the one copy it costs).
  std::string kept = retention_.enabled() && framing_ == Framing::ReadingBatch ? payload : std::string();
  session_->publish(topic_, std::move(payload), 1, false,
                    std::bind_front(&ReadingsSink::onPublished, shared_from_this(), count, batchFirst_, batchLast_,
                                    std::move(kept), std::move(done)));
}

void ReadingsSink::onPublished(std::uint32_t count, std::uint64_t firstSeq, std::uint64_t lastSeq, std::string kept,
                               const std::function<void(core::Outcome)>& done, const Status& result) {
  if (result) {
    ++stats_.batchesAcked;
    stats_.acked += count;
    stats_.lastAckAt = session_->wallNow();
    ackedSeq_ = std::max(ackedSeq_, lastSeq);
    if (!kept.empty()) {
      retention_.add(firstSeq, lastSeq, count, std::move(kept), session_->clock().steadyNow());
      stats_.retainedBytes = retention_.bytes();
    }
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

void ReadingsSink::setRetention(std::uint64_t maxBytes, std::chrono::seconds maxAge) {
  retention_ = Retention(maxBytes, maxAge);
  stats_.retainedBytes = 0;
}

namespace {
// Resent batches in flight at once: a refill must not crowd out the live readings.
constexpr std::size_t kResendWindow = 4;
}  // namespace

struct ReadingsSink::Resend {
  std::vector<std::string> payloads;  // copies: the retained batches stay for a later refill
  std::size_t next = 0;
  std::size_t inFlight = 0;
  std::size_t failed = 0;
  citygate::v1::CommandResult result;
  std::function<void(citygate::v1::CommandResult)> done;
};

void ReadingsSink::refill(const citygate::v1::Refill& refill, std::function<void(citygate::v1::CommandResult)> done) {
  namespace pb = citygate::v1;
  pb::CommandResult r;
  auto* out = r.mutable_refill();
  const auto refuse = [&](std::string why) {
    r.set_status(pb::CommandResult::REFUSED);
    r.set_refusal(pb::REFILL_UNAVAILABLE);
    r.set_detail(std::move(why));
    done(std::move(r));
  };
  retention_.expire(session_->clock().steadyNow());
  stats_.retainedBytes = retention_.bytes();
  out->set_retained_from_seq(retention_.firstSeq());
  out->set_retained_to_seq(retention_.lastSeq());
  if (refill.epoch() != session_->options().epoch) {
    return refuse("epoch '" + refill.epoch() + "' is not this gateway's (" + session_->options().epoch +
                  "): those readings were numbered before its seq started again");
  }
  if (!retention_.enabled()) {
    return refuse("this gateway keeps no acknowledged readings (spool { retain_bytes } is 0)");
  }
  const auto found = retention_.find(refill.from_seq(), refill.to_seq(), ackedSeq_);
  out->set_missing(found.missing);
  if (found.batches.empty()) {
    return refuse(retention_.lastSeq() == 0
                      ? std::string("no acknowledged readings are kept now")
                      : "seq " + std::to_string(refill.from_seq()) + ".." + std::to_string(refill.to_seq()) +
                            " is not kept (kept: " + std::to_string(retention_.firstSeq()) + ".." +
                            std::to_string(retention_.lastSeq()) + ")");
  }
  auto rs = std::make_shared<Resend>();
  std::string resent;
  core::wire::appendVarintField(resent, pb::ReadingBatch::kResentFieldNumber, 1);
  for (const auto* b : found.batches) {
    rs->payloads.push_back(b->payload);
    rs->payloads.back().append(resent);
  }
  out->set_resent(found.readings);
  ++stats_.refills;
  stats_.resentReadings += found.readings;
  session_->logger()->info("refill of seq {}..{}: resending {} readings in {} batches{}", refill.from_seq(),
                           refill.to_seq(), found.readings, found.batches.size(),
                           found.missing != 0 ? " (" + std::to_string(found.missing) + " no longer kept)" : "");
  r.set_status(pb::CommandResult::ACCEPTED);
  r.set_detail("resending " + std::to_string(found.readings) + " readings in " + std::to_string(found.batches.size()) +
               " batches" +
               (found.missing != 0 ? "; " + std::to_string(found.missing) + " of the range are no longer kept" : ""));
  rs->result = r;
  rs->done = std::move(done);
  rs->done(r);
  resendNext(rs);
}

void ReadingsSink::resendNext(const std::shared_ptr<Resend>& rs) {
  namespace pb = citygate::v1;
  while (rs->inFlight < kResendWindow && rs->next < rs->payloads.size()) {
    ++rs->inFlight;
    std::weak_ptr<ReadingsSink> weak = weak_from_this();
    session_->publish(topic_, std::move(rs->payloads[rs->next++]), 1, false, [weak, rs](const Status& st) {
      --rs->inFlight;
      if (!st) ++rs->failed;
      auto self = weak.lock();
      if (self && rs->failed == 0) self->resendNext(rs);
      if (rs->inFlight != 0 || (rs->failed == 0 && rs->next < rs->payloads.size())) return;
      auto r = rs->result;
      if (rs->failed == 0) {
        r.set_status(pb::CommandResult::DONE);
        r.set_detail("resent " + std::to_string(r.refill().resent()) + " readings");
      } else {
        r.set_status(pb::CommandResult::FAILED);
        r.set_detail("the broker did not acknowledge every resent batch (" + st.error() + "): ask again");
      }
      rs->done(std::move(r));
      rs->done = [](pb::CommandResult) {};
    });
  }
}

}  // namespace citygate::mqtt
