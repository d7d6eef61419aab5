// readSmallFile (regular files only, without blocking, bounded), ReadPolicy (what a configuration
// sent through the control socket may make the daemon read) and the UTF-8 rule.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "config/diagnostics.hpp"
#include "config/files.hpp"
#include "core/utf8.hpp"

namespace fs = std::filesystem;
using namespace citygate;
using namespace citygate::config;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    char tmpl[] = "/tmp/citygate-files-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string file(const std::string& name, const std::string& content) const {
    const fs::path p = dir / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
};

}  // namespace

TEST_CASE("readSmallFile: a regular file up to the limit is read whole") {
  TempDir t;
  const std::string exact = t.file("exact", std::string(100, 'x'));
  auto f = readSmallFile(exact, 100);
  REQUIRE(f.ok());
  CHECK(f.bytes == std::string(100, 'x'));
  CHECK(readSmallFile(t.file("empty", ""), 100).bytes.empty());

  const auto over = readSmallFile(t.file("over", std::string(101, 'x')), 100);
  CHECK(over.fault == FileFault::TooLarge);
  CHECK(over.error == "101 bytes: larger than the 100 bytes limit");

  const auto missing = readSmallFile((t.dir / "nope").string(), 100);
  CHECK(missing.fault == FileFault::Missing);
  CHECK(missing.error == "cannot open: No such file or directory");
}

TEST_CASE("readSmallFile: a FIFO, /dev/zero and a directory are refused at once, a huge file is not read") {
  TempDir t;
  const std::string fifo = (t.dir / "p.textproto").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const auto start = std::chrono::steady_clock::now();
  auto f = readSmallFile(fifo, kMaxProfileBytes);
  CHECK(f.fault == FileFault::NotRegular);
  CHECK(f.error == "not a regular file (FIFO)");

  const std::string zero = (t.dir / "zero.textproto").string();
  fs::create_symlink("/dev/zero", zero);
  f = readSmallFile(zero, kMaxProfileBytes);
  CHECK(f.fault == FileFault::NotRegular);
  CHECK(f.error == "not a regular file (character device)");
  CHECK(readSmallFile(t.dir.string(), 10).error == "not a regular file (directory)");

  const std::string huge = (t.dir / "huge").string();
  { std::ofstream(huge).flush(); }
  fs::resize_file(huge, 8ULL << 30);  // sparse: 8 GiB announced, nothing on the disk
  f = readSmallFile(huge, kMaxConfigBytes);
  CHECK(f.fault == FileFault::TooLarge);
  CHECK(f.error == "8589934592 bytes: larger than the 1 MiB limit");
  CHECK(f.bytes.capacity() < 4096);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("readSmallFile: the check sees the open file before anything is read") {
  TempDir t;
  const std::string p = t.file("key", "secret\n");
  ::chmod(p.c_str(), 0644);
  auto f = readSmallFile(p, kMaxSecretBytes, [](const struct stat& st) {
    return (st.st_mode & 077) != 0 ? std::string("too open") : std::string();
  });
  CHECK(f.fault == FileFault::Refused);
  CHECK(f.error == "too open");
  CHECK(f.bytes.empty());
  ::chmod(p.c_str(), 0600);
  f = readSmallFile(p, kMaxSecretBytes, [](const struct stat& st) {
    return (st.st_mode & 077) != 0 ? std::string("too open") : std::string();
  });
  CHECK(f.ok());
  CHECK(f.bytes == "secret\n");
}

TEST_CASE("absolutePath resolves . and .. by their text") {
  CHECK(absolutePath("/etc/citygate/../shadow") == "/etc/shadow");
  CHECK(absolutePath("/etc//citygate/./keys/") == "/etc/citygate/keys");
  CHECK(absolutePath("/../..") == "/");
  CHECK(absolutePath("keys/a") == absolutePath(fs::current_path().string() + "/keys/a"));
}

TEST_CASE("ReadPolicy: inside the directories and the named files only, outside refused by the text alone") {
  TempDir t;
  fs::create_directories(t.dir / "etc" / "profiles");
  const std::string etc = (t.dir / "etc").string();
  const auto p = ReadPolicy::within({etc}, {"/srv/ca.pem"}, etc + " (the running configuration's directory)");
  CHECK(p.restricted());
  CHECK(p.check(etc + "/profiles/a.textproto").empty());
  CHECK(p.check(etc + "/keys/missing.nwk").empty());  // inside: the reader says what is wrong with it
  CHECK(p.check("/srv/ca.pem").empty());
  CHECK(p.check("/srv/../srv/ca.pem").empty());
  // Outside: one message, whether the path exists or not, whatever it is.
  CHECK(p.check("/etc/shadow") ==
        "not allowed: /etc/shadow is outside " + etc + " (the running configuration's directory)");
  CHECK(p.check("/nonexistent/x") ==
        "not allowed: /nonexistent/x is outside " + etc + " (the running configuration's directory)");
  CHECK_FALSE(p.check(etc + "/../etc2/x").empty());
  CHECK_FALSE(p.check(etc + "/../secret").empty());
  // A link inside that leads outside.
  fs::create_symlink("/etc/passwd", t.dir / "etc" / "profiles" / "h.textproto");
  CHECK(p.check(etc + "/profiles/h.textproto").find("leads outside") != std::string::npos);
  CHECK(ReadPolicy::any().check("/etc/shadow").empty());
}

TEST_CASE("UTF-8: valid text passes, Latin-1, overlong forms, surrogates and truncation do not") {
  CHECK(core::firstInvalidUtf8("plain ascii") == std::string_view::npos);
  CHECK(core::firstInvalidUtf8("\xc2\xb5g/m\xc2\xb3 Z\xc3\xbcrich \xe2\x82\xac \xf0\x9f\x9a\xa6") ==
        std::string_view::npos);
  CHECK(core::firstInvalidUtf8("Z\xfcrich") == 1);         // Latin-1 ü
  CHECK(core::firstInvalidUtf8("ab\xc0\xaf") == 2);        // overlong '/'
  CHECK(core::firstInvalidUtf8("\xed\xa0\x80") == 0);      // a surrogate
  CHECK(core::firstInvalidUtf8("\xf4\x90\x80\x80") == 0);  // above U+10FFFF
  CHECK(core::firstInvalidUtf8("ok\xe2\x82") == 2);        // truncated at the end
  CHECK(core::firstInvalidUtf8(std::string_view("a\0b", 3)) == std::string_view::npos);

  Diagnostics d;
  CHECK(checkUtf8("c.textproto", "gateway_id: \"gw\"\n\tname: \"Z\xfc\"", d) == false);
  REQUIRE(d.size() == 1);
  CHECK(d.items()[0].line == 2);
  CHECK(d.items()[0].column == 17);  // the tab counts to column 9, as protobuf counts it
  CHECK(d.items()[0].message.find("byte 0xFC is not UTF-8") == 0);
}
