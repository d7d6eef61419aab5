// citygatectl's side of the control socket: a blocking connection with deadlines (poll), one
// request at a time, responses read frame by frame (control/framing.hpp). Ctrl-C (SIGINT) and
// SIGTERM interrupt a wait; the caller decides what that means (tail: a clean end).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "citygate/v1/control.pb.h"
#include "control/framing.hpp"

namespace citygate::cli {

namespace pb = citygate::v1;

// Exit codes (documented in `citygatectl --help`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNoDaemon = 3;
inline constexpr int kExitPermission = 4;
inline constexpr int kExitNotFound = 5;
inline constexpr int kExitTempFail = 75;  // busy: try again (EX_TEMPFAIL)
inline constexpr int kExitConfig = 78;    // invalid configuration (EX_CONFIG)
inline constexpr int kExitInterrupted = 130;

struct ClientError {
  int exitCode = kExitFailed;
  std::string message;  // one line, without "citygatectl: "
};

// Installs SIGINT/SIGTERM handlers that interrupt blocking waits (no SA_RESTART).
void installInterruptHandlers();
bool interrupted();

class Client {
 public:
  explicit Client(std::string socketPath) : path_(std::move(socketPath)), decoder_(control::kMaxResponseBytes) {}
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects; on failure `err` carries the exit code (3: no daemon, 4: permission) and a hint.
  bool connect(ClientError& err);
  // True when something listens on the socket (no error message).
  static bool reachable(const std::string& path);

  bool send(const pb::ControlRequest& request, ClientError& err);
  // Reads the next response. `timeout` zero = wait forever (tail). False on timeout, interruption
  // (err.exitCode = 130), a closed connection or a protocol error.
  bool receive(pb::ControlResponse& response, std::chrono::milliseconds timeout, ClientError& err);

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  control::FrameDecoder decoder_;
  std::string pending_;  // bytes read past the current frame
};

// The exit code for a daemon's error reply.
int exitCodeFor(const pb::ControlError& e);

}  // namespace citygate::cli
