#include "options.hpp"

#include <charconv>
#include <functional>
#include <map>

namespace citygate::ingest {

const char* const kUsage = R"(usage: citygate-ingest --broker URI [--broker URI...] --database CONNINFO [flags]
       citygate-ingest --map FILE        (a ReadingBatch file, '-' for stdin, to NGSI-LD JSON lines)

  --broker URI              tcp://host:port or ssl://host:port (mqtt://, mqtts:// too); repeat for
                            failover, in order
  --client-id ID            MQTT client id of the persistent session (default citygate-ingest)
  --prefix P                topic prefix (default citygate/v1)
  --username U              MQTT user name
  --password-file F         MQTT password: the file's first line
  --ca-file F               CA certificates for ssl:// brokers
  --database CONNINFO       libpq connection string ("host=... dbname=..." or postgresql://...);
                            its password from PGPASSWORD or ~/.pgpass rather than here
  --grace-ms N              a seq missing this long is a gap and is refilled (default 2000)
  --answer-timeout-ms N     a refill without an answer this long is asked again (default 10000)
  --backoff-max-ms N        longest wait between two asks for the same gap (default 60000)
  --max-gaps N              missing ranges kept per gateway and epoch (default 10000)
  --ngsi-ld-out FILE        also append each new entity to FILE as a JSON line
  --summary-interval-s N    summary log line period (default 60; one on exit too)
  --log-level L             trace, debug, info, warn, error (default info)
  --help
)";

namespace {

bool number(const std::string& flag, const std::string& text, std::uint64_t min, std::uint64_t max, std::uint64_t& out,
            std::string& error) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    error = flag + ": '" + text + "' is not a whole number";
    return false;
  }
  if (v < min || v > max) {
    error = flag + ": " + text + " is out of range (" + std::to_string(min) + ".." + std::to_string(max) + ")";
    return false;
  }
  out = v;
  return true;
}

bool brokerUri(const std::string& uri, std::string& error) {
  for (const char* scheme : {"tcp://", "ssl://", "mqtt://", "mqtts://"}) {
    const std::string s = scheme;
    if (uri.rfind(s, 0) != 0) continue;
    const std::string rest = uri.substr(s.size());
    const auto colon = rest.rfind(':');
    std::uint64_t port = 0;
    std::string ignored;
    if (rest.empty() || colon == 0 ||
        (colon != std::string::npos && !number("port", rest.substr(colon + 1), 1, 65535, port, ignored))) {
      error = "--broker: '" + uri + "' is not scheme://host[:port] with a port 1..65535";
      return false;
    }
    return true;
  }
  error = "--broker: '" + uri + "' must start with tcp://, ssl://, mqtt:// or mqtts://";
  return false;
}

}  // namespace

std::optional<Options> parseOptions(const std::vector<std::string>& args, std::string& error) {
  Options o;
  using Setter = std::function<bool(const std::string& flag, const std::string& value)>;
  const auto ms = [&](std::chrono::milliseconds& field, std::uint64_t min, std::uint64_t max) {
    return [&field, &error, min, max](const std::string& flag, const std::string& v) {
      std::uint64_t n = 0;
      if (!number(flag, v, min, max, n, error)) return false;
      field = std::chrono::milliseconds(n);
      return true;
    };
  };
  const auto text = [&](std::string& field) {
    return [&field, &error](const std::string& flag, const std::string& v) {
      if (v.empty()) {
        error = flag + ": empty value";
        return false;
      }
      field = v;
      return true;
    };
  };
  const std::map<std::string, Setter> flags = {
      {"--broker",
       [&](const std::string&, const std::string& v) {
         if (!brokerUri(v, error)) return false;
         o.brokers.push_back(v);
         return true;
       }},
      {"--client-id",
       [&](const std::string& f, const std::string& v) {
         if (v.empty() || v.size() > 64) {
           error = f + ": 1..64 characters";
           return false;
         }
         o.clientId = v;
         return true;
       }},
      {"--prefix",
       [&](const std::string& f, const std::string& v) {
         if (v.empty() || v.find_first_of("+#") != std::string::npos || v.back() == '/') {
           error = f + ": '" + v + "' must be non-empty, without '+', '#' or a trailing '/'";
           return false;
         }
         o.prefix = v;
         return true;
       }},
      {"--username", text(o.username)},
      {"--password-file", text(o.passwordFile)},
      {"--ca-file", text(o.caFile)},
      {"--database", text(o.database)},
      {"--grace-ms", ms(o.grace, 0, 3600000)},
      {"--answer-timeout-ms", ms(o.answerTimeout, 100, 3600000)},
      {"--backoff-max-ms", ms(o.backoffMax, 100, 86400000)},
      {"--max-gaps",
       [&](const std::string& f, const std::string& v) {
         std::uint64_t n = 0;
         if (!number(f, v, 1, 10000000, n, error)) return false;
         o.maxGaps = n;
         return true;
       }},
      {"--ngsi-ld-out", text(o.ngsiLdOut)},
      {"--summary-interval-s",
       [&](const std::string& f, const std::string& v) {
         std::uint64_t n = 0;
         if (!number(f, v, 1, 86400, n, error)) return false;
         o.summaryInterval = std::chrono::seconds(n);
         return true;
       }},
      {"--log-level",
       [&](const std::string& f, const std::string& v) {
         for (const char* l : {"trace", "debug", "info", "warn", "error"}) {
           if (v == l) {
             o.logLevel = v;
             return true;
           }
         }
         error = f + ": '" + v + "' is not one of trace, debug, info, warn, error";
         return false;
       }},
      {"--map", text(o.mapFile)},
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> value;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    if (flag == "--help" || flag == "-h") {
      o.help = true;
      return o;
    }
    const auto it = flags.find(flag);
    if (it == flags.end()) {
      error = "unknown flag '" + flag + "' (--help lists them)";
      return std::nullopt;
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        error = flag + ": missing value";
        return std::nullopt;
      }
      value = args[++i];
    }
    if (!it->second(flag, *value)) return std::nullopt;
  }
  if (!o.mapFile.empty()) return o;
  if (o.brokers.empty()) {
    error = "--broker is required (one or more, in failover order)";
    return std::nullopt;
  }
  if (o.database.empty()) {
    error = "--database is required (a libpq connection string)";
    return std::nullopt;
  }
  return o;
}

}  // namespace citygate::ingest
