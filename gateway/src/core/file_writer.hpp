// FileWriter: one small file kept up to date atomically (writeFileAtomic: temp, fsync, rename,
// directory fsync) by its own thread, so that the executor never waits for a disk. Only the latest
// snapshot matters: write() replaces a snapshot still pending (its callback is then never called,
// and superseded() counts it); a write in progress is finished first. Each result is posted to the
// executor as done(status).
//
// writeNow() writes on the caller's thread, after any write in progress, and drops a pending
// snapshot (the caller's is newer): for a start-up check before the executor serves anything, and
// for a final write. stop() takes no more snapshots; the thread still writes the pending one and
// ends; join() (the destructor too) waits for it and must not run on the executor.
//
// Threading: write(), writeNow(), stop(), busy() from any thread; callbacks on the executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "core/result.hpp"

namespace citygate::core {

class FileWriter {
 public:
  // The write itself (a seam for tests: a failing or blocking writer); default writeFileAtomic.
  using WriteFn = std::function<Status(const std::string& path, std::string_view data, unsigned mode)>;
  using Done = std::function<void(const Status&)>;

  FileWriter(boost::asio::any_io_executor executor, std::string path, unsigned mode, WriteFn write = {});
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  // Starts the thread; an error when the system refuses it (then write() fails every snapshot).
  Status start();
  void write(std::string data, Done done);
  Status writeNow(std::string_view data);
  void stop();
  void join();

  bool busy() const;  // a snapshot pending or being written
  std::uint64_t superseded() const;
  const std::string& path() const { return path_; }

 private:
  struct Pending {
    std::string data;
    Done done;
  };
  void run();

  boost::asio::any_io_executor executor_;
  const std::string path_;
  const unsigned mode_;
  WriteFn write_;
  std::thread thread_;
  std::mutex ioMutex_;  // one write of the file at a time (the thread's, writeNow's)
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<Pending> pending_;
  bool writing_ = false;
  bool stopping_ = false;
  std::uint64_t superseded_ = 0;
};

}  // namespace citygate::core
