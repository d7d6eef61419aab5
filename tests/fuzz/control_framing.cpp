// Fuzz target: the control socket's request path, end to end. The input is written, as a client
// would, into a real connection to a real ControlServer (on its own io_context, with a handler
// that answers every command at once and streams for `tail`). Whatever the bytes (pipelined
// requests, garbage, oversize or truncated frames), the server must answer with well-formed
// ControlResponse frames, never crash, and forget the connection once the client closes it.
//
// The same bytes also go through FrameDecoder whole and in chunks of varying size: both must
// yield the same frames (no frame depends on how the kernel splits the stream).
#include <poll.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "control/framing.hpp"
#include "control/server.hpp"
#include "core/clock.hpp"

namespace pb = citygate::v1;
using namespace citygate::control;

namespace {

class AnswerEverything : public RequestHandler {
 public:
  void handle(const pb::ControlRequest& request, Reply reply) override {
    pb::ControlResponse r;
    switch (request.command_case()) {
      case pb::ControlRequest::kTail:
        r.mutable_tail();
        reply.send(r, true, true);
        r.mutable_tail()->mutable_reading()->set_sensor_id("fuzz");
        reply.send(r, true, true);
        return;  // stays open until the client goes
      case pb::ControlRequest::kModbusScan:
        r.mutable_modbus_scan()->set_total(2);
        reply.send(r, true);
        reply.send(r, false);
        return;
      case pb::ControlRequest::kConfigApply:
        r.mutable_config_apply()->add_unchanged(request.config_apply().path());
        break;
      default:
        r.mutable_status()->set_config_path("fuzz");
        break;
    }
    reply.send(r);
  }
};

struct Server {
  boost::asio::io_context ioc;
  citygate::core::SystemClock clock{ioc.get_executor()};
  std::shared_ptr<ControlServer> server;
  std::string dir;
  std::string path;

  Server() {
    char tmpl[] = "/tmp/cg-fuzz-control-XXXXXX";
    dir = ::mkdtemp(tmpl);
    path = dir + "/control.sock";
    ServerOptions o;
    o.path = path;
    o.group = "";
    o.maxRequestBytes = 4096;  // so that "oversize" is reachable with small inputs
    server = std::make_shared<ControlServer>(
        ioc.get_executor(), clock, o, std::make_shared<AnswerEverything>(),
        std::make_shared<spdlog::logger>("control", std::make_shared<spdlog::sinks::null_sink_mt>()));
    if (!server->start().ok()) std::abort();
  }
  ~Server() {
    server->stop();
    ioc.poll();
    ::rmdir(dir.c_str());
  }
};

Server& server() {
  static Server s;
  return s;
}

int connectClient(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) std::abort();
  return fd;
}

std::vector<std::string> frames(const std::uint8_t* data, std::size_t size, std::size_t chunkSeed) {
  FrameDecoder d(4096);
  std::vector<std::string> out;
  std::size_t off = 0;
  std::size_t chunk = chunkSeed % 7 + 1;
  while (off < size && d.state() != FrameDecoder::State::Oversize) {
    const std::size_t n = std::min(chunk, size - off);
    std::span<const std::uint8_t> in(data + off, n);
    while (!in.empty()) {
      in = in.subspan(d.feed(in));
      if (d.state() == FrameDecoder::State::Ready) {
        if (d.frame().size() > 4096) std::abort();
        out.emplace_back(d.frame());
        d.next();
      } else if (d.state() == FrameDecoder::State::Oversize) {
        break;
      }
    }
    off += n;
    chunk = chunk * 3 % 11 + 1;
  }
  if (d.pending() > 4 + 4096) std::abort();  // never more than one frame buffered
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // 1. The decoder alone: the split of the stream does not matter.
  if (frames(data, size, 0) != frames(data, size, size)) std::abort();
  for (const auto& f : frames(data, size, 0)) {
    pb::ControlRequest r;
    std::string error;
    if (parseRequest(f, r, error)) (void)checkRequest(r);
  }

  // 2. The real server over a real socket.
  Server& s = server();
  const int fd = connectClient(s.path);
  std::size_t written = 0;
  std::string received;
  bool closed = false;
  for (int idle = 0; idle < 3 && !closed;) {
    if (written < size) {
      const auto n = ::send(fd, data + written, size - written, MSG_NOSIGNAL);
      if (n > 0) written += static_cast<std::size_t>(n);
    }
    std::size_t ran = s.ioc.poll();
    char buf[8192];
    for (;;) {
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        received.append(buf, static_cast<std::size_t>(n));
        ++ran;
        continue;
      }
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) closed = true;
      break;
    }
    idle = ran == 0 && written == size ? idle + 1 : 0;
  }
  ::close(fd);
  // Every byte the server sent is a sequence of well-formed responses.
  FrameDecoder out(kMaxResponseBytes);
  std::span<const std::uint8_t> in(reinterpret_cast<const std::uint8_t*>(received.data()), received.size());
  while (!in.empty()) {
    in = in.subspan(out.feed(in));
    if (out.state() == FrameDecoder::State::Ready) {
      pb::ControlResponse r;
      if (!r.ParseFromArray(out.frame().data(), static_cast<int>(out.frame().size()))) std::abort();
      out.next();
    } else if (out.state() == FrameDecoder::State::Oversize) {
      std::abort();
    }
  }
  if (out.pending() != 0) std::abort();  // no half-written response
  // The server lets go of the connection.
  for (int i = 0; i < 1000 && s.server->clients() != 0; ++i) {
    s.ioc.poll();
    if (s.server->clients() != 0) ::usleep(100);
  }
  if (s.server->clients() != 0) std::abort();
  return 0;
}
