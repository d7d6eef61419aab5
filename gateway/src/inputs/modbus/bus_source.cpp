#include "inputs/modbus/bus_source.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cmath>
#include <utility>

#include "inputs/modbus/decode.hpp"

namespace citygate::modbus {

BusSource::BusSource(boost::asio::any_io_executor executor, core::Clock& clock, BusSpec spec,
                     std::unique_ptr<Transport> transport, Submit submit, Accepting accepting,
                     std::shared_ptr<spdlog::logger> log)
    : executor_(executor),
      clock_(clock),
      spec_(std::move(spec)),
      submit_(std::move(submit)),
      accepting_(std::move(accepting)),
      log_(std::move(log)),
      rng_(std::random_device{}()) {
  // One queued job per device plus room for the technician's ad-hoc reads.
  worker_ = std::make_unique<BusWorker>(executor, clock_, std::move(transport),
                                        std::chrono::milliseconds(spec_.config.inter_frame_gap_ms()),
                                        spec_.devices.size() + 8);
  devices_.reserve(spec_.devices.size());
  for (auto& ds : spec_.devices) {
    Device d;
    d.spec = ds;
    d.isolated.assign(ds.reads.size(), false);
    d.timer = clock_.makeTimer();
    d.health.set_sensor_id(ds.sensor->id);
    d.health.set_bus(spec_.name);
    d.health.set_state(citygate::v1::OK);
    toTimestamp(clock_.wallNow(), d.health.mutable_state_since());
    replan(d);
    devices_.push_back(std::move(d));
  }
}

void BusSource::replan(Device& d) {
  std::vector<PlanPoint> pts;
  pts.reserve(d.spec.reads.size());
  for (std::size_t i = 0; i < d.spec.reads.size(); ++i) {
    const PointRead& r = d.spec.reads[i];
    pts.push_back(PlanPoint{r.table, r.address, r.count, d.isolated[i]});
  }
  d.plan = planReads(pts, d.spec.limits);
}

Status BusSource::prepare() {
  return worker_->start();
}

Status BusSource::start() {
  if (auto st = prepare(); !st) return st;
  epoch_ = clock_.steadyNow();
  const std::size_t n = devices_.size();
  log_->info("bus '{}' ({}): {} device(s)", spec_.name, worker_->describe(), n);
  for (std::size_t i = 0; i < n; ++i) {
    Device& d = devices_[i];
    // Staggered phases: device i of n starts i/n of its interval into the cycle, so every device's
    // first poll falls within its first interval (device 0's at once).
    const auto phase = d.spec.interval * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(n);
    d.nextTick = epoch_ + std::chrono::duration_cast<SteadyClock::duration>(phase);
    scheduleNext(i, true);
  }
  return Ok{};
}

void BusSource::stop(std::function<void()> ended) {
  if (ended) {
    if (workerEnded_) {
      boost::asio::post(executor_, std::move(ended));
    } else {
      endedCallbacks_.push_back(std::move(ended));
    }
  }
  if (stopped_) return;
  stopped_ = true;
  for (auto& d : devices_) d.timer->cancel();
  // The worker may be inside a transaction (bounded by its timeouts): it is told to end, not
  // waited for here. Its thread posts its exit as its last act; this source stays alive until
  // then and joins a thread that has finished.
  worker_->stop([self = shared_from_this()] {
    self->worker_->join();
    self->workerEnded_ = true;
    for (auto& cb : std::exchange(self->endedCallbacks_, {})) cb();
  });
}

void BusSource::join() {
  worker_->join();
}

void BusSource::scheduleNext(std::size_t index, bool first) {
  Device& d = devices_[index];
  if (stopped_ || d.busy) return;
  const auto now = clock_.steadyNow();
  if (first && d.nextTick <= now) {
    d.nextTick = now;  // the start tick: due now
  } else if (d.nextTick <= now) {
    // Ticks that came while the last poll was still running, or while the executor was behind,
    // are skipped and counted; the phase is kept.
    const auto missed = static_cast<std::uint64_t>((now - d.nextTick) / d.spec.interval + 1);
    d.nextTick += d.spec.interval * missed;
    counters_.polls += missed;
    counters_.skipped += missed;
    d.health.set_polls_scheduled(d.health.polls_scheduled() + missed);
    d.health.set_polls_skipped(d.health.polls_skipped() + missed);
  }
  if (d.state == citygate::v1::DOWN || (accepting_ && !accepting_())) {
    armTimer(index);  // decided at the tick: a probe when the backoff is over, or another pause
    return;
  }
  const auto due = d.nextTick;
  d.nextTick += d.spec.interval;
  ++counters_.polls;
  d.health.set_polls_scheduled(d.health.polls_scheduled() + 1);
  poll(index, false, due);
  if (!d.busy) armTimer(index);  // refused (queue full): try again at the next tick
}

void BusSource::armTimer(std::size_t index) {
  Device& d = devices_[index];
  d.timer->start(d.nextTick - clock_.steadyNow(), std::bind_front(&BusSource::onTick, shared_from_this(), index));
}

void BusSource::onTick(std::size_t index) {
  if (stopped_) return;
  Device& d = devices_[index];
  const auto now = clock_.steadyNow();
  d.nextTick += d.spec.interval;  // ticks missed meanwhile (suspend, overload): scheduleNext counts them
  ++counters_.polls;
  d.health.set_polls_scheduled(d.health.polls_scheduled() + 1);
  if (accepting_ && !accepting_()) {
    ++counters_.blocked;
  } else if (d.state == citygate::v1::DOWN) {
    if (now >= d.nextAttempt) poll(index, true);
  } else {
    poll(index, false);
  }
  scheduleNext(index);  // nothing while the poll it issued runs: its result schedules the next
}

void BusSource::poll(std::size_t index, bool probe, SteadyTime due) {
  Device& d = devices_[index];
  if (d.plan.empty()) return;
  Job job;
  job.due = due;
  job.unit = d.spec.unitId;
  job.timeout = d.spec.timeout;
  if (probe) {
    job.requests.push_back(d.plan.front());
    job.retries = 0;
  } else {
    job.requests = d.plan;
    job.retries = spec_.config.retries();
  }
  job.done = [self = shared_from_this(), index, probe](JobResult&& r) { self->onResult(index, probe, std::move(r)); };
  if (!worker_->submit(std::move(job))) {
    ++counters_.skipped;
    d.health.set_polls_skipped(d.health.polls_skipped() + 1);
    return;
  }
  d.busy = true;
}

void BusSource::recordFailure(Device& d, const std::string& error) {
  d.health.set_polls_failed(d.health.polls_failed() + 1);
  setError(d, error);
  ++d.consecutiveFailures;
  const auto before = d.state;
  if (d.consecutiveFailures >= spec_.config.failures_to_down()) {
    // Circuit open: exponential backoff with jitter in [window/2, window].
    const double base = spec_.config.backoff_min_ms() * std::pow(2.0, std::min<std::uint32_t>(d.downCount, 20));
    const double window = std::min<double>(base, spec_.config.backoff_max_ms());
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(window * jitter(rng_)));
    d.nextAttempt = clock_.steadyNow() + wait;
    d.nextAttemptWall = clock_.wallNow() + wait;
    ++d.downCount;
    d.state = citygate::v1::DOWN;
    toTimestamp(d.nextAttemptWall, d.health.mutable_next_attempt_at());
    log_->warn("[{}] unit {} on bus '{}': {}; DOWN, next try in {} ms", d.spec.sensor->id, d.spec.unitId, spec_.name,
               error, wait.count());
  } else {
    d.state = citygate::v1::DEGRADED;
    if (before == citygate::v1::OK || error != d.lastLoggedError) {
      log_->warn("[{}] unit {} on bus '{}': {}; DEGRADED", d.spec.sensor->id, d.spec.unitId, spec_.name, error);
    }
  }
  d.lastLoggedError = error;
  setState(d, d.state);
}

void BusSource::setState(Device& d, citygate::v1::DeviceState state) {
  d.state = state;
  if (d.health.state() != state) toTimestamp(clock_.wallNow(), d.health.mutable_state_since());
  d.health.set_state(state);
}

void BusSource::setError(Device& d, const std::string& error) {
  d.health.set_last_error(error);
  toTimestamp(clock_.wallNow(), d.health.mutable_last_error_at());
}

// The link is down when the last request tried ended on a link failure (connect refused, port
// missing, reset), up when it reached the other end (an answer, an exception, even a timeout: a
// TCP connection that opened, or a serial port that took the request).
void BusSource::noteLink(const JobResult& r) {
  if (r.attempted == 0 || r.errors.size() < r.attempted) return;  // nothing tried (cancelled)
  const ReadError& last = r.errors[r.attempted - 1];
  const bool down = last.kind == ErrorKind::Connection;
  const auto state = down ? citygate::v1::BUS_DOWN : citygate::v1::BUS_UP;
  const WallTime now = clock_.wallNow();
  if (down) {
    link_.set_link_failures(link_.link_failures() + 1);
    link_.set_last_error(last.message);
    toTimestamp(now, link_.mutable_last_error_at());
  }
  if (link_.state() == state) return;
  if (down) {
    log_->warn("bus '{}' ({}): link down: {}", spec_.name, worker_->describe(), last.message);
  } else if (link_.state() == citygate::v1::BUS_DOWN) {
    log_->info("bus '{}' ({}): link up again", spec_.name, worker_->describe());
  }
  link_.set_state(state);
  toTimestamp(now, link_.mutable_since());
}

std::optional<std::size_t> BusSource::deviceIndex(std::string_view sensorId) const {
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i].spec.sensor->id == sensorId) return i;
  }
  return std::nullopt;
}

BusSource::Retry BusSource::retryNow(std::size_t index, std::string_view why) {
  Device& d = devices_[index];
  if (stopped_ || d.state != citygate::v1::DOWN) return Retry::NotDown;
  if (d.busy) return Retry::AlreadyProbing;
  log_->info("[{}] unit {} on bus '{}': backoff ended ({}); trying it now", d.spec.sensor->id, d.spec.unitId,
             spec_.name, why);
  d.timer->cancel();
  d.nextAttempt = clock_.steadyNow();
  d.nextAttemptWall = clock_.wallNow();
  toTimestamp(d.nextAttemptWall, d.health.mutable_next_attempt_at());
  poll(index, true);
  if (!d.busy) {
    armTimer(index);  // the queue is full: the tick probes it (its backoff is over)
    return Retry::AlreadyProbing;
  }
  return Retry::Probing;
}

// A successful ad-hoc read of a DOWN device's unit is a repair seen: its backoff ends.
void BusSource::onAdhocDone(std::uint8_t unit, const JobResult& r) {
  countDiscarded(nullptr, r.discarded);
  noteLink(r);
  if (stopped_ || r.attempted == 0 || r.errors.empty() || !r.errors.front().ok()) return;
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i].spec.unitId == unit && devices_[i].state == citygate::v1::DOWN) {
      retryNow(i, "an ad-hoc read of unit " + std::to_string(unit) + " succeeded");
    }
  }
}

// Each device's health shows the frames that came from it (a late answer usually turns up in the
// next device's exchange); frames from units that are no device of this bus count on the device
// asked, or only on the bus for an ad-hoc read.
void BusSource::countDiscarded(Device* asked, const std::vector<DiscardedFrames>& frames) {
  for (const auto& f : frames) {
    counters_.discarded += f.frames;
    Device* from = asked;
    for (auto& dev : devices_) {
      if (dev.spec.unitId == f.unit) from = &dev;
    }
    if (from != nullptr) from->health.set_answers_discarded(from->health.answers_discarded() + f.frames);
  }
}

void BusSource::onResult(std::size_t index, bool probe, JobResult&& r) {
  handleResult(index, probe, std::move(r));
  scheduleNext(index);  // nothing if handling it polled again at once (a split, a device back)
}

void BusSource::handleResult(std::size_t index, bool probe, JobResult&& r) {
  Device& d = devices_[index];
  d.busy = false;
  if (stopped_) return;
  const WallTime now = clock_.wallNow();
  d.health.set_requests(d.health.requests() + r.requestsSent);
  d.health.set_timeouts(d.health.timeouts() + r.timeouts);
  d.health.set_bad_frames(d.health.bad_frames() + r.badFrames);
  countDiscarded(&d, r.discarded);
  noteLink(r);

  std::size_t okRequests = 0;
  const ReadError* failure = nullptr;
  bool split = false;
  const std::vector<ReadRequest>& plan = d.plan;  // a probe's single request is plan[0]
  for (std::size_t k = 0; k < r.errors.size(); ++k) {
    const ReadError& e = r.errors[k];
    if (e.ok()) {
      ++okRequests;
      continue;
    }
    if (k >= r.attempted) continue;
    if (e.kind == ErrorKind::Exception) {
      d.health.set_exceptions(d.health.exceptions() + 1);
      if (e.exception == 2 && k < plan.size() && plan[k].points.size() > 1) {
        // Refused a merged read: read these points on their own from now on.
        for (auto p : plan[k].points) d.isolated[p] = true;
        split = true;
        continue;
      }
    }
    if (failure == nullptr) failure = &e;
  }
  if (split) {
    ++counters_.splits;
    const std::size_t before = d.plan.size();
    replan(d);
    log_->info("[{}] refused a merged read (exception 02): split, {} -> {} request(s) per poll", d.spec.sensor->id,
               before, d.plan.size());
    poll(index, false);
    return;
  }

  if (okRequests == 0 && failure != nullptr) {
    std::string what = std::string(errorKindName(failure->kind));
    if (!failure->message.empty() && failure->message != what) what += ": " + failure->message;
    recordFailure(d, what);
    return;
  }
  if (probe) {
    log_->info("[{}] unit {} answers again; OK", d.spec.sensor->id, d.spec.unitId);
    d.consecutiveFailures = 0;
    d.downCount = 0;
    setState(d, citygate::v1::OK);
    d.health.clear_next_attempt_at();
    poll(index, false);
    return;
  }
  if (failure != nullptr) {
    // Partly read: the points of the failed requests are BAD in this reading.
    setError(d, std::string(errorKindName(failure->kind)) + ": " + failure->message);
  }
  if (d.state != citygate::v1::OK && failure == nullptr) {
    log_->info("[{}] unit {} OK again", d.spec.sensor->id, d.spec.unitId);
  }
  d.consecutiveFailures = 0;
  d.downCount = 0;
  d.lastLoggedError.clear();
  setState(d, failure == nullptr ? citygate::v1::OK : citygate::v1::DEGRADED);
  d.health.set_polls_ok(d.health.polls_ok() + 1);
  toTimestamp(now, d.health.mutable_last_ok_at());
  const auto perRequest = r.requestsSent > 0 ? r.rtt / r.requestsSent : r.rtt;
  d.health.set_rtt_us(static_cast<std::uint32_t>(perRequest.count()));
  decode(d, r, now);
}

void BusSource::decode(Device& d, const JobResult& r, WallTime now) {
  const core::SensorSpec& sensor = *d.spec.sensor;
  core::RawSample sample;
  sample.observedAt = now;
  sample.periodStart = d.lastObservedAt == WallTime{} ? now - d.spec.interval : d.lastObservedAt;
  d.lastObservedAt = now;
  sample.values.resize(sensor.points.size());
  bool anySent = false;
  for (std::size_t k = 0; k < d.plan.size() && k < r.errors.size(); ++k) {
    const ReadRequest& req = d.plan[k];
    const bool ok = r.errors[k].ok();
    for (auto idx : req.points) {
      core::RawValue& v = sample.values[idx];
      const PointRead& pr = d.spec.reads[idx];
      if (!ok) {
        v.state = core::RawValue::State::Bad;
        continue;
      }
      const std::uint16_t* regs = r.data.data() + r.offsets[k] + (pr.address - req.address);
      v.state = core::RawValue::State::Ok;
      if (isBitTable(pr.table)) {
        v.value = regs[0] != 0 ? 1.0 : 0.0;
      } else if (pr.bitInRegister) {
        v.value = registerBit(regs[0], pr.bit) ? 1.0 : 0.0;
      } else if (pr.type == pb::STRING) {
        sample.texts.emplace_back(idx, decodeString(pr.order, std::span<const std::uint16_t>(regs, pr.count)));
        v.state = core::RawValue::State::Skip;
        anySent = true;
        continue;
      } else if (pr.allOnesNotAvailable && isNotAvailable(pr.type, pr.order, {regs, pr.count})) {
        v.state = core::RawValue::State::Bad;  // the device says it has no value
      } else if (auto num = decodeNumber(pr.type, pr.order, std::span<const std::uint16_t>(regs, pr.count))) {
        v.value = *num;
      } else {
        v.state = core::RawValue::State::Bad;
      }
      anySent = true;
    }
  }
  for (const auto& v : sample.values) {
    if (v.state == core::RawValue::State::Bad) anySent = true;
  }
  if (!anySent) return;
  const auto before = d.health.readings();
  d.health.set_readings(before + 1);
  submit_(sensor, d.memory, std::move(sample));
}

void BusSource::fillHealth(google::protobuf::RepeatedPtrField<citygate::v1::DeviceHealth>& out) const {
  for (const auto& d : devices_) {
    auto* h = out.Add();
    *h = d.health;
    h->set_readings(d.health.readings() - d.memory.samplesHeldBack);  // held back: no reading
  }
}

bool BusSource::adhocRead(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                          std::chrono::milliseconds timeout, std::function<void(JobResult&&)> done,
                          std::shared_ptr<const std::atomic<bool>> cancelled) {
  Job job;
  job.unit = unit;
  job.timeout = timeout;
  job.retries = 0;
  job.requests.push_back(ReadRequest{table, address, count, {}});
  job.done = [self = shared_from_this(), unit, done = std::move(done)](JobResult&& r) {
    self->onAdhocDone(unit, r);
    done(std::move(r));
  };
  job.cancelled = std::move(cancelled);
  return worker_->submit(std::move(job));
}

bool BusSource::adhocWrite(std::uint8_t unit, WriteRequest write, ReadRequest readBack,
                           std::chrono::milliseconds timeout, std::size_t maxQueued,
                           std::function<void(JobResult&&)> done) {
  if (stopped_ || writesQueued_ >= maxQueued) return false;
  Job job;
  job.unit = unit;
  job.timeout = timeout;
  job.retries = 0;
  job.write = std::move(write);
  job.requests.push_back(std::move(readBack));
  job.done = [self = shared_from_this(), unit, done = std::move(done)](JobResult&& r) {
    --self->writesQueued_;
    self->onAdhocDone(unit, r);
    done(std::move(r));
  };
  if (!worker_->submit(std::move(job))) return false;
  ++writesQueued_;
  return true;
}

}  // namespace citygate::modbus
