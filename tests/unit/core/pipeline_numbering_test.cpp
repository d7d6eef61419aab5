// Pipeline + SeqStore without a durable spool: when no seq reservation can be made durable,
// numbering stops with a clear error (counted, sources paused) instead of reusing seqs after a
// crash; it resumes by itself once the disk takes the reservation.
#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <functional>
#include <mutex>
#include <sstream>

#include "core/pipeline.hpp"
#include "core/seq_store.hpp"
#include "spool/memory_spool.hpp"
#include "support/generic_sensor.hpp"
#include "support/manual_clock.hpp"
#include "support/run_until.hpp"

using namespace citygate;
using namespace citygate::core;
using citygate::testing::runUntil;
namespace pb = citygate::v1;

namespace {

class IdleSink final : public Sink {
 public:
  std::string_view name() const override { return "idle"; }
  void beginBatch(std::string&) override {}
  void addRecord(std::string&, std::uint64_t, std::string_view) override {}
  bool ready() const override { return false; }
  void asyncDeliver(std::string, std::uint32_t, std::function<void(Outcome)>) override {}
  void setReadyCallback(std::function<void(bool)>) override {}
};

struct Disk {
  std::mutex m;
  bool fail = true;
};

}  // namespace

TEST_CASE("a seq reservation that cannot be made durable stops numbering: counted, said, sources paused") {
  char tmpl[] = "/tmp/citygate-numbering-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  boost::asio::io_context ioc;
  auto disk = std::make_shared<Disk>();
  SeqStore seq(dir + "/seq", true);
  REQUIRE(seq.open(1));  // the first block is durable
  REQUIRE(seq.writeOn(ioc.get_executor(), [disk](const std::string& path, std::string_view data, unsigned mode) {
    std::lock_guard lock(disk->m);
    if (disk->fail) return Status{Error{"cannot create " + path + ".tmp: Read-only file system"}};
    return writeFileAtomic(path, data, mode);
  }));
  spool::MemorySpool spool{64 << 20, pb::SpoolConfig::BLOCK_SOURCES};
  IdleSink sink;
  std::ostringstream logText;
  auto log = std::make_shared<spdlog::logger>("spool", std::make_shared<spdlog::sinks::ostream_sink_mt>(logText));
  PipelineOptions o;
  o.retryMin = std::chrono::milliseconds(1);
  o.retryMax = std::chrono::milliseconds(4);
  testing::ManualClock clock;
  auto pipeline = std::make_shared<Pipeline>(clock, o, spool, sink, seq, log);
  pipeline->start();

  SensorSpec spec = testing::genericSensor("s");
  SensorMemory memory;
  std::vector<std::uint64_t> numbered;
  pipeline->setTap([&](const pb::Reading& r, std::string_view) { numbered.push_back(r.seq()); });
  const auto submit = [&] {
    RawSample s;
    s.observedAt = clock.wallNow();
    s.values.push_back(RawValue{1, RawValue::State::Ok});
    pipeline->submit(spec, memory, std::move(s));
    ioc.poll();
    ioc.restart();
  };

  for (std::uint64_t i = 0; i < SeqStore::kBlock + 10; ++i) submit();
  CHECK(numbered.size() == SeqStore::kBlock);  // up to the durable reservation, never beyond
  CHECK(numbered.back() == SeqStore::kBlock);
  CHECK(pipeline->stats().unnumbered == 10);
  CHECK(pipeline->stats().notStored == 0);  // numbered readings only
  CHECK_FALSE(pipeline->accepting());
  CHECK(logText.str().find("numbering stopped") != std::string::npos);
  REQUIRE(runUntil(ioc, [&] { return !seq.writeError().empty(); }));  // the write on the thread fails
  submit();                                                           // the reason, logged as soon as it is known
  CHECK(pipeline->stats().unnumbered == 11);
  CHECK(logText.str().find("Read-only file system") != std::string::npos);

  {
    std::lock_guard lock(disk->m);
    disk->fail = false;
  }
  REQUIRE(runUntil(ioc, [&] {  // the retry timer asks again (and the write on the thread lands)
    clock.advance(o.retryMax, [&] { ioc.poll(); });
    return pipeline->accepting();
  }));
  CHECK(logText.str().find("numbering goes on at seq 4097") != std::string::npos);
  submit();
  CHECK(numbered.back() == SeqStore::kBlock + 1);
  pipeline->stop();
  std::filesystem::remove_all(dir);
}
