// The health report (GatewayHealth) assembled from its parts: each function fills one section
// from the component it reports on. Gateway::health() (health.cpp) puts them together with every
// source's own part (sources::Source::fillHealth). On the executor; reads /proc/self/statm and
// getrusage(), nothing that blocks.
#pragma once

#include <cstdint>
#include <string>

#include "citygate/v1/config.pb.h"
#include "citygate/v1/status.pb.h"
#include "core/time.hpp"

namespace citygate::core {
class Clock;
class ClockSyncMonitor;
class Pipeline;
class SeqStore;
class Spool;
}  // namespace citygate::core
namespace citygate::mqtt {
class Session;
class ReadingsSink;
}  // namespace citygate::mqtt

namespace citygate::sparkplug {
class EdgeNode;
}
namespace citygate::commands {
class Service;
}

namespace citygate::app {

// The spool's section, in the health report and in the birth message.
void fillSpoolHealth(const core::Spool& spool, const core::Pipeline* pipeline, const core::SeqStore* seq,
                     citygate::v1::SpoolHealth& sp);
// The file system of the spool's directory (statvfs): free and total bytes.
void fillSpoolDisk(const std::string& dir, citygate::v1::SpoolHealth& sp);
void fillClockHealth(const core::ClockSyncMonitor& monitor, const core::Clock& clock, citygate::v1::ClockHealth& c);
// `readings`: null in Sparkplug B mode (the edge node's figures are GatewayHealth.sparkplug).
void fillMqttHealth(const mqtt::Session& session, const mqtt::ReadingsSink* readings, citygate::v1::MqttHealth& mq);
void fillSparkplugHealth(const sparkplug::EdgeNode& node, std::uint64_t bdSeq,
                         const citygate::v1::SparkplugConfig& config, citygate::v1::SparkplugHealth& out);
void fillProcessHealth(SteadyClock::duration uptime, citygate::v1::ProcessHealth& p);
void fillCommandsHealth(const commands::Service& service, const citygate::v1::CommandsConfig& config,
                        citygate::v1::CommandsHealth& ch);
void addPipelineCounters(const core::Pipeline& pipeline, citygate::v1::GatewayHealth& h);

std::uint64_t currentRssBytes();

}  // namespace citygate::app
