// Config cases as folders (tests/data/config/<case>/): config.textproto, optional profiles/, and
// expected.txt with the exact diagnostics (or "OK"). Every case runs from its own folder so the
// paths in the diagnostics are relative.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/validate.hpp"

namespace fs = std::filesystem;
using namespace citygate;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Cwd {
  explicit Cwd(const fs::path& p) : old(fs::current_path()) { fs::current_path(p); }
  ~Cwd() { fs::current_path(old); }
  fs::path old;
};

std::string validate(const std::string& file) {
  config::Diagnostics d;
  auto v = app::validateFile(file, d);
  if (v && d.empty()) return "OK\n";
  return d.str();
}

}  // namespace

TEST_CASE("config cases: every folder's diagnostics match expected.txt") {
  const fs::path root = fs::path(CITYGATE_SOURCE_DIR) / "tests/data/config";
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (!entry.is_directory()) continue;
    ++cases;
    SUBCASE(entry.path().filename().c_str()) {
      Cwd cwd(entry.path());
      const std::string got = validate("config.textproto");
      const std::string want = slurp("expected.txt");
      INFO("case: ", entry.path().filename().string());
      CHECK(got == want);
    }
  }
  CHECK(cases >= 10);
}

TEST_CASE("secret files must be 0600, and the message says how to fix it") {
  char tmpl[] = "/tmp/citygate-cfg-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string pass = dir + "/mqtt.pass";
  { std::ofstream(pass) << "s3cret\n"; }
  ::chmod(pass.c_str(), 0644);
  const std::string cfg = dir + "/c.textproto";
  {
    std::ofstream(cfg)
        << "gateway_id: \"gw\"\nmqtt {\n  uri: \"tcp://127.0.0.1:1883\"\n  username: \"u\"\n  password_file: \"" << pass
        << "\"\n}\nspool { dir: \"" << dir << "/spool\" }\n";
  }
  config::Diagnostics d;
  CHECK_FALSE(app::validateFile(cfg, d));
  REQUIRE(d.size() == 1);
  CHECK(d.items()[0].line == 5);
  CHECK(d.items()[0].column == 3);
  CHECK(d.items()[0].message.find("mode 0644") != std::string::npos);
  CHECK(d.items()[0].message.find("chmod 600") != std::string::npos);
  CHECK(d.str().find("s3cret") == std::string::npos);
  ::chmod(pass.c_str(), 0600);
  config::Diagnostics ok;
  CHECK(app::validateFile(cfg, ok));
  fs::remove_all(dir);
}

TEST_CASE("the shipped profiles are valid") {
  config::ProfileLibrary lib;
  config::Diagnostics d;
  REQUIRE(lib.load("", d));
  CHECK(lib.find("vaisala-aqt530") != nullptr);
  CHECK(lib.find("citygate-traffic-counter-4lane") != nullptr);
  CHECK(lib.find("parking-guidance-8bay") != nullptr);
  for (const auto& name : lib.names()) {
    std::vector<core::PointSpec> pts;
    std::vector<modbus::PointRead> reads;
    INFO(name);
    CHECK(modbus::compileProfile(*lib.find(name), pts, reads, d));
    CHECK(d.str() == "");
  }
}
