// citygate-ingest's flags: every bad one is refused with a message that names it.
#include "options.hpp"

#include <doctest/doctest.h>

using namespace citygate::ingest;

namespace {

std::string refused(std::vector<std::string> args) {
  std::string error;
  const auto o = parseOptions(args, error);
  CHECK_FALSE(o);
  return error;
}

}  // namespace

TEST_CASE("flags: a complete command line, both spellings, brokers in order") {
  std::string error;
  const auto o = parseOptions({"--broker", "tcp://a:1883", "--broker=mqtt://b:1884", "--database", "dbname=x",
                               "--grace-ms=500", "--client-id", "ingest-1", "--ngsi-ld-out", "/tmp/x.jsonl"},
                              error);
  REQUIRE(o);
  CHECK(o->brokers == std::vector<std::string>{"tcp://a:1883", "mqtt://b:1884"});
  CHECK(o->database == "dbname=x");
  CHECK(o->grace.count() == 500);
  CHECK(o->clientId == "ingest-1");
  CHECK(o->prefix == "citygate/v1");
}

TEST_CASE("flags: refusals name the flag and the problem") {
  CHECK(refused({"--nope"}).find("unknown flag '--nope'") != std::string::npos);
  CHECK(refused({"--broker"}) == "--broker: missing value");
  CHECK(refused({"--broker", "http://a"}).find("must start with tcp://") != std::string::npos);
  CHECK(refused({"--broker", "tcp://a:99999"}).find("port 1..65535") != std::string::npos);
  CHECK(refused({"--database", "x"}).find("--broker is required") != std::string::npos);
  CHECK(refused({"--broker", "tcp://a"}).find("--database is required") != std::string::npos);
  CHECK(refused({"--grace-ms", "2s"}) == "--grace-ms: '2s' is not a whole number");
  CHECK(refused({"--max-gaps", "0"}).find("out of range") != std::string::npos);
  CHECK(refused({"--prefix", "a/#"}).find("'+', '#'") != std::string::npos);
  CHECK(refused({"--log-level", "loud"}).find("not one of") != std::string::npos);
  CHECK(refused({"--client-id", ""}).find("1..64") != std::string::npos);
}

TEST_CASE("flags: --map needs no broker or database") {
  std::string error;
  const auto o = parseOptions({"--map", "-"}, error);
  REQUIRE(o);
  CHECK(o->mapFile == "-");
}
