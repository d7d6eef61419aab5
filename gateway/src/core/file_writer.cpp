#include "core/file_writer.hpp"

#include <pthread.h>

#include <boost/asio/post.hpp>
#include <system_error>

#include "core/seq_store.hpp"

namespace citygate::core {

FileWriter::FileWriter(boost::asio::any_io_executor executor, std::string path, unsigned mode, WriteFn write)
    : executor_(std::move(executor)), path_(std::move(path)), mode_(mode), write_(std::move(write)) {
  if (!write_) write_ = [](const std::string& p, std::string_view d, unsigned m) { return writeFileAtomic(p, d, m); };
}

FileWriter::~FileWriter() {
  stop();
  join();
}

Status FileWriter::start() {
  if (thread_.joinable()) return Ok{};
  try {
    thread_ = std::thread(&FileWriter::run, this);
  } catch (const std::system_error& e) {
    return Error{std::string("cannot create the file writer thread: ") + e.what()};
  }
  pthread_setname_np(thread_.native_handle(), "cg-writer");
  return Ok{};
}

void FileWriter::write(std::string data, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && thread_.joinable()) {
      if (pending_) ++superseded_;
      pending_ = Pending{std::move(data), std::move(done)};
      wake_.notify_one();
      return;
    }
  }
  if (done) {
    boost::asio::post(executor_, [done = std::move(done), path = path_] {
      done(Error{"cannot write " + path + ": its writer is not running"});
    });
  }
}

Status FileWriter::writeNow(std::string_view data) {
  {
    std::lock_guard lock(mutex_);
    if (pending_) ++superseded_;
    pending_.reset();
  }
  std::lock_guard io(ioMutex_);
  return write_(path_, data, mode_);
}

void FileWriter::stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  wake_.notify_one();
}

void FileWriter::join() {
  if (thread_.joinable()) thread_.join();
}

bool FileWriter::busy() const {
  std::lock_guard lock(mutex_);
  return pending_.has_value() || writing_;
}

std::uint64_t FileWriter::superseded() const {
  std::lock_guard lock(mutex_);
  return superseded_;
}

void FileWriter::run() {
  for (;;) {
    Pending job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return pending_.has_value() || stopping_; });
      if (!pending_) return;  // stopping, nothing left
      job = std::move(*pending_);
      pending_.reset();
      writing_ = true;
    }
    Status st = Ok{};
    {
      std::lock_guard io(ioMutex_);
      st = write_(path_, job.data, mode_);
    }
    if (job.done) {
      boost::asio::post(executor_, [done = std::move(job.done), st = std::move(st)] { done(st); });
    }
    std::lock_guard lock(mutex_);
    writing_ = false;
  }
}

}  // namespace citygate::core
