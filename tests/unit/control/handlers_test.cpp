// The command handlers served from a fake daemon at the ControlTarget seam (no app::Gateway, no
// sources, no spool): a real ControlServer on a real io_context and a real client on the Unix
// socket. `config show` answers from the target's running configuration, `config diff` and
// `config apply` go through ControlTarget::applyConfig and report its plan, and the reading tap the
// handlers install on the target feeds `devices`.
#include <doctest/doctest.h>
#include <poll.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

#include "control/control_target.hpp"
#include "control/handlers.hpp"
#include "control/server.hpp"
#include "platform/logging.hpp"
#include "support/manual_clock.hpp"

using namespace citygate;
using namespace citygate::control;
namespace pb = citygate::v1;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<spdlog::logger> quiet(const std::string& name) {
  return std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::null_sink_mt>());
}

// A source that lists one Modbus-like device (the handlers list devices through sources::Source).
class ListedSource : public sources::Source {
 public:
  ListedSource() {
    spec_.kind = "modbus";
    spec_.name = "bus1";
    auto& d = spec_.devices.emplace_back();
    d.set_id("meter-1");
    d.set_kind("modbus");
    d.set_bus("bus1");
    d.set_unit_id(3);
    d.set_profile("fake-meter");
  }
  const sources::SourceSpec& spec() const override { return spec_; }
  Status start() override { return Ok{}; }
  void stop(std::function<void()> done) override { done(); }
  void fillHealth(pb::GatewayHealth&) const override {}

 private:
  sources::SourceSpec spec_;
};

// A running configuration with one Modbus device and a secret, and an applyConfig that answers
// at once with a fixed plan and records what it was asked.
class FakeTarget : public ControlTarget {
 public:
  FakeTarget() {
    loaded_.path = "/etc/citygate/fake.textproto";
    loaded_.text = "gateway_id: \"fake\"\nmqtt { password: \"hunter2\" }\n";
    loaded_.config.set_gateway_id("fake");
    auto* bus = loaded_.config.add_modbus_bus();
    bus->set_name("bus1");
    bus->mutable_tcp()->set_host("127.0.0.1");
    bus->mutable_tcp()->set_port(1502);
    auto* dev = bus->add_device();
    dev->set_id("meter-1");
    dev->set_unit_id(3);
    dev->set_profile("fake-meter");
  }

  pb::GatewayHealth health() const override { return {}; }
  const config::LoadedConfig& loadedConfig() const override { return loaded_; }
  std::uint64_t configGeneration() const override { return 7; }
  WallTime configLoadedAt() const override { return WallTime{std::chrono::seconds{1'700'000'000}}; }
  const std::string& bootId() const override { return bootId_; }
  const std::string& version() const override { return version_; }
  WallTime startedAt() const override { return WallTime{std::chrono::seconds{1'700'000'000}}; }
  bool stopping() const override { return false; }
  platform::Logging& logging() override { return logging_; }

  void applyConfig(std::string path, std::optional<std::string> text, bool dryRun, ApplyDone done) override {
    calls.push_back({std::move(path), text.value_or(""), dryRun});
    ApplyOutcome o;
    o.kind = dryRun ? ApplyOutcome::Kind::Planned : ApplyOutcome::Kind::Applied;
    o.plan.added = {"bus2"};
    o.plan.unchanged = {"bus1"};
    o.text = text.value_or("");
    o.generation = 8;
    o.nextSeq = 42;
    done(std::move(o));
  }
  void applyAndSave(std::string path, std::string text, ApplyDone done) override {
    calls.push_back({path, text, false, true});
    ApplyOutcome o;
    o.kind = ApplyOutcome::Kind::Applied;
    o.text = text;
    o.generation = 8;
    o.saved = true;
    o.backup = "/etc/citygate/fake.textproto.bak";
    done(std::move(o));
  }
  void setReadingTap(ReadingTap t) override { tap = std::move(t); }

  const std::vector<std::shared_ptr<sources::Source>>& sources() const override { return sources_; }

  struct Call {
    std::string path;
    std::string text;
    bool dryRun;
    bool save = false;
  };
  std::vector<Call> calls;
  ReadingTap tap;

 private:
  config::LoadedConfig loaded_;
  std::string bootId_ = "b00t";
  std::string version_ = "0.0-test";
  platform::Logging logging_{true};
  std::vector<std::shared_ptr<sources::Source>> sources_{std::make_shared<ListedSource>()};
};

struct World {
  testing::ManualClock clock;  // outlives the io_context (sessions' timers)
  asio::io_context ioc;
  std::shared_ptr<FakeTarget> target = std::make_shared<FakeTarget>();
  std::shared_ptr<Handlers> handlers;
  std::shared_ptr<ControlServer> server;
  std::filesystem::path dir;
  std::thread thread;
  int fd = -1;

  World() {
    char tmpl[] = "/tmp/cg-handlers-XXXXXX";
    dir = ::mkdtemp(tmpl);
    ServerOptions o;
    o.path = (dir / "control.sock").string();
    o.group = "";
    handlers = std::make_shared<Handlers>(ioc.get_executor(), target, quiet("control"));
    handlers->install();
    server = std::make_shared<ControlServer>(ioc.get_executor(), clock, o, handlers, quiet("control"));
    REQUIRE(server->start().ok());
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);  // the listening socket's backlog takes it
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, o.path.c_str(), sizeof(sa.sun_path) - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    thread = std::thread([this] { ioc.run(); });
  }
  ~World() {
    ::close(fd);
    std::promise<void> stopped;
    asio::post(ioc, [&] {
      server->stop();
      stopped.set_value();
    });
    stopped.get_future().wait();
    ioc.stop();
    thread.join();
    clock.dropHandlers();  // the sessions they hold, while the io_context is alive
    std::filesystem::remove_all(dir);
  }

  // Sends `request` and reads its one response (false on EOF or after 5 s).
  bool ask(pb::ControlRequest request, pb::ControlResponse& out) {
    request.set_id(++lastId);
    const std::string bytes = frameMessage(request, kMaxRequestBytes);
    for (std::size_t off = 0; off < bytes.size();) {
      const auto n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    FrameDecoder d(kMaxResponseBytes);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (d.state() != FrameDecoder::State::Ready) {
      pollfd p{fd, POLLIN, 0};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      std::uint8_t b;
      if (::recv(fd, &b, 1, 0) != 1) return false;
      d.feed({&b, 1});
    }
    return out.ParseFromArray(d.frame().data(), static_cast<int>(d.frame().size()));
  }
  std::uint64_t lastId = 0;
};

}  // namespace

TEST_CASE("handlers at the ControlTarget seam: config show answers from the target's configuration") {
  World w;
  pb::ControlRequest req;
  req.mutable_config_show();
  pb::ControlResponse r;
  REQUIRE(w.ask(req, r));
  REQUIRE(r.has_config_show());
  CHECK(r.config_show().path() == "/etc/citygate/fake.textproto");
  CHECK(r.config_show().generation() == 7);
  CHECK(r.config_show().loaded_at().seconds() == 1'700'000'000);
  CHECK(r.config_show().text().find("gateway_id: \"fake\"") != std::string::npos);
  CHECK(r.config_show().text().find("hunter2") == std::string::npos);  // redacted
}

TEST_CASE("handlers at the ControlTarget seam: config diff and apply go through applyConfig") {
  World w;
  pb::ControlRequest diff;
  diff.mutable_config_diff()->set_text("gateway_id: \"fake2\"\n");
  pb::ControlResponse r;
  REQUIRE(w.ask(diff, r));
  REQUIRE(r.has_config_diff());
  CHECK(r.config_diff().plan().added_size() == 1);
  CHECK(r.config_diff().plan().added(0) == "bus2");
  CHECK(r.config_diff().plan().unchanged(0) == "bus1");
  CHECK(r.config_diff().diff().find("+gateway_id: \"fake2\"") != std::string::npos);

  pb::ControlRequest apply;
  apply.mutable_config_apply()->set_text("gateway_id: \"fake2\"\n");
  apply.mutable_config_apply()->set_persist(pb::ConfigApplyRequest::RUNTIME_ONLY);
  REQUIRE(w.ask(apply, r));
  REQUIRE(r.has_config_apply());
  CHECK(r.config_apply().generation() == 8);
  CHECK(r.config_apply().next_seq() == 42);

  std::promise<std::vector<FakeTarget::Call>> calls;
  asio::post(w.ioc, [&] { calls.set_value(w.target->calls); });
  const auto c = calls.get_future().get();
  REQUIRE(c.size() == 2);
  CHECK(c[0].dryRun);
  CHECK_FALSE(c[1].dryRun);
  CHECK(c[1].text == "gateway_id: \"fake2\"\n");
}

TEST_CASE("config apply: --save, the config file itself, or neither (checked, then refused)") {
  World w;
  pb::ControlResponse r;
  // Another file without a choice: checked like a diff, then BAD_REQUEST naming both options.
  pb::ControlRequest other;
  other.mutable_config_apply()->set_path("/tmp/new.textproto");
  other.mutable_config_apply()->set_text("gateway_id: \"fake\"\n");
  REQUIRE(w.ask(other, r));
  REQUIRE(r.has_error());
  CHECK(r.error().code() == pb::ControlError::BAD_REQUEST);
  CHECK(r.error().message().find("/tmp/new.textproto is not citygated's --config file "
                                 "/etc/citygate/fake.textproto") != std::string::npos);
  CHECK(r.error().message().find("--save") != std::string::npos);
  CHECK(r.error().message().find("--runtime-only") != std::string::npos);
  // --save of that file, and the config file itself without a flag: applied and saved.
  other.mutable_config_apply()->set_persist(pb::ConfigApplyRequest::SAVE);
  REQUIRE(w.ask(other, r));
  REQUIRE(r.has_config_apply());
  CHECK(r.config_apply().saved());
  CHECK(r.config_apply().config_file() == "/etc/citygate/fake.textproto");
  CHECK(r.config_apply().backup() == "/etc/citygate/fake.textproto.bak");
  pb::ControlRequest own;
  own.mutable_config_apply()->set_path("/etc/citygate/fake.textproto");
  own.mutable_config_apply()->set_text("gateway_id: \"fake\"\n");
  REQUIRE(w.ask(own, r));
  REQUIRE(r.has_config_apply());
  // A persist value this daemon does not know: a bad request, counted.
  pb::ControlRequest odd = own;
  odd.mutable_config_apply()->set_persist(static_cast<pb::ConfigApplyRequest::Persist>(9));
  REQUIRE(w.ask(odd, r));
  CHECK(r.error().code() == pb::ControlError::BAD_REQUEST);
  CHECK(r.error().message().find("unknown persist value 9") != std::string::npos);

  std::promise<std::vector<FakeTarget::Call>> calls;
  asio::post(w.ioc, [&] { calls.set_value(w.target->calls); });
  const auto c = calls.get_future().get();
  REQUIRE(c.size() == 3);
  CHECK(c[0].dryRun);  // the refused one was only checked
  CHECK((!c[1].dryRun && c[1].save && c[1].path == "/tmp/new.textproto"));
  CHECK((!c[2].dryRun && c[2].save && c[2].path == "/etc/citygate/fake.textproto"));
}

TEST_CASE("config apply and diff: <redacted> keeps the running secret, none to keep is INVALID_CONFIG") {
  World w;
  pb::ControlResponse r;
  pb::ControlRequest diff;
  diff.mutable_config_diff()->set_path("/tmp/shown.textproto");
  diff.mutable_config_diff()->set_text("gateway_id: \"fake\"\nmqtt { password: \"<redacted>\" }\n");
  REQUIRE(w.ask(diff, r));
  REQUIRE(r.has_config_diff());
  CHECK(r.config_diff().diff().empty());  // the same secret: no change shown
  pb::ControlRequest apply;
  apply.mutable_config_apply()->set_path("/tmp/shown.textproto");
  apply.mutable_config_apply()->set_persist(pb::ConfigApplyRequest::SAVE);
  apply.mutable_config_apply()->set_text("gateway_id: \"fake\"\nmqtt { password: \"<redacted>\" }\n");
  REQUIRE(w.ask(apply, r));
  REQUIRE(r.has_config_apply());
  CHECK(r.config_apply().secrets_kept() == 1);
  CHECK(r.config_apply().ShortDebugString().find("hunter2") == std::string::npos);
  pb::ControlRequest stray = apply;
  stray.mutable_config_apply()->set_text("gateway_id: \"fake\"\nlora { device { nwk_s_key: \"<redacted>\" } }\n");
  REQUIRE(w.ask(stray, r));
  CHECK(r.error().code() == pb::ControlError::INVALID_CONFIG);
  REQUIRE(r.error().diagnostics_size() == 1);
  CHECK(r.error().diagnostics(0).rfind("/tmp/shown.textproto:2:28: nwk_s_key is \"<redacted>\"", 0) == 0);

  std::promise<std::vector<FakeTarget::Call>> calls;
  asio::post(w.ioc, [&] { calls.set_value(w.target->calls); });
  const auto c = calls.get_future().get();
  REQUIRE(c.size() == 2);  // the stray one never reached the daemon's check
  CHECK(c[0].text.find("password: \"hunter2\"") != std::string::npos);
  CHECK(c[1].text == "gateway_id: \"fake\"\nmqtt { password: \"hunter2\" }\n");
}

TEST_CASE("status and config show report the --config file against the running text") {
  World w;
  pb::ControlRequest req;
  req.mutable_status();
  pb::ControlResponse r;
  REQUIRE(w.ask(req, r));
  CHECK(r.status().config_file().path() == "/etc/citygate/fake.textproto");
  // The fake's file does not exist on this machine.
  CHECK(r.status().config_file().state() == pb::ConfigFileStatus::MISSING);
  req.mutable_config_show();
  REQUIRE(w.ask(req, r));
  CHECK(r.config_show().config_file().state() == pb::ConfigFileStatus::MISSING);
}

TEST_CASE("handlers at the ControlTarget seam: the tap they install feeds devices") {
  World w;
  std::promise<bool> fed;
  asio::post(w.ioc, [&] {
    if (!w.target->tap) {
      fed.set_value(false);
      return;
    }
    pb::Reading reading;
    reading.set_sensor_id("meter-1");
    reading.mutable_observed_at()->set_seconds(1'700'000'100);
    const std::string bytes = reading.SerializeAsString();
    w.target->tap(reading, bytes);
    fed.set_value(true);
  });
  REQUIRE(fed.get_future().get());
  pb::ControlRequest req;
  req.mutable_devices()->set_device_id("meter-1");
  pb::ControlResponse r;
  REQUIRE(w.ask(req, r));
  REQUIRE(r.has_devices());
  REQUIRE(r.devices().devices_size() == 1);
  const auto& d = r.devices().devices(0);
  CHECK(d.id() == "meter-1");
  CHECK(d.kind() == "modbus");
  CHECK(d.bus() == "bus1");
  CHECK(d.last_reading().sensor_id() == "meter-1");
  CHECK(d.last_reading().observed_at().seconds() == 1'700'000'100);
}

TEST_CASE("handlers at the ControlTarget seam: lora heard without LoRa answers an empty table, no bind") {
  World w;
  pb::ControlRequest req;
  req.mutable_lora_heard();
  pb::ControlResponse r;
  REQUIRE(w.ask(req, r));
  REQUIRE(r.has_lora_heard());
  CHECK_FALSE(r.has_error());
  CHECK(r.lora_heard().bind().empty());
  CHECK(r.lora_heard().heard_size() == 0);
}

TEST_CASE("handlers at the ControlTarget seam: device retry of an unknown device, mqtt reconnect without a session") {
  World w;
  pb::ControlRequest req;
  req.mutable_device_retry()->set_device_id("nope");
  pb::ControlResponse r;
  REQUIRE(w.ask(req, r));
  CHECK(r.error().code() == pb::ControlError::NOT_FOUND);
  CHECK(r.error().message().find("nope") != std::string::npos);
  req.mutable_device_retry()->set_device_id("");
  REQUIRE(w.ask(req, r));
  CHECK(r.error().code() == pb::ControlError::BAD_REQUEST);  // validated before the handlers
  pb::ControlRequest m;
  m.mutable_mqtt_reconnect();
  REQUIRE(w.ask(m, r));
  CHECK(r.error().code() == pb::ControlError::UNAVAILABLE);  // the fake daemon has no MQTT session
}
