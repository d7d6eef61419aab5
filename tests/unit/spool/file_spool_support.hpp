// Helpers for the file-spool tests: temporary directories, one io_context, and waiting for the
// sync worker with a deadline (never a bare sleep).
#pragma once

#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "spool/file_spool.hpp"
#include "spool/sync_worker.hpp"

namespace file_spool_support {

using namespace citygate::spool;
namespace pb = citygate::v1;

inline boost::asio::io_context& ioc() {
  static boost::asio::io_context ctx;
  return ctx;
}

inline std::shared_ptr<spdlog::logger> quietLog() {
  static auto log = std::make_shared<spdlog::logger>("spool-test", std::make_shared<spdlog::sinks::null_sink_mt>());
  return log;
}

inline std::string tempDir(const char* tag = "spool") {
  std::string tmpl = std::string("/tmp/citygate-") + tag + "-XXXXXX";
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

// Runs the io_context until `done` holds; fails the test after `timeout`.
inline void runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ioc().restart();
  {
    // Completions come from the sync worker: keep the io_context from running out of work.
    const auto work = boost::asio::prefer(ioc().get_executor(), boost::asio::execution::outstanding_work.tracked);
    while (!done()) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      ioc().run_one_for(std::chrono::milliseconds(5));
    }
  }
  ioc().poll();
}

inline void settle(FileSpool& s) {
  s.syncNow();
  runUntil([&] { return s.settled(); });
}

inline FileSpoolOptions options(const std::string& dir, std::uint64_t maxBytes = 1 << 20,
                                pb::SpoolConfig::WhenFull w = pb::SpoolConfig::DROP_OLDEST) {
  FileSpoolOptions o;
  o.dir = dir;
  o.maxBytes = maxBytes;
  o.whenFull = w;
  o.segmentBytes = 16 * 1024;
  o.durability = std::chrono::milliseconds(5);
  o.ackInterval = std::chrono::milliseconds(20);
  return o;
}

inline std::unique_ptr<FileSpool> openOk(const FileSpoolOptions& o) {
  auto r = FileSpool::open(ioc().get_executor(), o, quietLog());
  INFO((r ? std::string() : r.error()));
  REQUIRE(r.ok());
  return std::move(r).value();
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Bytes of every file in `dir` (what the spool really occupies).
inline std::uint64_t diskBytes(const std::string& dir, const char* ext = nullptr) {
  std::uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    if (ext && e.path().extension() != ext) continue;
    total += e.file_size();
  }
  return total;
}

// The settled seq in the ack file's newest intact slot (0: none).
inline std::uint64_t settledOnDisk(const std::string& dir) {
  const std::string bytes = slurp(dir + "/spool.ack");
  ack::Slot best;
  for (std::size_t off : {std::size_t{0}, ack::kSlotStride}) {
    ack::Slot slot;
    if (bytes.size() >= off + ack::kSlotSize &&
        ack::decodeSlot(std::string_view(bytes).substr(off, ack::kSlotSize), slot) == ack::SlotStatus::Ok &&
        slot.generation >= best.generation) {
      best = slot;
    }
  }
  return best.settledSeq;
}

inline std::size_t countFiles(const std::string& dir, const char* ext) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ext) ++n;
  }
  return n;
}

}  // namespace file_spool_support
