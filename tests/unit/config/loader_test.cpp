// Config cases as folders (tests/data/config/<case>/): config.textproto, optional profiles/, and
// expected.txt with the exact diagnostics (or "OK"). Every case runs from its own folder so the
// paths in the diagnostics are relative.
//
// What git cannot hold (FIFOs, links to devices, huge files, modes, owners) is made by the case's
// setup.txt, one action per line, in a copy of the folder:
//   mode PATH 0600 | owner PATH UID (root only: the case is skipped otherwise) | fifo PATH |
//   symlink PATH TARGET | size PATH BYTES (a sparse file)
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <sstream>
#include <thread>

#include "app/validate.hpp"
#include "inputs/modbus/spec.hpp"

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

// A copy of a case folder with its setup.txt carried out; removed when it goes.
struct Staged {
  fs::path dir;
  bool skipped = false;
  explicit Staged(const fs::path& from) {
    char tmpl[] = "/tmp/citygate-case-XXXXXX";
    dir = ::mkdtemp(tmpl);
    fs::copy(from, dir, fs::copy_options::recursive);
    std::istringstream setup(slurp(from / "setup.txt"));
    std::string line;
    while (std::getline(setup, line)) {
      std::istringstream words(line);
      std::string action;
      std::string path;
      std::string arg;
      words >> action >> path >> arg;
      if (action.empty() || action[0] == '#') continue;
      const fs::path p = dir / path;
      if (p.has_parent_path()) fs::create_directories(p.parent_path());
      if (action == "mode") {
        REQUIRE(::chmod(p.c_str(), static_cast<mode_t>(std::stoul(arg, nullptr, 8))) == 0);
      } else if (action == "owner") {
        if (::geteuid() != 0) {
          skipped = true;
          continue;
        }
        REQUIRE(::chown(p.c_str(), static_cast<uid_t>(std::stoul(arg)), static_cast<gid_t>(-1)) == 0);
      } else if (action == "fifo") {
        REQUIRE(::mkfifo(p.c_str(), 0600) == 0);
      } else if (action == "symlink") {
        fs::create_symlink(arg, p);
      } else if (action == "size") {
        { std::ofstream(p.string()); }
        fs::resize_file(p, std::stoull(arg));
      } else {
        FAIL("unknown setup action '", action, "' in ", (from / "setup.txt").string());
      }
    }
  }
  ~Staged() { fs::remove_all(dir); }
};

}  // namespace

TEST_CASE("config cases: every folder's diagnostics match expected.txt") {
  const fs::path root = fs::path(CITYGATE_SOURCE_DIR) / "tests/data/config";
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (!entry.is_directory()) continue;
    ++cases;
    SUBCASE(entry.path().filename().c_str()) {
      INFO("case: ", entry.path().filename().string());
      std::optional<Staged> staged;
      if (fs::exists(entry.path() / "setup.txt")) staged.emplace(entry.path());
      if (staged && staged->skipped) {
        MESSAGE("skipped (needs root to set an owner): ", entry.path().filename().string());
      } else {
        const std::string want = slurp(entry.path() / "expected.txt");
        Cwd cwd(staged ? staged->dir : entry.path());
        // A FIFO must be reported, not waited on: the check runs with a deadline (on a thread of its
        // own, left behind should it hang, so that the test fails instead of hanging).
        auto result = std::make_shared<std::promise<std::string>>();
        auto got = result->get_future();
        std::thread([result] { result->set_value(validate("config.textproto")); }).detach();
        REQUIRE(got.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
        CHECK(got.get() == want);
      }
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
