// FileWriter: writes happen on its thread; only the latest snapshot matters; results come back on
// the executor; writeNow() goes after the write in progress and drops the pending one.
#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/file_writer.hpp"
#include "support/run_until.hpp"

using namespace citygate;
using namespace citygate::core;
using namespace std::chrono_literals;
using citygate::testing::runUntil;

namespace {

struct Disk {
  std::mutex m;
  std::condition_variable cv;
  bool hold = true;  // the first write waits until released (5 s at most)
  bool holding = false;
  std::vector<std::string> written;
  std::vector<std::thread::id> threads;
};

}  // namespace

TEST_CASE("file writer: off the caller's thread, the latest snapshot wins, results on the executor") {
  boost::asio::io_context ioc;
  auto disk = std::make_shared<Disk>();
  FileWriter w(ioc.get_executor(), "/nowhere/f", 0600, [disk](const std::string&, std::string_view data, unsigned) {
    std::unique_lock lock(disk->m);
    disk->threads.push_back(std::this_thread::get_id());
    if (disk->hold) {
      disk->holding = true;
      disk->cv.notify_all();
      disk->cv.wait_for(lock, 5s, [&] { return !disk->hold; });
    }
    disk->written.emplace_back(data);
    return Status{Ok{}};
  });
  REQUIRE(w.start());
  std::vector<std::string> done;
  const auto note = [&](std::string what) {
    return [&done, what](const Status& st) { done.push_back(what + (st ? "" : "!")); };
  };
  w.write("a", note("a"));
  {
    std::unique_lock lock(disk->m);
    REQUIRE(disk->cv.wait_for(lock, 5s, [&] { return disk->holding; }));
  }
  w.write("b", note("b"));  // pending
  w.write("c", note("c"));  // replaces b
  CHECK(w.superseded() == 1);
  CHECK(w.busy());
  {
    std::lock_guard lock(disk->m);
    disk->hold = false;
    disk->cv.notify_all();
  }
  REQUIRE(runUntil(ioc, [&] { return done.size() == 2; }));
  CHECK(done == std::vector<std::string>{"a", "c"});
  CHECK_FALSE(w.busy());
  std::lock_guard lock(disk->m);
  CHECK(disk->written == std::vector<std::string>{"a", "c"});
  for (const auto& t : disk->threads) CHECK(t != std::this_thread::get_id());
}

TEST_CASE("file writer: writeNow drops the pending snapshot and writes on the caller's thread") {
  boost::asio::io_context ioc;
  std::vector<std::string> written;
  std::mutex m;
  FileWriter w(ioc.get_executor(), "/nowhere/f", 0600, [&](const std::string&, std::string_view data, unsigned) {
    std::lock_guard lock(m);
    written.emplace_back(data);
    return Status{Ok{}};
  });
  // Not started: write() fails at once (on the executor), writeNow() still writes.
  bool failed = false;
  w.write("x", [&](const Status& st) { failed = !st; });
  ioc.run();
  CHECK(failed);
  CHECK(w.writeNow("final"));
  CHECK(written == std::vector<std::string>{"final"});
  REQUIRE(w.start());
  w.stop();
  w.join();
}
