// The host port's hardware (firmware/README.md, "Ports"): a node on the host is a process whose
// UARTs are pseudo-terminals, whose flash is a file and whose clock is CLOCK_MONOTONIC. The node
// core sees them through core/hal.hpp only. POSIX (Linux): no exceptions, no heap; a failure is
// a return value with errno set, and the node's main says what failed.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::host {

// Something PosixBoard::idle() waits on: a file descriptor, whether it has output to send, and
// what to do when poll() says it is ready (send what is queued).
class Pollable {
 public:
  virtual int pollFd() const = 0;
  virtual bool wantsWrite() const = 0;
  virtual void service() = 0;

 protected:
  ~Pollable() = default;
};

// A UART on a pseudo-terminal. open() makes a pty pair, puts it in raw mode (8N1, no echo, no
// line discipline), makes the master non-blocking and links `linkPath` to the slave
// (/dev/pts/N), so a peer (pymodbus, pyserial, socat, the provisioning tool) opens linkPath as a
// serial port. The port keeps a descriptor of the slave open itself: a peer may come and go
// without the master seeing a hang-up (POLLHUP on every poll, EIO on every read).
//
// A reset keeps the line, as an MCU's reset does not unplug its cables: PosixBoard::reset()
// hands the descriptors of every open PtyUart to the re-executed image (kInheritEnv), and open()
// there adopts the pty it inherited for the same linkPath instead of making a new one. The link
// stays, the peer's descriptor never sees a hang-up, and what either side had not read yet is
// still there. An inherited pty that is not the one at linkPath (stale, or not a pty at all) is
// refused with a message on stderr: its descriptors are closed when they are terminals (another
// kind of file is left alone) and a new pty is made.
//
// write() queues the whole buffer in a 4 KB transmit queue or nothing (hal::Uart), and sends
// what the pty takes at once; the rest leaves when PosixBoard::idle() sees the pty writable. The
// baud rate is the node's view for timing (Modbus RTU's 3.5 characters); it is also set on the
// terminal, where it changes nothing.
class PtyUart final : public hal::Uart, public Pollable {
 public:
  static constexpr size_t kTxCapacity = 4096;
  static constexpr size_t kMaxOpen = 8;  // open PtyUarts a reset hands on; more are not kept
  // The environment variable a reset passes the ptys in: "MASTER,SLAVE,LENGTH:LINK" per pty
  // (descriptor numbers, then the link path's length and the path, which may hold any byte).
  static constexpr const char* kInheritEnv = "CITYGATE_FW_INHERITED";

  PtyUart() = default;
  ~PtyUart();
  PtyUart(const PtyUart&) = delete;
  PtyUart& operator=(const PtyUart&) = delete;

  // False with errno set when the pty or the link cannot be made. An existing symlink at
  // linkPath is replaced; anything else there is left alone (EEXIST). After a reset: the pty
  // inherited for linkPath, when there is a valid one (inherited() says so).
  bool open(const char* linkPath, uint32_t baud);
  void close();  // closes the pty and removes the link
  bool isOpen() const { return master_ >= 0; }
  bool inherited() const { return inherited_; }
  const char* slavePath() const { return slave_path_; }

  size_t read(uint8_t* out, size_t capacity) override;
  bool write(const uint8_t* data, size_t size) override;
  uint32_t baud() const override { return baud_; }

  int pollFd() const override { return master_; }
  bool wantsWrite() const override { return tx_size_ > 0; }
  void service() override { flush(); }
  size_t pending() const { return tx_size_; }  // queued, not yet taken by the pty

 private:
  friend class PosixBoard;
  void flush();
  bool configure(uint32_t baud);  // raw 8N1 at baud, on the slave
  bool adopt(const char* linkPath);
  static void prepareInheritance();  // for PosixBoard::reset(), just before the exec

  int master_ = -1;
  int slave_ = -1;
  bool inherited_ = false;
  uint32_t baud_ = 0;
  char slave_path_[64] = {};
  char link_path_[256] = {};
  uint8_t tx_[kTxCapacity] = {};
  size_t tx_size_ = 0;
};

// NOR flash on a file of sectorCount sectors of 4096 bytes: an erased byte reads 0xFF, write()
// ANDs the data into what is there (it can only clear bits, as on the chip), erase() sets a whole
// sector back to 0xFF. A missing file is created erased; a shorter one is extended with 0xFF. No
// fsync: every write is a pwrite() the next read (and another process, and a node restarted
// after a kill) sees; a simulated node does not outlive the machine's power.
class FileFlash final : public hal::Flash {
 public:
  static constexpr uint32_t kSectorSize = 4096;

  FileFlash() = default;
  ~FileFlash();
  FileFlash(const FileFlash&) = delete;
  FileFlash& operator=(const FileFlash&) = delete;

  bool open(const char* path, uint32_t sectorCount);  // false with errno set
  void close();

  uint32_t sectorSize() const override { return kSectorSize; }
  uint32_t sectorCount() const override { return sector_count_; }
  bool erase(uint32_t sector) override;
  bool write(uint32_t offset, const uint8_t* data, size_t size) override;
  bool read(uint32_t offset, uint8_t* out, size_t size) override;

  // Wear, for tests and the simulator's status: erases and written bytes since open().
  uint32_t erases() const { return erases_; }
  uint64_t bytesWritten() const { return bytes_written_; }

 private:
  bool inRange(uint32_t offset, size_t size) const;

  int fd_ = -1;
  uint32_t sector_count_ = 0;
  uint32_t erases_ = 0;
  uint64_t bytes_written_ = 0;
};

// CLOCK_MONOTONIC in milliseconds since the clock was made, plus startMs: a node starts at 0 as
// on the MCU (never the machine's uptime), and a test may start it just before the 32-bit wrap.
class MonotonicClock final : public hal::Clock {
 public:
  explicit MonotonicClock(uint32_t startMs = 0);
  uint32_t nowMs() override;

 private:
  uint64_t origin_ms_;
  uint32_t start_ms_;
};

// The board: idle() is poll() on the registered Pollables (at most kMaxWatched) with maxMs as
// the timeout, then services the ready ones; it returns early on input, on a writable pty with
// output queued, and on SIGINT/SIGTERM once handleStopSignals() was called (the signals are
// blocked outside idle() and delivered only inside ppoll(), so none is lost between a check of
// stopRequested() and the wait).
//
// reset(): a software reset. The queued output is sent first (up to 1 s), stdio is flushed, then
//   - after enableReexec(argv): the process executes itself again (/proc/self/exe) with the same
//     arguments: same pid, the node starts from main() with its flash file as it was, and its
//     UART lines as they were: every open PtyUart's pty is inherited (PtyUart::kInheritEnv) and
//     adopted by the new image's PtyUart::open() at the same link, with the bytes neither side
//     has read yet; a peer holding the slave open sees no hang-up;
//   - otherwise: exit status kResetExitStatus (75), for a supervisor (a test harness, the demo)
//     that starts the node again (its ptys are new then).
class PosixBoard final : public hal::Board {
 public:
  static constexpr size_t kMaxWatched = 8;
  static constexpr int kResetExitStatus = 75;

  bool watch(Pollable& source);  // false when kMaxWatched are registered
  void handleStopSignals();      // SIGINT and SIGTERM end idle() and set stopRequested()
  bool stopRequested() const;
  void enableReexec(char** argv) { argv_ = argv; }

  void idle(uint32_t maxMs) override;
  [[noreturn]] void reset() override;

 private:
  Pollable* watched_[kMaxWatched] = {};
  size_t count_ = 0;
  char** argv_ = nullptr;
  bool signals_ = false;
};

}  // namespace citygate::fw::host
