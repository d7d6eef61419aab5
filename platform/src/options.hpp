// citygate-ingest's command line: every flag checked before any I/O, a clear message for each
// bad one. The broker's password comes from a file (--password-file), never from the command
// line; the database's from libpq's own means (PGPASSWORD, PGPASSFILE / ~/.pgpass) or the
// connection string, and neither is ever logged.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace citygate::ingest {

struct Options {
  std::vector<std::string> brokers;  // failover order
  std::string clientId = "citygate-ingest";
  std::string prefix = "citygate/v1";
  std::string username;
  std::string passwordFile;
  std::string caFile;
  std::string database;  // libpq connection string
  std::chrono::milliseconds grace{2000};
  std::chrono::milliseconds answerTimeout{10000};
  std::chrono::milliseconds backoffMax{60000};
  std::size_t maxGaps = 10000;
  std::string ngsiLdOut;  // JSON lines, appended
  std::chrono::seconds summaryInterval{60};
  std::string logLevel = "info";
  std::string mapFile;  // offline: a ReadingBatch file ("-": stdin) to NGSI-LD JSON lines on stdout
  bool help = false;
};

extern const char* const kUsage;

// nullopt and `error` set when a flag is unknown, misses its value, or has a bad one.
std::optional<Options> parseOptions(const std::vector<std::string>& args, std::string& error);

}  // namespace citygate::ingest
