// Spool figures: append throughput (with the group commit running), time until the last append is
// durable, recovery time, read-out throughput (readBatch + acknowledge, as a replay does), bytes
// written and bytes on disk per reading, for the file spool and the memory spool. Prints; asserts
// nothing (a benchmark reports, it does not judge).
//
//   build/<dir>/bin/bench_spool [--readings N] [--dir DIR] [--durability-ms MS]
//   build/<dir>/bin/bench_spool --fill DIR --readings N     (a backlog for spool_replay.py)
//
// The readings are real citygate.v1.Reading messages as the traffic counter produces them.
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "citygate/v1/reading.pb.h"
#include "core/time.hpp"
#include "core/wire.hpp"
#include "spool/file_spool.hpp"
#include "spool/memory_spool.hpp"

using namespace citygate;
using namespace citygate::spool;
namespace pb = citygate::v1;
using Clock = std::chrono::steady_clock;

namespace {

// The records as a ReadingBatch's readings: what the native sink does with them.
class BatchFramer final : public citygate::core::RecordVisitor {
 public:
  explicit BatchFramer(std::string& out) : out_(out) {}
  void record(std::uint64_t /*seq*/, std::string_view record) override {
    citygate::core::wire::appendLengthDelimited(out_, citygate::v1::ReadingBatch::kReadingsFieldNumber, record);
  }

 private:
  std::string& out_;
};

std::string trafficReading(std::uint64_t seq) {
  pb::Reading r;
  r.set_seq(seq);
  r.set_sensor_id("traffic-pilatusstrasse");
  toTimestamp(WallClock::now(), r.mutable_observed_at());
  r.set_quality(pb::GOOD);
  auto* m = r.mutable_source()->mutable_modbus();
  m->set_bus("traffic-cabinet");
  m->set_unit_id(3);
  m->set_address(static_cast<std::uint32_t>((seq % 4) * 10));
  auto* t = r.mutable_traffic_flow_observed();
  t->set_lane_id(static_cast<std::uint32_t>(1 + seq % 4));
  t->mutable_intensity()->set_value(static_cast<double>(seq % 300));
  t->mutable_intensity()->set_unit_code("E50");
  t->mutable_occupancy()->set_value(0.25);
  t->mutable_occupancy()->set_unit_code("C62");
  t->mutable_average_vehicle_speed()->set_value(52.3);
  t->mutable_average_vehicle_speed()->set_unit_code("KMH");
  return r.SerializeAsString();
}

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void runUntil(boost::asio::io_context& ioc, const std::function<bool()>& done) {
  ioc.restart();
  const auto work = boost::asio::prefer(ioc.get_executor(), boost::asio::execution::outstanding_work.tracked);
  while (!done()) ioc.run_one_for(std::chrono::milliseconds(10));
}

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
}

FileSpoolOptions optionsFor(const std::string& dir, std::uint64_t readings, int durabilityMs) {
  FileSpoolOptions o;
  o.dir = dir;
  o.maxBytes = std::max<std::uint64_t>(64ULL << 20, readings * 256);
  o.durability = std::chrono::milliseconds(durabilityMs);
  return o;
}

int fill(const std::string& dir, std::uint64_t readings) {
  boost::asio::io_context ioc;
  auto opened = FileSpool::open(ioc.get_executor(), optionsFor(dir, readings, 100), quiet());
  if (!opened) {
    std::fprintf(stderr, "bench_spool: %s\n", opened.error().c_str());
    return 1;
  }
  auto& s = *opened.value();
  std::uint64_t seq = s.recoveredNextSeq() > 0 ? s.recoveredNextSeq() : 1;
  for (std::uint64_t i = 0; i < readings; ++i, ++seq) {
    if (s.append(seq, trafficReading(seq)) != AppendResult::Ok) {
      std::fprintf(stderr, "bench_spool: append failed: %s\n", s.stats().lastError.c_str());
      return 1;
    }
  }
  s.close();
  std::printf("filled %s: %llu readings, next seq %llu, %llu bytes\n", dir.c_str(),
              static_cast<unsigned long long>(readings), static_cast<unsigned long long>(seq),
              static_cast<unsigned long long>(s.stats().bytes));
  return 0;
}

void benchFile(const std::string& dir, std::uint64_t n, int durabilityMs, const std::vector<std::string>& records) {
  boost::asio::io_context ioc;
  std::filesystem::remove_all(dir);
  auto s = std::move(FileSpool::open(ioc.get_executor(), optionsFor(dir, n, durabilityMs), quiet())).value();
  auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) (void)s->append(i + 1, records[i % records.size()]);
  const double appendS = secondsSince(t0);
  s->syncNow();
  runUntil(ioc, [&] { return s->settled(); });
  const double durableS = secondsSince(t0);
  const auto st = s->stats();
  s->close();
  s.reset();

  t0 = Clock::now();
  s = std::move(FileSpool::open(ioc.get_executor(), optionsFor(dir, n, durabilityMs), quiet())).value();
  const double recoverS = secondsSince(t0);

  t0 = Clock::now();
  std::uint64_t read = 0;
  std::uint64_t payloadBytes = 0;
  for (;;) {
    std::string out;
    BatchFramer framer(out);
    const ReadResult r = s->readBatch(0, 200, 256 * 1024, framer);
    if (r.count == 0) break;
    read += r.count;
    payloadBytes += out.size();
    s->acknowledge(r.lastSeq);
  }
  const double readS = secondsSince(t0);
  const auto after = s->stats();
  s->close();
  std::filesystem::remove_all(dir);

  std::printf("file spool (durability %d ms, segment %llu KiB), %llu readings of ~%zu bytes\n", durabilityMs,
              static_cast<unsigned long long>(FileSpoolOptions{}.segmentBytes >> 10),
              static_cast<unsigned long long>(n), records[0].size());
  std::printf("  append                 %10.0f readings/s  (%.1f MB/s)\n", static_cast<double>(n) / appendS,
              static_cast<double>(st.bytesWritten) / appendS / 1e6);
  std::printf("  last append durable    %10.3f s after the first\n", durableS);
  std::printf("  recovery (open)        %10.3f s  (%.0f readings/s scanned)\n", recoverS,
              static_cast<double>(n) / recoverS);
  std::printf("  read + acknowledge     %10.0f readings/s  (%llu read, %.1f MB of batch payload)\n",
              static_cast<double>(read) / readS, static_cast<unsigned long long>(read),
              static_cast<double>(payloadBytes) / 1e6);
  std::printf("  bytes on disk/reading  %10.1f  (payload %zu + 16 frame, headers, ack file)\n",
              static_cast<double>(st.bytes) / static_cast<double>(n), records[0].size());
  std::printf("  bytes written/reading  %10.1f  (including the ack slot writes of the read-out: %.1f)\n",
              static_cast<double>(st.bytesWritten) / static_cast<double>(n),
              static_cast<double>(st.bytesWritten + after.bytesWritten) / static_cast<double>(n));
}

void benchMemory(std::uint64_t n, const std::vector<std::string>& records) {
  MemorySpool s(std::max<std::uint64_t>(64ULL << 20, n * 256), pb::SpoolConfig::DROP_OLDEST);
  auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) (void)s.append(i + 1, records[i % records.size()]);
  const double appendS = secondsSince(t0);
  t0 = Clock::now();
  std::uint64_t read = 0;
  for (;;) {
    std::string out;
    BatchFramer framer(out);
    const ReadResult r = s.readBatch(0, 200, 256 * 1024, framer);
    if (r.count == 0) break;
    read += r.count;
    s.acknowledge(r.lastSeq);
  }
  const double readS = secondsSince(t0);
  std::printf("memory spool, %llu readings\n", static_cast<unsigned long long>(n));
  std::printf("  append                 %10.0f readings/s\n", static_cast<double>(n) / appendS);
  std::printf("  read + acknowledge     %10.0f readings/s\n", static_cast<double>(read) / readS);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t n = 200000;
  std::string dir = "/tmp/citygate-bench-spool-" + std::to_string(::getpid());
  std::string fillDir;
  int durabilityMs = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_spool: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--readings") {
      n = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--dir") {
      dir = next();
    } else if (a == "--durability-ms") {
      durabilityMs = std::atoi(next().c_str());
    } else if (a == "--fill") {
      fillDir = next();
    } else {
      std::fprintf(stderr,
                   "usage: bench_spool [--readings N] [--dir DIR] [--durability-ms MS] | --fill DIR --readings N\n");
      return 2;
    }
  }
  if (!fillDir.empty()) return fill(fillDir, n);
  std::vector<std::string> records;
  for (std::uint64_t i = 1; i <= 64; ++i) records.push_back(trafficReading(i));
  benchFile(dir, n, durabilityMs, records);
  benchMemory(n, records);
  return 0;
}
