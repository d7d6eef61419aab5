// ControlServer on a real io_context (run on its own thread) with a fake handler at the
// RequestHandler seam, and real clients on the Unix socket: modes, round trips, malformed and
// oversize frames, the client limit, the in-flight limit, a stuck `tail` reader, stale sockets.
// Timeouts run on a manual clock, moved on the executor's thread (World::advance).
#include <doctest/doctest.h>

#include <grp.h>
#include <poll.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cerrno>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "control/server.hpp"
#include "support/manual_clock.hpp"

using namespace citygate;
using namespace citygate::control;
namespace pb = citygate::v1;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Answers status at once; `tail` subscribes and the test pushes events; `spool` never answers
// (a request that stays in progress).
class FakeHandler : public RequestHandler {
 public:
  void handle(const pb::ControlRequest& request, Reply reply) override {
    ++handled;
    if (request.has_tail()) {
      pb::ControlResponse r;
      r.mutable_tail();
      reply.send(r, true, true);
      tails.push_back(reply);
      return;
    }
    if (request.has_spool()) {
      parked.push_back(reply);
      return;
    }
    pb::ControlResponse r;
    r.mutable_status()->set_config_path("fake:" + std::to_string(request.id()));
    reply.send(r);
  }
  // Sends `n` events of `size` bytes to every tail; returns how many sends were refused.
  int burst(int n, std::size_t size) {
    int refused = 0;
    for (int i = 0; i < n; ++i) {
      pb::ControlResponse e;
      e.mutable_tail()->mutable_reading()->set_sensor_id(std::string(size, 'x'));
      for (auto& t : tails) refused += t.send(e, true, true) ? 0 : 1;
    }
    return refused;
  }

  int handled = 0;
  std::vector<Reply> tails;
  std::vector<Reply> parked;
};

struct World {
  testing::ManualClock clock;  // outlives the io_context (sessions' timers)
  asio::io_context ioc;
  std::shared_ptr<FakeHandler> handler = std::make_shared<FakeHandler>();
  std::shared_ptr<ControlServer> server;
  std::filesystem::path dir;
  std::string path;
  std::thread thread;

  explicit World(ServerOptions o = {}) {
    char tmpl[] = "/tmp/cg-control-XXXXXX";
    dir = ::mkdtemp(tmpl);
    path = (dir / "run" / "sub" / "control.sock").string();
    o.path = path;
    o.group = "";  // tests run without a citygate group
    server = std::make_shared<ControlServer>(
        ioc.get_executor(), clock, o, handler,
        std::make_shared<spdlog::logger>("control", std::make_shared<spdlog::sinks::null_sink_mt>()));
  }
  // The listening socket's pending accept keeps run() going until the server stops.
  void run() {
    thread = std::thread([this] { ioc.run(); });
  }
  // Runs `f` on the executor and waits for it.
  template <typename F>
  auto onLoop(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    if (!thread.joinable()) {
      task();
      return fut.get();
    }
    asio::post(ioc, [&task] { task(); });
    return fut.get();
  }
  ServerCounters counters() {
    return onLoop([this] { return server->counters(); });
  }
  // Moves the manual clock on the executor's thread (timers fire there, as they would).
  void advance(std::chrono::milliseconds d) {
    onLoop([this, d] {
      clock.advance(d);
      return 0;
    });
  }
  std::size_t clients() {
    return onLoop([this] { return server->clients(); });
  }
  ~World() {
    onLoop([this] { server->stop(); });
    ioc.stop();
    if (thread.joinable()) thread.join();
    clock.dropHandlers();  // the sessions they hold, while the io_context is alive
    std::filesystem::remove_all(dir);
  }
};

int connectTo(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void sendAll(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const auto n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    REQUIRE(n > 0);
    off += static_cast<std::size_t>(n);
  }
}

// As sendAll, but the server may close the connection part-way (a client over a budget): stops
// there (EPIPE); the server's answer is still there to read.
void sendUntilClosed(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const auto n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) return;
    REQUIRE(n > 0);
    off += static_cast<std::size_t>(n);
  }
}

// Reads one response; false on EOF or after `timeout`.
bool readResponse(int fd, pb::ControlResponse& out, std::chrono::milliseconds timeout = 5s) {
  FrameDecoder d(kMaxResponseBytes);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (d.state() != FrameDecoder::State::Ready) {
    pollfd p{fd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    std::uint8_t b;  // byte by byte: never reads past this frame
    if (::recv(fd, &b, 1, 0) != 1) return false;
    d.feed({&b, 1});
  }
  return out.ParseFromArray(d.frame().data(), static_cast<int>(d.frame().size()));
}

bool closedByPeer(int fd, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
  }
  return false;
}

std::string request(std::uint64_t id) {
  pb::ControlRequest r;
  r.set_id(id);
  r.mutable_status();
  return frameMessage(r, kMaxRequestBytes);
}

template <typename P>
bool eventually(P p, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (p()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return p();
}

}  // namespace

TEST_CASE("the socket is created 0660 in a 0750 directory, and removed at stop") {
  World w;
  REQUIRE(w.server->start().ok());
  struct stat st {};
  REQUIRE(::stat(w.path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0660);
  REQUIRE(::stat((w.dir / "run" / "sub").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0750);
  w.server->stop();
  CHECK_FALSE(std::filesystem::exists(w.path));
}

TEST_CASE("the socket goes to the configured group when it exists") {
  const group* g = ::getgrnam("daemon");  // present on Debian; the test needs some group that is not ours
  if (g == nullptr || ::getegid() == g->gr_gid || ::geteuid() != 0) return;  // nothing to show as non-root
  World w;
  w.server = std::make_shared<ControlServer>(
      w.ioc.get_executor(), w.clock, ServerOptions{w.path, "daemon"}, w.handler,
      std::make_shared<spdlog::logger>("c", std::make_shared<spdlog::sinks::null_sink_mt>()));
  REQUIRE(w.server->start().ok());
  struct stat st {};
  REQUIRE(::stat(w.path.c_str(), &st) == 0);
  CHECK(st.st_gid == g->gr_gid);
  REQUIRE(::stat((w.dir / "run" / "sub").c_str(), &st) == 0);
  CHECK(st.st_gid == g->gr_gid);
  CHECK((st.st_mode & 0777) == 0750);
}

TEST_CASE("requests are answered with their id, several on one connection") {
  World w;
  REQUIRE(w.server->start().ok());
  w.run();
  const int fd = connectTo(w.path);
  REQUIRE(fd >= 0);
  sendAll(fd, request(41) + request(42));
  pb::ControlResponse r;
  REQUIRE(readResponse(fd, r));
  CHECK(r.id() == 41);
  CHECK(r.status().config_path() == "fake:41");
  CHECK_FALSE(r.more());
  REQUIRE(readResponse(fd, r));
  CHECK(r.id() == 42);
  ::close(fd);
  CHECK(eventually([&] { return w.onLoop([&] { return w.server->clients(); }) == 0; }));
  CHECK(w.counters().requests == 2);
}

TEST_CASE("a malformed request gets BAD_REQUEST and the connection stays usable") {
  World w;
  REQUIRE(w.server->start().ok());
  w.run();
  const int fd = connectTo(w.path);
  std::string junk = std::string("\x00\x00\x00\x05", 4) + "\xff\xff\xff\xff\xff";
  std::string noCommand = frameMessage(pb::ControlRequest(), kMaxRequestBytes);
  sendAll(fd, junk + noCommand + request(7));
  pb::ControlResponse r;
  REQUIRE(readResponse(fd, r));
  CHECK(r.error().code() == pb::ControlError::BAD_REQUEST);
  REQUIRE(readResponse(fd, r));
  CHECK(r.error().code() == pb::ControlError::BAD_REQUEST);
  CHECK(r.error().message().find("no command") != std::string::npos);
  REQUIRE(readResponse(fd, r));
  CHECK(r.id() == 7);
  CHECK_FALSE(r.has_error());
  CHECK(w.counters().badRequests == 2);
  CHECK(w.handler->handled == 1);
  ::close(fd);
}

TEST_CASE("an oversize frame is answered, counted, and the connection closed") {
  World w;
  REQUIRE(w.server->start().ok());
  w.run();
  const int fd = connectTo(w.path);
  sendAll(fd, std::string("\x7f\xff\xff\xff", 4) + "whatever follows");
  pb::ControlResponse r;
  REQUIRE(readResponse(fd, r));
  CHECK(r.error().code() == pb::ControlError::BAD_REQUEST);
  CHECK(r.error().message().find("larger than") != std::string::npos);
  CHECK(closedByPeer(fd));
  CHECK(w.counters().badFrames == 1);
  ::close(fd);
  // the server still serves
  const int again = connectTo(w.path);
  sendAll(again, request(1));
  REQUIRE(readResponse(again, r));
  CHECK(r.id() == 1);
  ::close(again);
}

TEST_CASE("at the client limit the connection longest without a request makes room, BUSY only when all are busy") {
  ServerOptions o;
  o.maxClients = 3;
  World w(o);
  REQUIRE(w.server->start().ok());
  w.run();
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(connectTo(w.path));
    sendAll(held.back(), request(i));
    pb::ControlResponse r;
    REQUIRE(readResponse(held.back(), r));  // accepted and served; idle from now on
  }
  // A fourth: the first (idle longest) is told why and closed, the newcomer is served.
  const int extra = connectTo(w.path);
  REQUIRE(extra >= 0);
  pb::ControlResponse r;
  REQUIRE(readResponse(held[0], r));
  CHECK(r.error().code() == pb::ControlError::BUSY);
  CHECK(r.error().message().find("make room") != std::string::npos);
  CHECK(closedByPeer(held[0]));
  sendAll(extra, request(7));
  REQUIRE(readResponse(extra, r));
  CHECK(r.id() == 7);
  CHECK(w.counters().evicted == 1);
  CHECK(w.counters().rejected == 0);
  // Every connection with a request in progress: a newcomer is turned away, nobody is evicted.
  pb::ControlRequest parked;
  parked.mutable_spool();
  for (int fd : {held[1], held[2], extra}) sendAll(fd, frameMessage(parked, kMaxRequestBytes));
  REQUIRE(eventually([&] { return w.onLoop([&] { return w.handler->parked.size(); }) == 3; }));
  const int turned = connectTo(w.path);
  REQUIRE(readResponse(turned, r));
  CHECK(r.error().code() == pb::ControlError::BUSY);
  CHECK(closedByPeer(turned));
  CHECK(w.counters().rejected == 1);
  CHECK(w.counters().evicted == 1);
  ::close(turned);
  ::close(extra);
  for (int fd : held) ::close(fd);
  CHECK(eventually([&] { return w.onLoop([&] { return w.server->clients(); }) == 0; }));
}

TEST_CASE("idle connections and slow senders cannot lock a new client out") {
  ServerOptions o;
  o.maxClients = 8;
  o.frameTimeout = 2s;
  World w(o);
  REQUIRE(w.server->start().ok());
  w.run();
  // 8 idle connections and 8 slow senders (a header byte each) fill and refill every slot.
  std::vector<int> crowd;
  for (int i = 0; i < 16; ++i) {
    crowd.push_back(connectTo(w.path));
    if (i % 2 == 1) sendAll(crowd.back(), std::string("\x00", 1));
  }
  REQUIRE(eventually([&] { return w.counters().accepted == 16; }));
  const auto start = std::chrono::steady_clock::now();
  const int tech = connectTo(w.path);
  sendAll(tech, request(99));
  pb::ControlResponse r;
  REQUIRE(readResponse(tech, r, 2s));
  CHECK(r.id() == 99);
  CHECK_FALSE(r.has_error());
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(w.counters().rejected == 0);
  ::close(tech);
  for (int fd : crowd) ::close(fd);
}

TEST_CASE("a connection without a request is closed after the idle timeout") {
  ServerOptions o;
  o.idleTimeout = 300ms;
  World w(o);
  REQUIRE(w.server->start().ok());
  w.run();
  const int idle = connectTo(w.path);
  const int used = connectTo(w.path);
  sendAll(used, request(1));
  pb::ControlResponse r;
  REQUIRE(readResponse(used, r));
  REQUIRE(eventually([&] { return w.counters().accepted == 2; }));
  w.advance(299ms);
  CHECK(w.clients() == 2);
  w.advance(1ms);
  CHECK(closedByPeer(idle));
  CHECK(closedByPeer(used));  // idle again after its answer
  CHECK(w.counters().idleClosed == 2);
  // A request in progress (a tail, a long read) keeps its connection however long it takes.
  const int waiting = connectTo(w.path);
  pb::ControlRequest parked;
  parked.set_id(5);
  parked.mutable_spool();
  sendAll(waiting, frameMessage(parked, kMaxRequestBytes));
  REQUIRE(eventually([&] { return w.onLoop([&] { return w.handler->parked.size(); }) == 1; }));
  w.advance(800ms);
  CHECK(w.clients() == 1);
  w.onLoop([&] { return w.handler->parked[0].send(pb::ControlResponse()); });
  REQUIRE(readResponse(waiting, r));
  CHECK(r.id() == 5);
  w.advance(299ms);
  CHECK(w.clients() == 1);
  w.advance(1ms);
  CHECK(closedByPeer(waiting));
  CHECK(w.counters().idleClosed == 3);
  ::close(idle);
  ::close(used);
  ::close(waiting);
}

TEST_CASE("a frame that trickles in (slowloris) is refused at the frame deadline") {
  ServerOptions o;
  o.frameTimeout = 500ms;
  o.idleTimeout = 60s;
  World w(o);
  REQUIRE(w.server->start().ok());
  w.run();
  const std::string f = request(3);
  // The frame deadline is the session's timer once a frame's first byte is in.
  auto frameDeadlineAt = [&](SteadyTime at) {
    return eventually([&] { return w.onLoop([&] { return w.clock.nextDue(); }) == std::optional<SteadyTime>(at); });
  };
  const int slow = connectTo(w.path);
  const SteadyTime start = w.clock.steadyNow();
  sendAll(slow, f.substr(0, 1));
  REQUIRE(frameDeadlineAt(start + 500ms));
  for (std::size_t i = 1; i + 1 < f.size() && i < 5; ++i) {  // a byte every 100 ms, never the last
    w.advance(100ms);
    sendAll(slow, f.substr(i, 1));
  }
  w.advance(499ms - 100ms * std::min<std::size_t>(f.size() - 2, 4));
  CHECK(w.counters().frameTimeouts == 0);
  w.advance(1ms);
  pb::ControlResponse r;
  REQUIRE(readResponse(slow, r));
  CHECK(r.error().code() == pb::ControlError::BAD_REQUEST);
  CHECK(r.error().message().find("no complete request within 500 ms") != std::string::npos);
  CHECK(closedByPeer(slow));
  CHECK(w.counters().frameTimeouts == 1);
  ::close(slow);
  // A whole frame sent slowly but within the deadline is served.
  const int ok = connectTo(w.path);
  const SteadyTime okStart = w.clock.steadyNow();
  sendAll(ok, f.substr(0, 1));
  REQUIRE(frameDeadlineAt(okStart + 500ms));
  w.advance(499ms);
  sendAll(ok, f.substr(1));
  REQUIRE(readResponse(ok, r));
  CHECK(r.id() == 3);
  CHECK(w.counters().frameTimeouts == 1);
  ::close(ok);
}

TEST_CASE("unfinished frames cost the bytes that arrived, within one budget for all connections") {
  ServerOptions o;
  o.maxPartialBytes = 600 * 1024;
  World w(o);
  REQUIRE(w.server->start().ok());
  w.run();
  // A header announcing 1 MiB holds (almost) nothing.
  const int announcer = connectTo(w.path);
  sendAll(announcer, std::string("\x00\x10\x00\x00", 4) + std::string(100, 'x'));
  REQUIRE(eventually([&] { return w.onLoop([&] { return w.server->partialBytes(); }) > 0; }));
  CHECK(w.onLoop([&] { return w.server->partialBytes(); }) <= FrameDecoder::kGrowStep);
  // Clients that each send 200 KiB of a 1 MiB frame: the one that passes the budget is told and closed.
  std::vector<int> fat;
  int refused = -1;
  for (int i = 0; i < 4 && refused < 0; ++i) {
    fat.push_back(connectTo(w.path));
    sendUntilClosed(fat.back(), std::string("\x00\x10\x00\x00", 4) + std::string(200 * 1024, 'x'));
    // Wait for the event: the server holds this client's bytes too, or it refused one.
    const std::size_t held = FrameDecoder::kGrowStep + static_cast<std::size_t>(i + 1) * 4 * FrameDecoder::kGrowStep;
    REQUIRE(eventually(
        [&] { return w.counters().overBudget > 0 || w.onLoop([&] { return w.server->partialBytes(); }) == held; }));
    pb::ControlResponse r;
    if (w.counters().overBudget > 0) {
      REQUIRE(readResponse(fat.back(), r));
      CHECK(r.error().message().find("unfinished requests") != std::string::npos);
      CHECK(closedByPeer(fat.back()));
      refused = i;
    }
  }
  // 64 KiB (the announcer) + 2 x 256 KiB (200 KiB in 64 KiB steps) fit in 600 KiB; the third does not.
  CHECK(refused == 2);
  CHECK(w.counters().overBudget == 1);
  CHECK(w.onLoop([&] { return w.server->partialBytes(); }) <= o.maxPartialBytes);
  // Gone clients free the budget; a large frame alone fits and is served.
  ::close(announcer);
  for (int fd : fat) ::close(fd);
  CHECK(eventually([&] { return w.onLoop([&] { return w.server->partialBytes(); }) == 0; }));
  const int big = connectTo(w.path);
  sendAll(big, std::string("\x00\x06\x40\x00", 4) + std::string(400 * 1024, '\xff'));
  pb::ControlResponse r;
  REQUIRE(readResponse(big, r));
  CHECK(r.error().code() == pb::ControlError::BAD_REQUEST);
  CHECK(r.error().message().find("malformed request") != std::string::npos);
  CHECK(eventually([&] { return w.onLoop([&] { return w.server->partialBytes(); }) == 0; }));
  ::close(big);
}

TEST_CASE("malformed requests are counted, each answered, and logged at most once per interval") {
  ServerOptions o;
  o.logInterval = 60s;
  World w(o);
  std::ostringstream logged;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(logged);
  o.path = w.path;
  o.group = "";
  w.server = std::make_shared<ControlServer>(w.ioc.get_executor(), w.clock, o, w.handler,
                                             std::make_shared<spdlog::logger>("control", sink));
  REQUIRE(w.server->start().ok());
  w.run();
  const int fd = connectTo(w.path);
  pb::ControlRequest bad;
  bad.set_id(1);
  bad.mutable_modbus_read()->set_bus("b");
  std::string frame = frameMessage(bad, kMaxRequestBytes);
  const auto at = frame.rfind('b');
  frame[at] = '\xe9';  // Latin-1: not UTF-8
  std::string burst;
  for (int i = 0; i < 500; ++i) burst += frame;
  std::thread reader([fd] {
    pb::ControlResponse r;
    for (int i = 0; i < 500; ++i) {
      if (!readResponse(fd, r)) return;
      CHECK(r.error().code() == pb::ControlError::BAD_REQUEST);
      if (i == 0) CHECK(r.error().message() == "malformed request: citygate.v1.ModbusReadRequest.bus is not UTF-8");
    }
  });
  sendAll(fd, burst);
  reader.join();
  CHECK(w.counters().badRequests == 500);
  w.onLoop([] { return 0; });
  const std::string text = logged.str();
  INFO(text);
  std::size_t warnings = 0;
  for (auto pos = text.find("[warning]"); pos != std::string::npos; pos = text.find("[warning]", pos + 1)) ++warnings;
  CHECK(warnings == 1);
  CHECK(text.find("is not UTF-8") != std::string::npos);
  CHECK(w.counters().logsSuppressed == 499);
  ::close(fd);
}

TEST_CASE("closing a connection cancels its requests in progress (Reply::onClose)") {
  World w;
  REQUIRE(w.server->start().ok());
  w.run();
  const int fd = connectTo(w.path);
  pb::ControlRequest parked;
  parked.set_id(1);
  parked.mutable_spool();
  sendAll(fd, frameMessage(parked, kMaxRequestBytes));
  parked.set_id(2);
  sendAll(fd, frameMessage(parked, kMaxRequestBytes));
  REQUIRE(eventually([&] { return w.onLoop([&] { return w.handler->parked.size(); }) == 2; }));
  std::atomic<int> cancelled{0};
  w.onLoop([&] {
    w.handler->parked[0].onClose([&] { ++cancelled; });
    w.handler->parked[1].onClose([&] { cancelled += 10; });
    return w.handler->parked[1].send(pb::ControlResponse());  // finished: its hook is gone
  });
  pb::ControlResponse r;
  REQUIRE(readResponse(fd, r));
  CHECK(cancelled == 0);
  ::close(fd);
  CHECK(eventually([&] { return cancelled.load() == 1; }));
  w.onLoop([&] {
    w.handler->parked[0].onClose([&] { cancelled += 100; });  // too late: nothing happens
    return 0;
  });
  CHECK(cancelled == 1);
}

TEST_CASE("requests beyond the in-flight limit of a connection are BUSY") {
  ServerOptions o;
  o.maxInflightPerClient = 2;
  World w(o);
  REQUIRE(w.server->start().ok());
  w.run();
  const int fd = connectTo(w.path);
  pb::ControlRequest parked;
  parked.mutable_spool();
  for (int i = 0; i < 3; ++i) {
    parked.set_id(100 + i);
    sendAll(fd, frameMessage(parked, kMaxRequestBytes));
  }
  pb::ControlResponse r;
  REQUIRE(readResponse(fd, r));
  CHECK(r.id() == 102);
  CHECK(r.error().code() == pb::ControlError::BUSY);
  CHECK(w.counters().busy == 1);
  // finishing one frees a slot
  w.onLoop([&] { return w.handler->parked[0].send(pb::ControlResponse()); });
  REQUIRE(readResponse(fd, r));
  CHECK(r.id() == 100);
  sendAll(fd, request(5));
  REQUIRE(readResponse(fd, r));
  CHECK(r.id() == 5);
  CHECK_FALSE(r.has_error());
  ::close(fd);
}

TEST_CASE("a tail client that stops reading is dropped, one that reads keeps its stream") {
  ServerOptions o;
  o.maxStreamQueueBytes = 64 * 1024;
  World w(o);
  REQUIRE(w.server->start().ok());
  w.run();
  pb::ControlRequest t;
  t.set_id(9);
  t.mutable_tail();
  pb::ControlResponse r;
  const int stuck = connectTo(w.path);
  sendAll(stuck, frameMessage(t, kMaxRequestBytes));
  REQUIRE(readResponse(stuck, r));  // the subscription
  CHECK(r.more());
  CHECK(r.has_tail());
  const int reader = connectTo(w.path);
  sendAll(reader, frameMessage(t, kMaxRequestBytes));
  REQUIRE(readResponse(reader, r));
  std::atomic<std::size_t> received{0};
  std::thread drain([&] {
    char buf[65536];
    for (;;) {
      const auto n = ::recv(reader, buf, sizeof buf, 0);
      if (n <= 0) return;
      received += static_cast<std::size_t>(n);
    }
  });
  // Events of 1 kB, 10 per executor turn: the stuck client's kernel buffer fills, then its queue
  // passes the limit. The next burst waits until the reader has taken the last one, so the reader
  // keeps up however slowly its thread is scheduled (a loaded machine, a sanitizer, qemu).
  int refused = 0;
  int rounds = 0;
  for (; rounds < 2000 && refused == 0; ++rounds) {
    refused = w.onLoop([&] { return w.handler->burst(10, 1000); });
    const std::size_t sent = static_cast<std::size_t>(rounds + 1) * 10U * 1000U;
    REQUIRE(eventually([&] { return received.load() >= sent; }, 10s));
  }
  CHECK(refused >= 1);  // the stuck one
  CHECK(w.counters().slowDropped == 1);
  CHECK(closedByPeer(stuck, 10s));
  CHECK(w.onLoop([&] { return w.handler->tails[1].alive(); }));
  CHECK_FALSE(w.onLoop([&] { return w.handler->tails[0].alive(); }));
  // everything sent to the reader arrives
  const std::size_t expected = static_cast<std::size_t>(rounds) * 10U;
  CHECK(eventually([&] { return received.load() >= expected * 1000U; }, 10s));
  ::shutdown(reader, SHUT_RDWR);
  drain.join();
  ::close(reader);
  ::close(stuck);
  const int other = connectTo(w.path);
  sendAll(other, request(3));
  REQUIRE(readResponse(other, r));
  CHECK(r.id() == 3);
  ::close(other);
}

TEST_CASE("replies to a closed client go nowhere and do not crash") {
  World w;
  REQUIRE(w.server->start().ok());
  w.run();
  const int fd = connectTo(w.path);
  pb::ControlRequest parked;
  parked.set_id(1);
  parked.mutable_spool();
  sendAll(fd, frameMessage(parked, kMaxRequestBytes));
  REQUIRE(eventually([&] { return w.onLoop([&] { return w.handler->parked.size(); }) == 1; }));
  ::close(fd);
  REQUIRE(eventually([&] { return w.onLoop([&] { return w.server->clients(); }) == 0; }));
  CHECK_FALSE(w.onLoop([&] { return w.handler->parked[0].alive(); }));
  CHECK_FALSE(w.onLoop([&] { return w.handler->parked[0].send(pb::ControlResponse()); }));
}

TEST_CASE("a stale socket file is replaced, a live one is not taken over") {
  World first;
  REQUIRE(first.server->start().ok());
  // A second server on the same path while the first listens: refused.
  auto second = std::make_shared<ControlServer>(
      first.ioc.get_executor(), first.clock, ServerOptions{first.path, ""}, first.handler,
      std::make_shared<spdlog::logger>("c", std::make_shared<spdlog::sinks::null_sink_mt>()));
  auto st = second->start();
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().find("another process listens") != std::string::npos);

  // A socket file nobody listens on (a crashed daemon's) is replaced.
  const std::string stale = (first.dir / "stale.sock").string();
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, stale.c_str(), sizeof(sa.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    ::close(fd);  // the file stays, nobody listens
  }
  auto third = std::make_shared<ControlServer>(
      first.ioc.get_executor(), first.clock, ServerOptions{stale, ""}, first.handler,
      std::make_shared<spdlog::logger>("c", std::make_shared<spdlog::sinks::null_sink_mt>()));
  CHECK(third->start().ok());
  third->stop();

  // A regular file in the way is not deleted.
  const std::string file = (first.dir / "file.sock").string();
  { std::ofstream(file) << "data"; }
  auto fourth = std::make_shared<ControlServer>(
      first.ioc.get_executor(), first.clock, ServerOptions{file, ""}, first.handler,
      std::make_shared<spdlog::logger>("c", std::make_shared<spdlog::sinks::null_sink_mt>()));
  CHECK_FALSE(fourth->start().ok());
  CHECK(std::filesystem::exists(file));
}
