// Recovery from the golden spool directories in tests/data/spool/<case>/ (written by
// tests/data/spool/make_golden.py from FORMAT.md): each is copied to a temporary directory,
// opened, and compared with its expected.txt.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "spool/file_spool_support.hpp"
#include "spool/spool_contract.hpp"

using namespace file_spool_support;
namespace fs = std::filesystem;

namespace {

struct Expected {
  std::vector<std::uint64_t> seqs;
  std::uint64_t nextSeq = 0;
  std::uint64_t corrupt = 0;
  std::uint64_t lost = 0;
  std::map<std::string, std::string> sizes;
  std::string error;
};

Expected parse(const std::string& text) {
  Expected e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    REQUIRE(colon != std::string::npos);
    const std::string key = line.substr(0, colon);
    std::istringstream v(line.substr(colon + 1));
    if (key == "seqs") {
      std::uint64_t s = 0;
      while (v >> s) e.seqs.push_back(s);
    } else if (key == "next_seq") {
      v >> e.nextSeq;
    } else if (key == "corrupt") {
      v >> e.corrupt;
    } else if (key == "lost") {
      v >> e.lost;
    } else if (key == "size") {
      std::string file;
      std::string size;
      v >> file >> size;
      e.sizes[file] = size;
    } else if (key == "error") {
      std::getline(v >> std::ws, e.error);
    } else {
      FAIL("unknown key " << key);
    }
  }
  return e;
}

std::map<std::string, std::string> contents(const std::string& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n == "spool.lock") continue;
    m[n] = slurp(e.path().string());
  }
  return m;
}

std::vector<fs::path> cases() {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(fs::path(CITYGATE_SOURCE_DIR) / "tests/data/spool")) {
    if (e.is_directory() && fs::exists(e.path() / "expected.txt")) v.push_back(e.path());
  }
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("spool golden files: recovery does what expected.txt says") {
  const auto all = cases();
  REQUIRE(all.size() >= 19);
  for (const auto& c : all) {
    CAPTURE(c.filename().string());
    const Expected exp = parse(slurp((c / "expected.txt").string()));
    const std::string dir = tempDir("golden");
    for (const auto& e : fs::directory_iterator(c)) {
      const std::string n = e.path().filename().string();
      if (n == "expected.txt" || n == "README") continue;
      fs::copy_file(e.path(), fs::path(dir) / n);
    }
    const auto before = contents(dir);
    auto r = FileSpool::open(ioc().get_executor(), options(dir), quietLog());
    if (!exp.error.empty()) {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().find(exp.error) != std::string::npos);
      CHECK(r.error().find("refusing to start") != std::string::npos);
      CHECK(contents(dir) == before);  // left untouched
      fs::remove_all(dir);
      continue;
    }
    INFO((r ? std::string() : r.error()));
    REQUIRE(r.ok());
    auto s = std::move(r).value();
    CHECK(s->recoveredNextSeq() == exp.nextSeq);
    CHECK(s->stats().corruptRecords == exp.corrupt);
    CHECK(s->stats().corruptReadings == exp.lost);
    CHECK(s->stats().readings == exp.seqs.size());
    CHECK(spool_contract::drain(*s, 2) == exp.seqs);
    for (const auto& [file, size] : exp.sizes) {
      CAPTURE(file);
      const fs::path p = fs::path(dir) / file;
      if (size == "gone") {
        CHECK_FALSE(fs::exists(p));
      } else if (size == "kept") {
        REQUIRE(fs::exists(p));
        CHECK(slurp(p.string()) == before.at(file));
      } else {
        REQUIRE(fs::exists(p));
        CHECK(fs::file_size(p) == std::stoull(size));
      }
    }
    s->close();
    s.reset();
    // A second start finds a clean directory: nothing more to cut, skip or count.
    auto again = openOk(options(dir));
    CHECK(again->recoveredNextSeq() == exp.nextSeq);
    CHECK(spool_contract::drain(*again, 100) == exp.seqs);
    again->close();
    fs::remove_all(dir);
  }
}
