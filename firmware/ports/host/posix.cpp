// The host port's hardware (posix.hpp).
#include "ports/host/posix.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

namespace citygate::fw::host {
namespace {

speed_t termiosSpeed(uint32_t baud) {
  switch (baud) {
    case 1200:
      return B1200;
    case 2400:
      return B2400;
    case 4800:
      return B4800;
    case 9600:
      return B9600;
    case 19200:
      return B19200;
    case 38400:
      return B38400;
    case 57600:
      return B57600;
    case 115200:
      return B115200;
    case 230400:
      return B230400;
    default:
      return B9600;  // only the node's timing uses the value
  }
}

bool copyString(char* out, size_t capacity, const char* text) {
  const size_t n = strlen(text);
  if (n >= capacity) return false;
  memcpy(out, text, n + 1);
  return true;
}

// Replaces a symlink at path (an old node's) but nothing else.
bool placeLink(const char* target, const char* path) {
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISLNK(st.st_mode)) {
      errno = EEXIST;
      return false;
    }
    if (unlink(path) != 0 && errno != ENOENT) return false;
  }
  return symlink(target, path) == 0;
}

bool preadAll(int fd, uint8_t* out, size_t size, off_t offset) {
  while (size > 0) {
    const ssize_t n = pread(fd, out, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;  // the file is shorter than the flash it holds
      return false;
    }
    out += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

bool pwriteAll(int fd, const uint8_t* data, size_t size, off_t offset) {
  while (size > 0) {
    const ssize_t n = pwrite(fd, data, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

uint64_t monotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

// The open PtyUarts, which a reset hands on to the next image.
PtyUart* gOpenPtys[PtyUart::kMaxOpen] = {};

bool registerPty(PtyUart* pty) {
  for (PtyUart*& slot : gOpenPtys) {
    if (slot == nullptr || slot == pty) {
      slot = pty;
      return true;
    }
  }
  return false;
}

void unregisterPty(const PtyUart* pty) {
  for (PtyUart*& slot : gOpenPtys) {
    if (slot == pty) slot = nullptr;
  }
}

// The ptys this image inherited (PtyUart::kInheritEnv), each adopted by at most one open().
struct InheritedPty {
  int master;
  int slave;
  bool taken;
  char link[256];
};
InheritedPty gInherited[PtyUart::kMaxOpen];
size_t gInheritedCount = 0;

// A descriptor a stale entry may name and this process may close: a terminal, never stdio.
bool closableTerminal(int fd) {
  return fd > STDERR_FILENO && isatty(fd) != 0;
}

bool parseNumber(const char*& p, char end, unsigned long max, unsigned long& out) {
  if (*p < '0' || *p > '9') return false;
  unsigned long v = 0;
  for (; *p >= '0' && *p <= '9'; ++p) {
    v = v * 10 + static_cast<unsigned long>(*p - '0');
    if (v > max) return false;
  }
  if (*p != end) return false;
  ++p;
  out = v;
  return true;
}

// Takes the inheritance the previous image left in the environment into gInherited (and out of
// the environment: nothing this process starts inherits it). Its descriptors that are terminals
// get FD_CLOEXEC again, so a pty no open() adopts goes at the next exec.
void loadInherited() {
  const char* value = getenv(PtyUart::kInheritEnv);
  if (value == nullptr) return;
  gInheritedCount = 0;
  const char* p = value;
  while (*p != '\0') {
    unsigned long master = 0;
    unsigned long slave = 0;
    unsigned long length = 0;
    const unsigned long maxFd = 1ul << 30;
    const unsigned long maxLength = sizeof gInherited[0].link - 1;
    if (gInheritedCount == PtyUart::kMaxOpen || !parseNumber(p, ',', maxFd, master) ||
        !parseNumber(p, ',', maxFd, slave) || !parseNumber(p, ':', maxLength, length) || strnlen(p, length) != length) {
      fprintf(stderr, "citygate: %s is malformed at byte %zu: the rest of it is ignored\n", PtyUart::kInheritEnv,
              static_cast<size_t>(p - value));
      break;
    }
    InheritedPty& entry = gInherited[gInheritedCount];
    entry.master = static_cast<int>(master);
    entry.slave = static_cast<int>(slave);
    entry.taken = false;
    memcpy(entry.link, p, length);
    entry.link[length] = '\0';
    p += length;
    ++gInheritedCount;
  }
  for (size_t i = 0; i < gInheritedCount; ++i) {
    if (closableTerminal(gInherited[i].master)) fcntl(gInherited[i].master, F_SETFD, FD_CLOEXEC);
    if (closableTerminal(gInherited[i].slave)) fcntl(gInherited[i].slave, F_SETFD, FD_CLOEXEC);
  }
  unsetenv(PtyUart::kInheritEnv);
}

// Why an inherited pty is not the one at linkPath (nullptr: it is; slavePath is then its slave).
const char* checkInherited(const InheritedPty& entry, const char* linkPath, char* slavePath, size_t capacity) {
  if (entry.master <= STDERR_FILENO || entry.slave <= STDERR_FILENO || entry.master == entry.slave) {
    return "is not a pair of descriptors a pty can have";
  }
  if (isatty(entry.master) == 0 || isatty(entry.slave) == 0) return "is not a terminal";
  if (ptsname_r(entry.master, slavePath, capacity) != 0) return "is not a pty master";
  char target[256] = {};
  const ssize_t n = readlink(linkPath, target, sizeof target - 1);
  if (n <= 0 || strcmp(target, slavePath) != 0) return "is not the pty the link points to";
  struct stat held;
  struct stat named;
  if (fstat(entry.slave, &held) != 0 || stat(slavePath, &named) != 0 || !S_ISCHR(held.st_mode) ||
      held.st_rdev != named.st_rdev) {
    return "holds the slave of another pty";
  }
  return nullptr;
}

volatile sig_atomic_t gStop = 0;
sigset_t gIdleMask;  // the mask ppoll() waits with: the process's, without the stop signals

void onStopSignal(int) {
  gStop = 1;
}

}  // namespace

// --- PtyUart ---

PtyUart::~PtyUart() {
  close();
}

bool PtyUart::open(const char* linkPath, uint32_t baud) {
  close();
  baud_ = baud;
  if (!copyString(link_path_, sizeof link_path_, linkPath)) {
    errno = ENAMETOOLONG;
    return false;
  }
  if (!registerPty(this)) {
    link_path_[0] = '\0';
    errno = EMFILE;  // more than kMaxOpen
    return false;
  }
  if (adopt(linkPath)) {
    // The pty as the previous image left it: the link stays, nothing queued is dropped.
    const int flags = fcntl(master_, F_GETFL);
    if (flags < 0 || fcntl(master_, F_SETFL, flags | O_NONBLOCK) != 0 || !configure(baud)) {
      const int saved = errno;
      close();
      errno = saved;
      return false;
    }
    return true;
  }
  master_ = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0 ||
      ptsname_r(master_, slave_path_, sizeof slave_path_) != 0) {
    const int saved = errno;
    close();
    errno = saved;
    return false;
  }
  slave_ = ::open(slave_path_, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (slave_ < 0 || !configure(baud) || !placeLink(slave_path_, link_path_)) {
    const int saved = errno;
    link_path_[0] = '\0';  // not ours to remove
    close();
    errno = saved;
    return false;
  }
  return true;
}

bool PtyUart::configure(uint32_t baud) {
  termios tio{};
  if (tcgetattr(slave_, &tio) != 0) return false;
  cfmakeraw(&tio);
  tio.c_cflag |= CLOCAL | CREAD;
  tio.c_cc[VMIN] = 1;
  tio.c_cc[VTIME] = 0;
  cfsetispeed(&tio, termiosSpeed(baud));
  cfsetospeed(&tio, termiosSpeed(baud));
  return tcsetattr(slave_, TCSANOW, &tio) == 0;  // TCSANOW: what is in the pty stays
}

bool PtyUart::adopt(const char* linkPath) {
  loadInherited();
  for (size_t i = 0; i < gInheritedCount; ++i) {
    InheritedPty& entry = gInherited[i];
    if (entry.taken || strcmp(entry.link, linkPath) != 0) continue;
    entry.taken = true;
    const char* why = checkInherited(entry, linkPath, slave_path_, sizeof slave_path_);
    if (why == nullptr) {
      master_ = entry.master;
      slave_ = entry.slave;
      inherited_ = true;
      return true;
    }
    slave_path_[0] = '\0';
    fprintf(stderr, "citygate: the pty inherited for %s (descriptors %d, %d) %s: a new pty is made\n", linkPath,
            entry.master, entry.slave, why);
    if (closableTerminal(entry.master)) ::close(entry.master);
    if (closableTerminal(entry.slave) && entry.slave != entry.master) ::close(entry.slave);
    return false;
  }
  return false;
}

void PtyUart::prepareInheritance() {
  // "MASTER,SLAVE,LENGTH:LINK" per open pty; the descriptors stay open across the exec.
  static char value[PtyUart::kMaxOpen * (2 * 12 + 12 + sizeof link_path_) + 1];
  size_t used = 0;
  for (PtyUart* pty : gOpenPtys) {
    if (pty == nullptr || pty->master_ < 0 || pty->link_path_[0] == '\0') continue;
    const int n = snprintf(value + used, sizeof value - used, "%d,%d,%zu:%s", pty->master_, pty->slave_,
                           strlen(pty->link_path_), pty->link_path_);
    if (n < 0 || static_cast<size_t>(n) >= sizeof value - used) {
      value[used] = '\0';
      break;
    }
    if (fcntl(pty->master_, F_SETFD, 0) != 0 || fcntl(pty->slave_, F_SETFD, 0) != 0) {
      value[used] = '\0';  // this one goes with the exec as before
      fcntl(pty->master_, F_SETFD, FD_CLOEXEC);
      continue;
    }
    used += static_cast<size_t>(n);
  }
  // setenv() is the port's one allocation after start-up, and the image it is made in ends here.
  if (used == 0 || setenv(kInheritEnv, value, 1) != 0) {
    unsetenv(kInheritEnv);
    for (PtyUart* pty : gOpenPtys) {
      if (pty == nullptr || pty->master_ < 0) continue;
      fcntl(pty->master_, F_SETFD, FD_CLOEXEC);
      fcntl(pty->slave_, F_SETFD, FD_CLOEXEC);
    }
  }
}

void PtyUart::close() {
  if (link_path_[0] != '\0' && master_ >= 0) {
    // Only the link this pty made: another node may have taken the path since.
    char target[sizeof slave_path_] = {};
    const ssize_t n = readlink(link_path_, target, sizeof target - 1);
    if (n > 0 && strcmp(target, slave_path_) == 0) unlink(link_path_);
  }
  unregisterPty(this);
  link_path_[0] = '\0';
  if (slave_ >= 0) ::close(slave_);
  if (master_ >= 0) ::close(master_);
  slave_ = -1;
  master_ = -1;
  inherited_ = false;
  tx_size_ = 0;
}

size_t PtyUart::read(uint8_t* out, size_t capacity) {
  if (master_ < 0 || capacity == 0) return 0;
  for (;;) {
    const ssize_t n = ::read(master_, out, capacity);
    if (n > 0) return static_cast<size_t>(n);
    if (n < 0 && errno == EINTR) continue;
    return 0;  // EAGAIN: nothing has arrived
  }
}

bool PtyUart::write(const uint8_t* data, size_t size) {
  if (master_ < 0) return false;
  flush();
  if (size > kTxCapacity - tx_size_) return false;
  memcpy(tx_ + tx_size_, data, size);
  tx_size_ += size;
  flush();
  return true;
}

void PtyUart::flush() {
  size_t sent = 0;
  while (sent < tx_size_) {
    const ssize_t n = ::write(master_, tx_ + sent, tx_size_ - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: the pty's buffer is full until the peer reads
    sent += static_cast<size_t>(n);
  }
  if (sent > 0) {
    memmove(tx_, tx_ + sent, tx_size_ - sent);
    tx_size_ -= sent;
  }
}

// --- FileFlash ---

FileFlash::~FileFlash() {
  close();
}

bool FileFlash::open(const char* path, uint32_t sectorCount) {
  close();
  fd_ = ::open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return false;
  struct stat st;
  if (fstat(fd_, &st) != 0) {
    const int saved = errno;
    close();
    errno = saved;
    return false;
  }
  // Whatever is missing is erased flash.
  const off_t want = static_cast<off_t>(sectorCount) * kSectorSize;
  uint8_t erased[kSectorSize];
  memset(erased, 0xFF, sizeof erased);
  for (off_t at = st.st_size; at < want;) {
    const size_t n = static_cast<size_t>(want - at < static_cast<off_t>(sizeof erased) ? want - at : sizeof erased);
    if (!pwriteAll(fd_, erased, n, at)) {
      const int saved = errno;
      close();
      errno = saved;
      return false;
    }
    at += static_cast<off_t>(n);
  }
  sector_count_ = sectorCount;
  erases_ = 0;
  bytes_written_ = 0;
  return true;
}

void FileFlash::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  sector_count_ = 0;
}

bool FileFlash::inRange(uint32_t offset, size_t size) const {
  const uint64_t end = static_cast<uint64_t>(sector_count_) * kSectorSize;
  return fd_ >= 0 && offset <= end && size <= end - offset;
}

bool FileFlash::erase(uint32_t sector) {
  if (fd_ < 0 || sector >= sector_count_) return false;
  uint8_t erased[kSectorSize];
  memset(erased, 0xFF, sizeof erased);
  if (!pwriteAll(fd_, erased, sizeof erased, static_cast<off_t>(sector) * kSectorSize)) return false;
  ++erases_;
  return true;
}

bool FileFlash::write(uint32_t offset, const uint8_t* data, size_t size) {
  if (!inRange(offset, size)) return false;
  uint8_t cells[256];
  while (size > 0) {
    const size_t n = size < sizeof cells ? size : sizeof cells;
    if (!preadAll(fd_, cells, n, offset)) return false;
    for (size_t i = 0; i < n; ++i) cells[i] &= data[i];  // programming clears bits, never sets them
    if (!pwriteAll(fd_, cells, n, offset)) return false;
    bytes_written_ += n;
    data += n;
    offset += static_cast<uint32_t>(n);
    size -= n;
  }
  return true;
}

bool FileFlash::read(uint32_t offset, uint8_t* out, size_t size) {
  if (!inRange(offset, size)) return false;
  return preadAll(fd_, out, size, offset);
}

// --- MonotonicClock ---

MonotonicClock::MonotonicClock(uint32_t startMs) : origin_ms_(monotonicMs()), start_ms_(startMs) {}

uint32_t MonotonicClock::nowMs() {
  return static_cast<uint32_t>(start_ms_ + (monotonicMs() - origin_ms_));  // wraps as on the MCU
}

// --- PosixBoard ---

bool PosixBoard::watch(Pollable& source) {
  if (count_ == kMaxWatched) return false;
  watched_[count_++] = &source;
  return true;
}

void PosixBoard::handleStopSignals() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, &gIdleMask);
  sigdelset(&gIdleMask, SIGINT);
  sigdelset(&gIdleMask, SIGTERM);
  struct sigaction sa {};
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signals_ = true;
}

bool PosixBoard::stopRequested() const {
  return gStop != 0;
}

void PosixBoard::idle(uint32_t maxMs) {
  if (signals_ && gStop != 0) return;
  pollfd fds[kMaxWatched];
  for (size_t i = 0; i < count_; ++i) {
    fds[i].fd = watched_[i]->pollFd();
    fds[i].events = static_cast<short>(POLLIN | (watched_[i]->wantsWrite() ? POLLOUT : 0));
    fds[i].revents = 0;
  }
  timespec timeout{static_cast<time_t>(maxMs / 1000), static_cast<long>(maxMs % 1000) * 1000000L};
  const int ready = ppoll(fds, count_, &timeout, signals_ ? &gIdleMask : nullptr);
  if (ready <= 0) return;  // the timeout, or a signal
  for (size_t i = 0; i < count_; ++i) {
    if ((fds[i].revents & POLLOUT) != 0) watched_[i]->service();
  }
}

void PosixBoard::reset() {
  // What the node queued leaves first, as a real UART's shift register empties before a reset.
  const uint64_t deadline = monotonicMs() + 1000;
  for (;;) {
    bool pendingOutput = false;
    for (size_t i = 0; i < count_; ++i) {
      watched_[i]->service();
      pendingOutput = pendingOutput || watched_[i]->wantsWrite();
    }
    const uint64_t now = monotonicMs();
    if (!pendingOutput || now >= deadline) break;
    idle(static_cast<uint32_t>(deadline - now));
  }
  fflush(nullptr);  // what stdio holds would go with the image
  if (argv_ != nullptr) {
    if (signals_) {
      // The new image starts with the mask the process started with.
      sigset_t stop;
      sigemptyset(&stop);
      sigaddset(&stop, SIGINT);
      sigaddset(&stop, SIGTERM);
      sigprocmask(SIG_UNBLOCK, &stop, nullptr);
    }
    // Descriptors are O_CLOEXEC, but the ptys' are handed on: the new image's PtyUart::open()
    // adopts them, so the lines stay up and keep what neither side has read yet.
    PtyUart::prepareInheritance();
    execv("/proc/self/exe", argv_);
  }
  _exit(kResetExitStatus);
}

}  // namespace citygate::fw::host
