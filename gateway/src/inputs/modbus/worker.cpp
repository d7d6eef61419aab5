#include "inputs/modbus/worker.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <system_error>

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

namespace citygate::modbus {

BusWorker::BusWorker(boost::asio::any_io_executor executor, const core::Clock& clock,
                     std::unique_ptr<Transport> transport, std::chrono::milliseconds interFrameGap,
                     std::size_t queueCapacity)
    : executor_(std::move(executor)),
      clock_(clock),
      transport_(std::move(transport)),
      gap_(interFrameGap),
      capacity_(queueCapacity),
      description_(transport_->describe()),
      wakeFd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Status BusWorker::start() {
  if (thread_.joinable()) return Ok{};
  if (wakeFd_ < 0) return Error{std::string("cannot create the bus worker's eventfd: ") + std::strerror(errno)};
  try {
    thread_ = std::thread(&BusWorker::run, this);
  } catch (const std::system_error& e) {
    return Error{std::string("cannot create the bus worker thread: ") + e.what()};
  }
  pthread_setname_np(thread_.native_handle(), "cg-modbus");
  return Ok{};
}

BusWorker::~BusWorker() {
  stop();
  join();
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

void BusWorker::wake() {
  if (wakeFd_ < 0) return;
  const std::uint64_t one = 1;
  while (::write(wakeFd_, &one, sizeof one) < 0 && errno == EINTR) {
  }  // EAGAIN: the counter is full, so a wake is pending anyway
}

void BusWorker::wait(std::unique_lock<std::mutex>& lock, std::optional<std::chrono::steady_clock::duration> timeout) {
  lock.unlock();
  timespec ts{};
  if (timeout) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(*timeout, {})).count();
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
  }
  pollfd p{wakeFd_, POLLIN, 0};
  // A wake written after the due time was computed is still counted in the eventfd: ppoll()
  // returns at once, nothing is lost. EINTR or an error: the caller looks at the queue again.
  if (::ppoll(&p, 1, timeout ? &ts : nullptr, nullptr) > 0 && (p.revents & POLLIN) != 0) {
    std::uint64_t count = 0;
    (void)::read(wakeFd_, &count, sizeof count);
  }
  lock.lock();
}

bool BusWorker::submit(Job job) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= capacity_) return false;
    wake = job.due < wakeAt_;
    job.work = boost::asio::prefer(executor_, boost::asio::execution::outstanding_work.tracked);
    queue_.push_back(std::move(job));
  }
  if (wake) this->wake();
  return true;
}

bool BusWorker::settled() {
  {
    std::lock_guard lock(mutex_);
    if (!waiting_) return false;
    const auto now = clock_.steadyNow();
    if (std::none_of(queue_.begin(), queue_.end(), [now](const Job& j) { return j.due <= now; })) return true;
  }
  wake();
  return false;
}

std::size_t BusWorker::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void BusWorker::stop(std::function<void()> exited) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    queue_.clear();
    if (thread_.joinable()) {
      // Outstanding work for the executor until it has run: run() does not return meanwhile.
      if (exited) {
        exited_ = [work = boost::asio::prefer(executor_, boost::asio::execution::outstanding_work.tracked),
                   cb = std::move(exited)] { cb(); };
      }
    } else if (exited) {
      boost::asio::post(executor_, std::move(exited));  // no thread: nothing to wait for
    }
  }
  wake();
}

void BusWorker::join() {
  if (thread_.joinable()) thread_.join();
}

void BusWorker::run() {
  using Clock = std::chrono::steady_clock;
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      for (;;) {
        if (stopping_) break;
        if (auto due = takeDue(false)) {
          job = std::move(*due);
          break;
        }
        // The first of the earliest due (a handful of jobs: one per device, a few ad-hoc reads).
        auto next =
            std::min_element(queue_.begin(), queue_.end(), [](const Job& a, const Job& b) { return a.due < b.due; });
        const auto now = clock_.steadyNow();
        wakeAt_ = next == queue_.end() ? Clock::time_point::max() : next->due;
        waiting_ = true;
        if (wakeAt_ == Clock::time_point::max()) {
          wait(lock, std::nullopt);
        } else {
          wait(lock, wakeAt_ - now);  // the clock's time, waited for in real time
        }
        waiting_ = false;
        wakeAt_ = Clock::time_point::min();
      }
      if (stopping_) break;
    }
    JobResult result = execute(job);
    boost::asio::post(executor_, [done = std::move(job.done), r = std::move(result),
                                  work = std::move(job.work)]() mutable { done(std::move(r)); });
  }
  transport_->close();
  std::function<void()> exited;
  {
    std::lock_guard lock(mutex_);
    exited = std::move(exited_);
  }
  if (exited) boost::asio::post(executor_, std::move(exited));
}

std::optional<Job> BusWorker::takeDue(bool writesOnly) {
  const auto now = clock_.steadyNow();
  auto write = std::find_if(queue_.begin(), queue_.end(), [now](const Job& j) { return j.write && j.due <= now; });
  if (write == queue_.end() && writesOnly) return std::nullopt;
  auto next = write != queue_.end() ? write
                                    : std::min_element(queue_.begin(), queue_.end(),
                                                       [](const Job& a, const Job& b) { return a.due < b.due; });
  if (next == queue_.end() || next->due > now) return std::nullopt;
  Job job = std::move(*next);
  queue_.erase(next);
  return job;
}

void BusWorker::runQueuedWrite() {
  std::optional<Job> job;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    job = takeDue(true);
  }
  if (!job) return;
  JobResult result = execute(*job, true);
  boost::asio::post(executor_, [done = std::move(job->done), r = std::move(result),
                                work = std::move(job->work)]() mutable { done(std::move(r)); });
}

JobResult BusWorker::execute(Job& job, bool nested) {
  JobResult r;
  const auto start = std::chrono::steady_clock::now();
  std::size_t total = 0;
  for (const auto& req : job.requests) {
    r.offsets.push_back(static_cast<std::uint32_t>(total));
    total += req.count;
  }
  r.data.assign(total, 0);
  r.errors.assign(job.requests.size(), ReadError{ErrorKind::Timeout, 0, "not tried"});
  bool abort = false;
  if (job.write) {
    if (gap_.count() > 0 && lastTransaction_) {
      const auto next = *lastTransaction_ + gap_;
      const auto now = std::chrono::steady_clock::now();
      if (now < next) std::this_thread::sleep_for(next - now);
    }
    ++r.requestsSent;
    ReadError e = transport_->write(job.unit, job.write->table, job.write->address, job.write->values, job.timeout);
    lastTransaction_ = std::chrono::steady_clock::now();
    for (const auto& d : transport_->takeDiscarded()) addDiscarded(r.discarded, d.unit, d.frames);
    if (e.kind == ErrorKind::Timeout) ++r.timeouts;
    if (e.kind == ErrorKind::BadFrame) ++r.badFrames;
    abort = !e.ok();  // nothing to read back
    r.writeError = std::move(e);
  }
  for (std::size_t i = 0; i < job.requests.size() && !abort; ++i) {
    if (job.cancelled && job.cancelled->load()) break;  // nobody waits for it: the bus is not held
    if (i != 0 && !nested) runQueuedWrite();            // between two transactions, never inside one
    const ReadRequest& req = job.requests[i];
    ++r.attempted;
    for (std::uint32_t attempt = 0; attempt <= job.retries; ++attempt) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) {
          abort = true;
          break;
        }
      }
      // Extra silence between transactions for slow devices (the configured gap; t3.5 and the
      // recovery after a late answer are the transport's).
      if (gap_.count() > 0 && lastTransaction_) {
        const auto next = *lastTransaction_ + gap_;
        const auto now = std::chrono::steady_clock::now();
        if (now < next) std::this_thread::sleep_for(next - now);
      }
      ++r.requestsSent;
      ReadError e = transport_->read(job.unit, req.table, req.address, req.count, job.timeout,
                                     std::span<std::uint16_t>(r.data.data() + r.offsets[i], req.count));
      lastTransaction_ = std::chrono::steady_clock::now();
      for (const auto& d : transport_->takeDiscarded()) addDiscarded(r.discarded, d.unit, d.frames);
      r.errors[i] = e;
      if (e.kind == ErrorKind::Timeout) ++r.timeouts;
      if (e.kind == ErrorKind::BadFrame) ++r.badFrames;
      if (e.ok() || e.kind == ErrorKind::Exception) break;
      if (e.kind == ErrorKind::Connection && attempt == job.retries) abort = true;
      if (e.kind == ErrorKind::Timeout && attempt == job.retries) abort = true;
    }
  }
  r.finishedAt = std::chrono::steady_clock::now();
  r.rtt = std::chrono::duration_cast<std::chrono::microseconds>(r.finishedAt - start);
  return r;
}

}  // namespace citygate::modbus
