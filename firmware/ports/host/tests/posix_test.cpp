// The host port's hardware: FileFlash keeps NOR semantics in a file, PtyUart carries bytes both
// ways through the slave a peer opens by its link, PosixBoard::idle() wakes on input, the clock
// starts at its start value. Every wait is for an event, bounded by a deadline (never a sleep).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/check.hpp"
#include "ports/host/posix.hpp"

namespace hal = citygate::fw::hal;
using citygate::fw::host::FileFlash;
using citygate::fw::host::MonotonicClock;
using citygate::fw::host::PosixBoard;
using citygate::fw::host::PtyUart;

namespace {

// A scratch directory for one test, removed with what the test left in it.
struct TempDir {
  char path[64];
  TempDir() {
    snprintf(path, sizeof path, "/tmp/fw-host-test.XXXXXX");
    if (mkdtemp(path) == nullptr) path[0] = '\0';
  }
  ~TempDir() {
    char command[96];
    snprintf(command, sizeof command, "rm -rf '%s'", path);
    if (path[0] != '\0' && system(command) != 0) perror("rm");
  }
  void file(char* out, size_t size, const char* name) const { snprintf(out, size, "%s/%s", path, name); }
};

bool allBytes(const uint8_t* data, size_t size, uint8_t value) {
  for (size_t i = 0; i < size; ++i) {
    if (data[i] != value) return false;
  }
  return true;
}

off_t fileSize(const char* path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

// Reads from fd until `size` bytes came or 5 s passed (poll: woken by the data).
size_t readFor(int fd, uint8_t* out, size_t size) {
  MonotonicClock clock;
  size_t got = 0;
  while (got < size && clock.nowMs() < 5000) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = read(fd, out + got, size - got);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return got;
}

}  // namespace

FW_TEST("FileFlash: a missing file is created erased, sectors of 4096") {
  TempDir dir;
  char path[128];
  dir.file(path, sizeof path, "flash.bin");
  FileFlash flash;
  FW_CHECK(flash.open(path, 6));
  FW_CHECK_EQ(flash.sectorSize(), 4096u);
  FW_CHECK_EQ(flash.sectorCount(), 6u);
  FW_CHECK_EQ(fileSize(path), 6 * 4096);
  static uint8_t all[6 * 4096];
  FW_CHECK(flash.read(0, all, sizeof all));
  FW_CHECK(allBytes(all, sizeof all, 0xFF));
}

FW_TEST("FileFlash: a write only clears bits, an erase sets the whole sector") {
  TempDir dir;
  char path[128];
  dir.file(path, sizeof path, "flash.bin");
  FileFlash flash;
  FW_CHECK(flash.open(path, 4));
  const uint8_t f0[] = {0xF0, 0xF0, 0xAA};
  const uint8_t x0f[] = {0x0F, 0xFF, 0xFF};
  FW_CHECK(flash.write(100, f0, sizeof f0));
  FW_CHECK(flash.write(100, x0f, sizeof x0f));  // ANDed: the 0xF0's zeros stay
  uint8_t got[3] = {};
  FW_CHECK(flash.read(100, got, sizeof got));
  FW_CHECK_EQ(got[0], 0x00);
  FW_CHECK_EQ(got[1], 0xF0);
  FW_CHECK_EQ(got[2], 0xAA);
  // Across a sector boundary, then erase one of the two sectors.
  const uint8_t zeros[8] = {};
  FW_CHECK(flash.write(4096 - 4, zeros, sizeof zeros));
  FW_CHECK(flash.erase(1));
  uint8_t edge[8] = {};
  FW_CHECK(flash.read(4096 - 4, edge, sizeof edge));
  FW_CHECK(allBytes(edge, 4, 0x00));
  FW_CHECK(allBytes(edge + 4, 4, 0xFF));
  FW_CHECK(flash.erase(0));
  FW_CHECK(flash.read(100, got, sizeof got));
  FW_CHECK(allBytes(got, sizeof got, 0xFF));
  FW_CHECK_EQ(flash.erases(), 2u);
  FW_CHECK_EQ(flash.bytesWritten(), 14u);
}

FW_TEST("FileFlash: out of range is refused, nothing written") {
  TempDir dir;
  char path[128];
  dir.file(path, sizeof path, "flash.bin");
  FileFlash flash;
  FW_CHECK(flash.open(path, 2));
  const uint8_t byte[2] = {0, 0};
  uint8_t out[2];
  FW_CHECK(!flash.write(2 * 4096, byte, 1));
  FW_CHECK(!flash.write(2 * 4096 - 1, byte, 2));
  FW_CHECK(!flash.write(0xFFFFFFFFu, byte, 2));  // offset + size wraps a uint32_t
  FW_CHECK(!flash.read(2 * 4096 - 1, out, 2));
  FW_CHECK(!flash.erase(2));
  FW_CHECK(flash.write(2 * 4096 - 1, byte, 1));  // the last byte is in range
  FW_CHECK(flash.read(2 * 4096 - 2, out, 2));
  FW_CHECK_EQ(out[0], 0xFF);
  FW_CHECK_EQ(out[1], 0x00);
  FW_CHECK_EQ(fileSize(path), 2 * 4096);
}

FW_TEST("FileFlash: contents survive a reopen; a short file is extended with 0xFF") {
  TempDir dir;
  char path[128];
  dir.file(path, sizeof path, "flash.bin");
  {
    FileFlash flash;
    FW_CHECK(flash.open(path, 1));
    const uint8_t data[] = {1, 2, 3};
    FW_CHECK(flash.write(10, data, sizeof data));
  }
  FileFlash flash;
  FW_CHECK(flash.open(path, 3));  // grown from 1 sector to 3
  FW_CHECK_EQ(fileSize(path), 3 * 4096);
  uint8_t got[3] = {};
  FW_CHECK(flash.read(10, got, sizeof got));
  FW_CHECK(got[0] == 1 && got[1] == 2 && got[2] == 3);
  static uint8_t rest[2 * 4096];
  FW_CHECK(flash.read(4096, rest, sizeof rest));
  FW_CHECK(allBytes(rest, sizeof rest, 0xFF));
}

FW_TEST("PtyUart: bytes both ways through the slave's link, idle() wakes on input") {
  TempDir dir;
  char link[128];
  dir.file(link, sizeof link, "uart");
  PtyUart uart;
  FW_CHECK(uart.open(link, 19200));
  FW_CHECK_EQ(uart.baud(), 19200u);
  char target[64] = {};
  FW_CHECK(readlink(link, target, sizeof target - 1) > 0);
  FW_CHECK(strcmp(target, uart.slavePath()) == 0);

  const int peer = open(link, O_RDWR | O_NOCTTY | O_NONBLOCK);
  FW_CHECK(peer >= 0);
  // Node -> peer, every byte value (raw mode: no CR/LF translation, no echo, no signals).
  uint8_t all[256];
  for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
  FW_CHECK(uart.write(all, sizeof all));
  uint8_t got[256] = {};
  FW_CHECK_EQ(readFor(peer, got, sizeof got), sizeof got);
  FW_CHECK(memcmp(got, all, sizeof all) == 0);

  // Peer -> node: idle() returns when the bytes arrive, long before its 10 s.
  PosixBoard board;
  FW_CHECK(board.watch(uart));
  FW_CHECK(write(peer, all, sizeof all) == static_cast<ssize_t>(sizeof all));
  MonotonicClock clock;
  size_t n = 0;
  uint8_t in[256] = {};
  while (n < sizeof in && clock.nowMs() < 5000) {
    board.idle(10000);
    n += uart.read(in + n, sizeof in - n);
  }
  FW_CHECK_EQ(n, sizeof in);
  FW_CHECK(memcmp(in, all, sizeof all) == 0);
  FW_CHECK(clock.nowMs() < 5000);
  uint8_t none[1];
  FW_CHECK_EQ(uart.read(none, 1), 0u);  // nothing more: read() does not wait
  close(peer);

  // The peer went away: the pty stays quiet (no hang-up), and a new peer is served.
  FW_CHECK_EQ(uart.read(none, 1), 0u);
  const int again = open(link, O_RDWR | O_NOCTTY | O_NONBLOCK);
  FW_CHECK(again >= 0);
  const uint8_t hello[] = {'h', 'i'};
  FW_CHECK(uart.write(hello, sizeof hello));
  uint8_t back[2] = {};
  FW_CHECK_EQ(readFor(again, back, 2), 2u);
  FW_CHECK(back[0] == 'h' && back[1] == 'i');
  close(again);

  uart.close();
  struct stat st;
  FW_CHECK(lstat(link, &st) != 0);  // close() removed its link
}

FW_TEST("PtyUart: write() queues all or nothing; the queue drains as the peer reads") {
  TempDir dir;
  char link[128];
  dir.file(link, sizeof link, "uart");
  PtyUart uart;
  FW_CHECK(uart.open(link, 115200));
  const int peer = open(link, O_RDWR | O_NOCTTY | O_NONBLOCK);
  FW_CHECK(peer >= 0);
  static uint8_t big[PtyUart::kTxCapacity + 1];
  FW_CHECK(!uart.write(big, sizeof big));  // more than the queue: refused whole
  FW_CHECK_EQ(uart.pending(), 0u);
  // Fill the pty and the queue until a write is refused (the peer does not read yet).
  static uint8_t block[1024];
  size_t accepted = 0;
  while (accepted < 1024u * 1024u && uart.write(block, sizeof block)) accepted += sizeof block;
  FW_CHECK(accepted < 1024u * 1024u);
  FW_CHECK(uart.pending() > PtyUart::kTxCapacity - sizeof block);
  // The peer reads everything; the board sends the rest as the pty takes it.
  PosixBoard board;
  FW_CHECK(board.watch(uart));
  MonotonicClock clock;
  size_t received = 0;
  static uint8_t sink[4096];
  while (received < accepted && clock.nowMs() < 10000) {
    board.idle(50);
    const ssize_t n = read(peer, sink, sizeof sink);
    if (n > 0) received += static_cast<size_t>(n);
  }
  FW_CHECK_EQ(received, accepted);
  FW_CHECK_EQ(uart.pending(), 0u);
  close(peer);
}

FW_TEST("PtyUart: an existing file at the link path is left alone") {
  TempDir dir;
  char path[128];
  dir.file(path, sizeof path, "not-a-link");
  FILE* f = fopen(path, "w");
  FW_CHECK(f != nullptr);
  if (f != nullptr) fclose(f);
  PtyUart uart;
  FW_CHECK(!uart.open(path, 9600));
  struct stat st;
  FW_CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
}

FW_TEST("MonotonicClock: starts at its start value, elapsed() across the 32-bit wrap") {
  MonotonicClock fromZero;
  FW_CHECK(fromZero.nowMs() < 1000);
  MonotonicClock nearWrap(0xFFFFFFF0u);
  const uint32_t t = nearWrap.nowMs();
  FW_CHECK(hal::elapsed(0xFFFFFFF0u, t) < 1000);
  FW_CHECK(hal::elapsed(0xFFFFFFF0u, 0x10u) == 0x20u);
}

FW_TEST("PosixBoard: idle() with nothing to wait on returns after its timeout") {
  PosixBoard board;
  MonotonicClock clock;
  board.idle(0);
  board.idle(5);
  FW_CHECK(clock.nowMs() >= 5);
}

FW_TEST("PosixBoard: reset() without re-exec exits with kResetExitStatus") {
  const pid_t child = fork();
  if (child == 0) {
    PosixBoard board;
    board.reset();
  }
  int status = 0;
  FW_CHECK(child > 0 && waitpid(child, &status, 0) == child);
  FW_CHECK(WIFEXITED(status));
  FW_CHECK_EQ(WEXITSTATUS(status), PosixBoard::kResetExitStatus);
}

FW_TEST("PosixBoard: SIGTERM ends idle() and sets stopRequested()") {
  int ready[2];
  FW_CHECK(pipe(ready) == 0);
  const pid_t child = fork();
  if (child == 0) {
    PosixBoard board;
    board.handleStopSignals();
    const char byte = 'r';
    if (write(ready[1], &byte, 1) != 1) _exit(2);
    MonotonicClock clock;
    while (!board.stopRequested() && clock.nowMs() < 20000) board.idle(60000);
    _exit(board.stopRequested() ? 0 : 1);
  }
  FW_CHECK(child > 0);
  char byte = 0;
  FW_CHECK(read(ready[0], &byte, 1) == 1);  // the child blocks the signals before it says so
  MonotonicClock clock;
  FW_CHECK(kill(child, SIGTERM) == 0);
  int status = 0;
  FW_CHECK(waitpid(child, &status, 0) == child);
  FW_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  FW_CHECK(clock.nowMs() < 10000);  // woken by the signal, not by the 60 s timeout
  close(ready[0]);
  close(ready[1]);
}

FW_TEST("PosixBoard: reset() with re-exec starts the program again in the same process") {
  // The re-executed image runs this test alone (its name is the filter) and sees the variable.
  if (getenv("CITYGATE_FW_REEXEC_TEST") != nullptr) _exit(42);
  const pid_t child = fork();
  if (child == 0) {
    setenv("CITYGATE_FW_REEXEC_TEST", "1", 1);
    static char self[] = "fw_test_host_posix";
    static char filter[] = "reset() with re-exec";
    static char* argv[] = {self, filter, nullptr};
    PosixBoard board;
    board.enableReexec(argv);
    board.reset();
  }
  int status = 0;
  FW_CHECK(child > 0 && waitpid(child, &status, 0) == child);
  FW_CHECK(WIFEXITED(status));
  FW_CHECK_EQ(WEXITSTATUS(status), 42);
}

namespace {

// The re-executed image of the test below: "EVENTS_FD LINK" (the pipe it reports on, the link).
constexpr const char* kLineTestEnv = "CITYGATE_FW_RESET_LINE_TEST";
constexpr const char kReply[] = "the reply, written just before the reset";

// After the reset: PtyUart::open() adopts the line, reports "A" (adopted) or "N" and its pid on
// the pipe, reads what the peer wrote before the reset and had not been read, echoes it, and
// ends when the peer says "done". Its exit status: 0 when all of that went as it should.
[[noreturn]] void afterReset(const char* role) {
  char* link = nullptr;
  const int events = static_cast<int>(strtol(role, &link, 10));
  if (link == nullptr || *link != ' ') _exit(10);
  ++link;
  PtyUart uart;
  const bool adopted = uart.open(link, 115200) && uart.inherited();
  char hello[16];
  snprintf(hello, sizeof hello, "%c%010d", adopted ? 'A' : 'N', static_cast<int>(getpid()));
  if (write(events, hello, 11) != 11) _exit(11);
  PosixBoard board;
  board.watch(uart);
  MonotonicClock clock;
  uint8_t late[4] = {};
  size_t got = 0;
  while (got < sizeof late && clock.nowMs() < 10000) {
    got += uart.read(late + got, sizeof late - got);
    if (got < sizeof late) board.idle(1000);
  }
  uint8_t echo[8] = {'g', 'o', 't', ':'};
  memcpy(echo + 4, late, sizeof late);
  const bool echoed = got == sizeof late && uart.write(echo, sizeof echo);
  uint8_t done[4] = {};
  got = 0;
  while (got < sizeof done && clock.nowMs() < 20000) {
    got += uart.read(done + got, sizeof done - got);
    if (got < sizeof done) board.idle(1000);
  }
  const bool ok = adopted && echoed && memcmp(late, "late", 4) == 0 && got == 4 && memcmp(done, "done", 4) == 0;
  _exit(ok ? 0 : 12);
}

}  // namespace

FW_TEST("PosixBoard: a reset keeps the UART lines: the reply written before it is read after it") {
  if (const char* role = getenv(kLineTestEnv)) afterReset(role);
  TempDir dir;
  char link[128];
  dir.file(link, sizeof link, "service");
  int events[2];
  FW_CHECK(pipe2(events, O_CLOEXEC) == 0);
  const pid_t child = fork();
  if (child == 0) {
    // Before the reset: open the line, take the request, write the reply, reset at once.
    close(events[0]);
    if (fcntl(events[1], F_SETFD, 0) != 0) _exit(3);  // the pipe goes on to the new image
    char role[192];
    snprintf(role, sizeof role, "%d %s", events[1], link);
    setenv(kLineTestEnv, role, 1);
    static PtyUart uart;
    if (!uart.open(link, 115200)) _exit(4);
    if (write(events[1], "o", 1) != 1) _exit(5);
    static PosixBoard board;
    board.watch(uart);
    static char self[] = "fw_test_host_posix";
    static char filter[] = "a reset keeps the UART lines";
    static char* argv[] = {self, filter, nullptr};
    board.enableReexec(argv);
    // One byte at a time: what the peer sent after "ping" is still unread at the reset.
    MonotonicClock clock;
    char request[4] = {};
    size_t got = 0;
    while (got < sizeof request && clock.nowMs() < 10000) {
      got += uart.read(reinterpret_cast<uint8_t*>(request) + got, 1);
      if (got < sizeof request) board.idle(1000);
    }
    if (got != sizeof request || memcmp(request, "ping", 4) != 0) _exit(6);
    if (!uart.write(reinterpret_cast<const uint8_t*>(kReply), sizeof kReply)) _exit(7);
    board.reset();
  }
  FW_CHECK(child > 0);
  close(events[1]);
  char opened = 0;
  FW_CHECK_EQ(readFor(events[0], reinterpret_cast<uint8_t*>(&opened), 1), 1u);
  char before[64] = {};
  FW_CHECK(readlink(link, before, sizeof before - 1) > 0);
  const int peer = open(link, O_RDWR | O_NOCTTY | O_NONBLOCK);
  FW_CHECK(peer >= 0);
  FW_CHECK(write(peer, "pinglate", 8) == 8);

  // The new image is up (same pid: an exec, not a new process), with the pty it inherited.
  char hello[12] = {};
  FW_CHECK_EQ(readFor(events[0], reinterpret_cast<uint8_t*>(hello), 11), 11u);
  FW_CHECK_EQ(hello[0], 'A');
  FW_CHECK_EQ(static_cast<pid_t>(strtol(hello + 1, nullptr, 10)), child);
  char after[64] = {};
  FW_CHECK(readlink(link, after, sizeof after - 1) > 0);
  FW_CHECK(strcmp(before, after) == 0);

  // Only now does the peer read: the reply from before the reset, then the new image's echo of
  // the bytes it sent before the reset and the node had not read.
  uint8_t got[sizeof kReply + 8] = {};
  FW_CHECK_EQ(readFor(peer, got, sizeof got), sizeof got);
  FW_CHECK(memcmp(got, kReply, sizeof kReply) == 0);
  FW_CHECK(memcmp(got + sizeof kReply, "got:late", 8) == 0);
  pollfd p{peer, POLLIN, 0};
  FW_CHECK_EQ(poll(&p, 1, 0), 0);  // no hang-up, nothing more
  FW_CHECK_EQ(p.revents & (POLLHUP | POLLERR), 0);

  FW_CHECK(write(peer, "done", 4) == 4);
  int status = 0;
  FW_CHECK(waitpid(child, &status, 0) == child);
  FW_CHECK(WIFEXITED(status));
  FW_CHECK_EQ(WEXITSTATUS(status), 0);
  close(peer);
  close(events[0]);
}

FW_TEST("PtyUart: an inherited pty that is not the link's is refused and a new pty made") {
  TempDir dir;
  char link[128];
  dir.file(link, sizeof link, "uart");
  // A pty that is not at the link, and a descriptor that is no terminal at all.
  const int foreign = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  FW_CHECK(foreign >= 0 && grantpt(foreign) == 0 && unlockpt(foreign) == 0);
  char foreignSlave[64] = {};
  FW_CHECK(ptsname_r(foreign, foreignSlave, sizeof foreignSlave) == 0);
  const int foreignSlaveFd = open(foreignSlave, O_RDWR | O_NOCTTY | O_CLOEXEC);
  const int watcher = open(foreignSlave, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);  // sees its hang-up
  FW_CHECK(foreignSlaveFd >= 0 && watcher >= 0);
  int notTty[2];
  FW_CHECK(pipe2(notTty, O_CLOEXEC) == 0);

  char value[512];
  snprintf(value, sizeof value, "%d,%d,%zu:%s%d,%d,%zu:%s.2", foreign, foreignSlaveFd, strlen(link), link, notTty[0],
           notTty[1], strlen(link) + 2, link);
  setenv(PtyUart::kInheritEnv, value, 1);
  PtyUart uart;
  FW_CHECK(uart.open(link, 9600));
  FW_CHECK(!uart.inherited());
  FW_CHECK(strcmp(uart.slavePath(), foreignSlave) != 0);
  FW_CHECK(getenv(PtyUart::kInheritEnv) == nullptr);  // taken out: nothing started later inherits it
  pollfd p{watcher, 0, 0};
  FW_CHECK_EQ(poll(&p, 1, 0), 1);  // the stale pty's descriptors were closed: a hang-up
  FW_CHECK((p.revents & POLLHUP) != 0);

  // The pipe named for another link: left alone (not a terminal), and not adopted there.
  PtyUart other;
  char otherLink[sizeof link + 2];
  snprintf(otherLink, sizeof otherLink, "%s.2", link);
  FW_CHECK(other.open(otherLink, 9600));
  FW_CHECK(!other.inherited());
  FW_CHECK(write(notTty[1], "x", 1) == 1);
  char x = 0;
  FW_CHECK(read(notTty[0], &x, 1) == 1 && x == 'x');

  // A malformed value: ignored, a new pty.
  setenv(PtyUart::kInheritEnv, "3,x", 1);
  PtyUart third;
  char thirdLink[128];
  dir.file(thirdLink, sizeof thirdLink, "third");
  FW_CHECK(third.open(thirdLink, 9600));
  FW_CHECK(!third.inherited());
  FW_CHECK(getenv(PtyUart::kInheritEnv) == nullptr);
  close(watcher);
  close(notTty[0]);
  close(notTty[1]);
}
