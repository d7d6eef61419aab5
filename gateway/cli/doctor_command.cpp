// citygatectl doctor: the command (the rules are in doctor.cpp, apart, so that unit tests link
// them without the socket client's round trip, which lives in main.cpp).
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "cli/cli.hpp"
#include "cli/doctor.hpp"
#include "cli/terminal.hpp"

namespace citygate::cli {

int cmdDoctor(const Ctx& ctx, const Args&) {
  pb::ControlRequest req;
  req.mutable_status();
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, std::chrono::seconds(15)); rc != 0) return rc;
  const auto checks = doctorChecks(resp.status(), std::chrono::system_clock::now());
  std::fputs(ctx.json ? checksJson(checks).c_str() : renderChecks(checks, ctx.out, outputWidth(STDOUT_FILENO)).c_str(),
             stdout);
  return anyFail(checks) ? kExitFailed : kExitOk;
}

}  // namespace citygate::cli
