// The daemon's own configuration file: whether it holds the running text, and the atomic save of
// `config apply --save` (temporary file, fsync, rename, <config>.bak, mode 0600).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/config_file.hpp"

namespace fs = std::filesystem;
using namespace citygate;
using namespace citygate::config;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    char tmpl[] = "/tmp/citygate-cfgfile-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add);
    fs::remove_all(dir);
  }
  std::string file(const std::string& name, const std::string& content, unsigned mode = 0640) const {
    const fs::path p = dir / name;
    std::ofstream(p, std::ios::binary) << content;
    ::chmod(p.c_str(), mode);
    return p.string();
  }
  std::size_t entries() const {
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

unsigned modeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("compareConfigFile: same, differs, missing, not a regular file") {
  TempDir t;
  const auto cfg = t.file("gw.textproto", "gateway_id: \"a\"\n");
  CHECK(compareConfigFile(cfg, "gateway_id: \"a\"\n").state == FileState::Same);
  CHECK(compareConfigFile(cfg, "gateway_id: \"b\"\n").state == FileState::Differs);
  const auto gone = compareConfigFile((t.dir / "nope").string(), "x");
  CHECK(gone.state == FileState::Missing);
  CHECK_FALSE(gone.error.empty());
  CHECK(compareConfigFile(t.dir.string(), "x").state == FileState::Unreadable);
}

TEST_CASE("a save replaces the file atomically, keeps the old one as .bak, both mode 0600") {
  TempDir t;
  const auto cfg = t.file("gw.textproto", "old\n", 0644);
  REQUIRE(saveConfigFile(cfg, "new\n"));
  CHECK(slurp(cfg) == "new\n");
  CHECK(slurp(cfg + ".bak") == "old\n");
  CHECK(modeOf(cfg) == 0600);
  CHECK(modeOf(cfg + ".bak") == 0600);
  CHECK(t.entries() == 2);  // no temporary file left behind
  // The next save moves the backup on.
  REQUIRE(saveConfigFile(cfg, "newer\n"));
  CHECK(slurp(cfg) == "newer\n");
  CHECK(slurp(cfg + ".bak") == "new\n");
  CHECK(t.entries() == 2);
}

TEST_CASE("a save of the text the file already holds writes nothing, not even a backup") {
  TempDir t;
  const auto cfg = t.file("gw.textproto", "same\n", 0640);
  auto prepared = prepareSave(cfg, "same\n");
  REQUIRE(prepared);
  CHECK(prepared->unchanged());
  REQUIRE(commitSave(prepared.value()));
  CHECK(modeOf(cfg) == 0640);
  CHECK_FALSE(fs::exists(cfg + ".bak"));
}

TEST_CASE("prepared but discarded: nothing visible changes, prepared files are synced but hidden") {
  TempDir t;
  const auto cfg = t.file("gw.textproto", "old\n");
  auto prepared = prepareSave(cfg, "new\n");
  REQUIRE(prepared);
  CHECK(slurp(cfg) == "old\n");
  CHECK(slurp(prepared->tmp) == "new\n");
  CHECK(slurp(prepared->backupTmp) == "old\n");
  CHECK(fs::path(prepared->tmp).parent_path() == t.dir);  // same directory: rename is atomic
  discardSave(prepared.value());
  CHECK(t.entries() == 1);
  CHECK(slurp(cfg) == "old\n");
}

TEST_CASE("a config file that does not exist yet is created, without a backup") {
  TempDir t;
  const auto cfg = (t.dir / "gw.textproto").string();
  REQUIRE(saveConfigFile(cfg, "first\n"));
  CHECK(slurp(cfg) == "first\n");
  CHECK_FALSE(fs::exists(cfg + ".bak"));
}

TEST_CASE("a linked config file: the target is replaced, the link stays, the backup is beside the target") {
  TempDir t;
  fs::create_directory(t.dir / "real");
  const auto target = t.file("real/gw.textproto", "old\n");
  const auto link = (t.dir / "gw.textproto").string();
  fs::create_symlink(target, link);
  REQUIRE(saveConfigFile(link, "new\n"));
  CHECK(fs::is_symlink(link));
  CHECK(slurp(link) == "new\n");
  CHECK(slurp(target + ".bak") == "old\n");
}

TEST_CASE("a directory that cannot be written: an error naming it, the file untouched") {
  if (::geteuid() == 0) {
    // root writes anyway; a read-only bind mount is what the systemd unit would give. Check the
    // error path through a directory that does not exist instead.
    TempDir t;
    const auto cfg = (t.dir / "no-such-dir" / "gw.textproto").string();
    auto st = saveConfigFile(cfg, "x\n");
    REQUIRE_FALSE(st);
    CHECK(st.error().find("cannot create a file in " + (t.dir / "no-such-dir").string()) != std::string::npos);
    return;
  }
  TempDir t;
  const auto cfg = t.file("gw.textproto", "old\n");
  fs::permissions(t.dir, fs::perms::owner_read | fs::perms::owner_exec);
  auto st = saveConfigFile(cfg, "new\n");
  REQUIRE_FALSE(st);
  CHECK(st.error().find("cannot create a file in " + t.dir.string()) != std::string::npos);
  CHECK(slurp(cfg) == "old\n");
}

TEST_CASE("backupPath") {
  CHECK(backupPath("/etc/citygate/citygate.textproto") == "/etc/citygate/citygate.textproto.bak");
}
