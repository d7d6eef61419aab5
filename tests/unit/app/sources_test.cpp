// A third kind of source, added the way a new kind is: a SourceKind registered in a
// sources::SourceRegistry (as app/sources.cpp registers Modbus and LoRa), nothing else. Through
// that registry the configuration check validates it (and reports a bad one as FILE:LINE:COL),
// the real app::Gateway makes and starts it, the real control handlers list its devices for
// `citygatectl devices` (the same DevicesRequest over the control socket), Gateway::stop stops
// it, and a configuration change swaps its sources (unchanged kept, changed and added started
// after the old ones stopped, a failed start rolled back).
//
// What this does not prove: a real kind would also add its message to config.proto (here the
// fake kind's settings are a small text the test hands to the kind, so the shipped schema has no
// test-only field), and its own handler for ad-hoc requests if it has any.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "app/gateway.hpp"
#include "app/validate.hpp"
#include "control/handlers.hpp"
#include "control/server.hpp"
#include "inputs/lora/kind.hpp"
#include "inputs/modbus/kind.hpp"
#include "platform/logging.hpp"

using namespace citygate;
namespace pb = citygate::v1;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// What the fake sources did, in order (read from the test thread).
struct Events {
  std::mutex mutex;
  std::vector<std::string> list;
  void add(std::string e) {
    std::lock_guard lock(mutex);
    list.push_back(std::move(e));
  }
  std::vector<std::string> get() {
    std::lock_guard lock(mutex);
    return list;
  }
};

struct MeterSpec : sources::SourceSpec {
  std::vector<std::string> ids;
};

class FakeMeter final : public sources::Source {
 public:
  FakeMeter(std::shared_ptr<const MeterSpec> spec, asio::any_io_executor executor, std::shared_ptr<Events> events)
      : spec_(std::move(spec)), executor_(std::move(executor)), events_(std::move(events)) {}

  const sources::SourceSpec& spec() const override { return *spec_; }
  Status start() override {
    // A device named "busy-port" stands for a port another process took meanwhile.
    if (std::find(spec_->ids.begin(), spec_->ids.end(), "busy-port") != spec_->ids.end()) {
      events_->add("refuse " + spec_->name);
      return Error{"meter '" + spec_->name + "': port taken"};
    }
    events_->add("start " + spec_->name);
    return Ok{};
  }
  void stop(std::function<void()> done) override {
    events_->add("stop " + spec_->name);
    asio::post(executor_, std::move(done));
  }
  void fillHealth(pb::GatewayHealth& health) const override {
    for (const auto& id : spec_->ids) {
      auto* d = health.add_devices();
      d->set_sensor_id(id);
      d->set_state(pb::OK);
      d->set_polls_ok(7);
    }
    (*health.mutable_counters())["meter_sources"] += 1;
  }

 private:
  std::shared_ptr<const MeterSpec> spec_;
  asio::any_io_executor executor_;
  std::shared_ptr<Events> events_;
};

// Settings, one source a line: "meter NAME ID..." (as a real kind would read its own message of
// the configuration). A device id must be lower-case letters, digits and '-'.
class MeterKind final : public sources::SourceKind {
 public:
  MeterKind(std::string settings, std::shared_ptr<Events> events)
      : settings_(std::make_shared<std::string>(std::move(settings))), events_(std::move(events)) {}
  // What the next validation reads (the test changes it between configuration changes, while no
  // check runs).
  std::shared_ptr<std::string> settings() const { return settings_; }

  std::string_view name() const override { return "meter"; }

  void validate(const config::LoadedConfig&, config::Diagnostics& diags, sources::SpecList& out) const override {
    std::istringstream lines(*settings_);
    std::string line;
    for (int n = 1; std::getline(lines, line); ++n) {
      std::istringstream words(line);
      std::string word;
      std::string name;
      words >> word >> name;
      auto spec = std::make_shared<MeterSpec>();
      spec->kind = "meter";
      spec->name = name;
      while (words >> word) {
        const bool ok = std::all_of(word.begin(), word.end(), [](char c) {
          return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-';
        });
        if (!ok) {
          diags.add("meters.conf", n, static_cast<int>(line.find(word)) + 1,
                    "meter device id '" + word + "' may hold only a-z, 0-9 and '-'");
          continue;
        }
        spec->ids.push_back(word);
        pb::DeviceInfo d;
        d.set_id(word);
        d.set_kind("meter");
        d.set_transport("fake " + name);
        spec->devices.push_back(std::move(d));
      }
      out.push_back(std::move(spec));
    }
  }
  bool unchanged(const sources::SourceSpec& a, const sources::SourceSpec& b) const override {
    return static_cast<const MeterSpec&>(a).ids == static_cast<const MeterSpec&>(b).ids;
  }
  void namedFiles(const config::LoadedConfig&, std::vector<std::string>&) const override {}
  std::string checkPorts(const sources::SourceSpec&, const sources::SourceSpec*,
                         const config::ReadPolicy&) const override {
    return {};
  }
  std::shared_ptr<sources::Source> make(std::shared_ptr<const sources::SourceSpec> spec,
                                        const sources::SourceContext& context) const override {
    return std::make_shared<FakeMeter>(std::static_pointer_cast<const MeterSpec>(std::move(spec)), context.executor,
                                       events_);
  }

 private:
  std::shared_ptr<std::string> settings_;
  std::shared_ptr<Events> events_;
};

// The registry of app/sources.cpp, plus the meter kind: its one registration line.
sources::SourceRegistry registryWith(std::string meterSettings, std::shared_ptr<Events> events,
                                     std::shared_ptr<std::string>* settings = nullptr) {
  sources::SourceRegistry r;
  r.add(modbus::makeSourceKind());
  r.add(lora::makeSourceKind());
  auto kind = std::make_unique<MeterKind>(std::move(meterSettings), std::move(events));
  if (settings) *settings = kind->settings();
  r.add(std::move(kind));
  return r;
}

std::string configText(const std::filesystem::path& dir) {
  // No broker listens on port 1: the session keeps trying, which this test does not need.
  return "gateway_id: \"gw\"\nmqtt { uri: \"tcp://127.0.0.1:1\" }\nstate_dir: \"" + (dir / "state").string() +
         "\"\nspool { dir: \"" + (dir / "spool").string() + "\" memory: true }\n";
}

// Sends `request` on the control socket at `path` and reads its one response.
bool ask(const std::string& path, pb::ControlRequest request, pb::ControlResponse& out) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  request.set_id(1);
  const std::string bytes = control::frameMessage(request, control::kMaxRequestBytes);
  for (std::size_t off = 0; ok && off < bytes.size();) {
    const auto n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    ok = n > 0;
    off += ok ? static_cast<std::size_t>(n) : 0;
  }
  control::FrameDecoder d(control::kMaxResponseBytes);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (ok && d.state() != control::FrameDecoder::State::Ready) {
    pollfd p{fd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    std::uint8_t b;
    ok = left.count() > 0 && ::poll(&p, 1, static_cast<int>(left.count())) > 0 && ::recv(fd, &b, 1, 0) == 1;
    if (ok) d.feed({&b, 1});
  }
  ::close(fd);
  return ok && out.ParseFromArray(d.frame().data(), static_cast<int>(d.frame().size()));
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/cg-sources-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("a new kind of source is validated through the registry: a bad one is a FILE:LINE:COL error") {
  TempDir dir;
  auto events = std::make_shared<Events>();
  const auto registry = registryWith("meter m1 ok-1\nmeter m2 Bad_Id\n", events);
  config::Diagnostics diags;
  auto cfg = app::validateText("gw.textproto", configText(dir.path), diags, config::ReadPolicy::any(), registry);
  CHECK(cfg == nullptr);
  CHECK(diags.str() == "meters.conf:2:10: meter device id 'Bad_Id' may hold only a-z, 0-9 and '-'\n");

  // Its name may not be another kind's: a Modbus bus named like a meter source.
  const auto clash = registryWith("meter a ok-1\n", events);
  const std::string bus =
      "modbus_bus { name: \"a\" tcp { host: \"127.0.0.1\" port: 1502 }\n"
      "  device { id: \"air\" unit_id: 1 profile: \"vaisala-aqt530\" } }\n";
  config::Diagnostics clashDiags;
  CHECK(app::validateText("gw.textproto", configText(dir.path) + bus, clashDiags, config::ReadPolicy::any(), clash) ==
        nullptr);
  CHECK(clashDiags.str() == "gw.textproto: a modbus source and a meter source are both named 'a'\n");
  CHECK(events->get().empty());  // validation makes no source
}

TEST_CASE("a new kind of source is started by the Gateway, listed by `devices` and stopped") {
  TempDir dir;
  auto events = std::make_shared<Events>();
  const auto registry = registryWith("meter m1 kerb-1 kerb-2\n", events);
  config::Diagnostics diags;
  auto cfg = app::validateText("gw.textproto", configText(dir.path), diags, config::ReadPolicy::any(), registry);
  INFO(diags.str());
  REQUIRE(cfg != nullptr);
  REQUIRE(cfg->sources.size() == 1);
  CHECK(cfg->sources[0]->kind == "meter");
  // The plan of a configuration change knows it by its name.
  CHECK(app::planChange(*cfg, *cfg, registry).unchanged == std::vector<std::string>{"m1"});

  platform::Logging logging(true);
  logging.setLevel("off");
  asio::io_context ioc(1);
  auto gateway = std::make_shared<app::Gateway>(ioc, logging, std::move(cfg), "test", registry);
  REQUIRE(gateway->start().ok());
  CHECK(events->get() == std::vector<std::string>{"start m1"});

  control::ServerOptions so;
  so.path = (dir.path / "control.sock").string();
  so.group = "";
  auto handlers = std::make_shared<control::Handlers>(ioc.get_executor(), gateway, logging.get("control"));
  handlers->install();
  auto server = std::make_shared<control::ControlServer>(ioc.get_executor(), gateway->clock(), so, handlers,
                                                         logging.get("control"));
  REQUIRE(server->start().ok());
  std::thread thread([&ioc] { ioc.run(); });

  pb::ControlRequest req;
  req.mutable_devices();  // `citygatectl devices`
  pb::ControlResponse r;
  const bool answered = ask(so.path, req, r);
  pb::ControlRequest spoolReq;
  spoolReq.mutable_spool();  // `citygatectl spool`: one cursor per output
  pb::ControlResponse spoolR;
  const bool spoolAnswered = ask(so.path, spoolReq, spoolR);

  std::promise<void> stopped;
  asio::post(ioc, [&] {
    server->stop();
    gateway->stop([&] { stopped.set_value(); });
  });
  const bool stoppedInTime = stopped.get_future().wait_for(10s) == std::future_status::ready;
  ioc.stop();
  thread.join();
  gateway->release();

  REQUIRE(answered);
  REQUIRE(r.has_devices());
  REQUIRE(r.devices().devices_size() == 2);
  CHECK(r.devices().devices(0).id() == "kerb-1");
  CHECK(r.devices().devices(1).id() == "kerb-2");
  CHECK(r.devices().devices(0).kind() == "meter");
  CHECK(r.devices().devices(0).transport() == "fake m1");
  CHECK(r.devices().devices(1).health().polls_ok() == 7);  // from the source's fillHealth
  REQUIRE(spoolAnswered);
  REQUIRE(spoolR.spool().spool().sinks_size() == 1);
  CHECK(spoolR.spool().spool().sinks(0).name() == "readings");
  CHECK_FALSE(spoolR.spool().spool().sinks(0).ready());  // the broker is unreachable
  CHECK(stoppedInTime);
  CHECK(events->get() == std::vector<std::string>{"start m1", "stop m1"});
}

TEST_CASE("a configuration change swaps the sources of a new kind, and rolls back when a new one cannot start") {
  TempDir dir;
  auto events = std::make_shared<Events>();
  std::shared_ptr<std::string> settings;
  const auto registry = registryWith("meter m1 a-1\nmeter m2 b-1\nmeter m9 z-1\n", events, &settings);
  config::Diagnostics diags;
  const std::string text = configText(dir.path);
  auto cfg = app::validateText("gw.textproto", text, diags, config::ReadPolicy::any(), registry);
  INFO(diags.str());
  REQUIRE(cfg != nullptr);

  platform::Logging logging(true);
  logging.setLevel("off");
  asio::io_context ioc(1);
  auto gateway = std::make_shared<app::Gateway>(ioc, logging, std::move(cfg), "test", registry);
  REQUIRE(gateway->start().ok());
  asio::steady_timer keepRunning(ioc, 1h);  // work for the executor while the test thread asks
  keepRunning.async_wait([](const boost::system::error_code&) {});
  std::thread thread([&ioc] { ioc.run(); });
  auto apply = [&](std::string meters) {
    *settings = std::move(meters);
    std::promise<control::ApplyOutcome> outcome;
    asio::post(ioc, [&] {
      gateway->applyConfig("gw.textproto", text, false, [&](control::ApplyOutcome o) { outcome.set_value(o); });
    });
    auto f = outcome.get_future();
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    return f.get();
  };
  auto devices = [&] {
    std::promise<std::vector<std::string>> ids;
    asio::post(ioc, [&] {
      std::vector<pb::DeviceInfo> listed;
      for (const auto& s : gateway->sources()) s->listDevices(listed);
      std::vector<std::string> out;
      for (const auto& d : listed) out.push_back(d.id());
      ids.set_value(out);
    });
    return ids.get_future().get();
  };
  const std::vector<std::string> started{"start m1", "start m2", "start m9"};
  CHECK(events->get() == started);

  // m1 unchanged, m2 changed, m3 added, m9 removed.
  const auto applied = apply("meter m1 a-1\nmeter m2 b-1 b-2\nmeter m3 c-1\n");
  CHECK(applied.kind == control::ApplyOutcome::Kind::Applied);
  CHECK(applied.plan.unchanged == std::vector<std::string>{"m1"});
  CHECK(applied.plan.changed == std::vector<std::string>{"m2"});
  CHECK(applied.plan.added == std::vector<std::string>{"m3"});
  CHECK(applied.plan.removed == std::vector<std::string>{"m9"});
  auto e = events->get();
  CHECK(std::vector<std::string>(e.begin() + 3, e.end()) ==
        std::vector<std::string>{"stop m2", "stop m9", "start m2", "start m3"});
  CHECK(devices() == std::vector<std::string>{"a-1", "b-1", "b-2", "c-1"});

  // The new m3 cannot start: the new m2 and m3 stop, the old m2 and m3 are made again and started.
  const auto failed = apply("meter m1 a-1\nmeter m2 b-1\nmeter m3 busy-port\n");
  CHECK(failed.kind == control::ApplyOutcome::Kind::Failed);
  CHECK(failed.message == "meter 'm3': port taken; rolled back to the running configuration");
  e = events->get();
  CHECK(std::vector<std::string>(e.begin() + 7, e.end()) == std::vector<std::string>{"stop m2", "stop m3", "start m2",
                                                                                     "refuse m3", "stop m2", "stop m3",
                                                                                     "start m2", "start m3"});
  CHECK(devices() == std::vector<std::string>{"a-1", "b-1", "b-2", "c-1"});
  CHECK(failed.generation == applied.generation);

  std::promise<void> stopped;
  asio::post(ioc, [&] { gateway->stop([&] { stopped.set_value(); }); });
  CHECK(stopped.get_future().wait_for(10s) == std::future_status::ready);
  ioc.stop();
  thread.join();
  gateway->release();
}

TEST_CASE("applyAndSave: the --config file gets the applied text and a .bak, a rolled-back apply writes nothing") {
  TempDir dir;
  auto events = std::make_shared<Events>();
  std::shared_ptr<std::string> settings;
  const auto registry = registryWith("meter m1 a-1\n", events, &settings);
  const std::string file = (dir.path / "gw.textproto").string();
  const std::string text = configText(dir.path);
  { std::ofstream(file) << text; }
  config::Diagnostics diags;
  auto cfg = app::validateFile(file, diags, registry);
  INFO(diags.str());
  REQUIRE(cfg != nullptr);

  platform::Logging logging(true);
  logging.setLevel("off");
  asio::io_context ioc(1);
  auto gateway = std::make_shared<app::Gateway>(ioc, logging, std::move(cfg), "test", registry);
  REQUIRE(gateway->start().ok());
  CHECK(gateway->configFile() == file);
  asio::steady_timer keepRunning(ioc, 1h);
  keepRunning.async_wait([](const boost::system::error_code&) {});
  std::thread thread([&ioc] { ioc.run(); });
  auto save = [&](std::string meters, const std::string& newText) {
    *settings = std::move(meters);
    std::promise<control::ApplyOutcome> outcome;
    asio::post(ioc, [&] {
      gateway->applyAndSave("/elsewhere/new.textproto", newText,
                            [&](control::ApplyOutcome o) { outcome.set_value(o); });
    });
    auto f = outcome.get_future();
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    return f.get();
  };
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  auto entries = [&] {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir.path)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  };
  const auto before = entries();

  const std::string edited = text + "# edited\n";
  const auto saved = save("meter m1 a-1 a-2\n", edited);
  CHECK(saved.kind == control::ApplyOutcome::Kind::Applied);
  CHECK(saved.saved);
  CHECK(saved.saveError.empty());
  CHECK(saved.backup == file + ".bak");
  CHECK(slurp(file) == edited);
  CHECK(slurp(file + ".bak") == text);
  CHECK((std::filesystem::status(file).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));

  // The new source cannot start: rolled back, and the prepared files are dropped.
  const auto failed = save("meter m1 busy-port\n", text + "# never saved\n");
  CHECK(failed.kind == control::ApplyOutcome::Kind::Failed);
  CHECK_FALSE(failed.saved);
  CHECK(slurp(file) == edited);
  CHECK(slurp(file + ".bak") == text);
  auto after = entries();
  CHECK(after.size() == before.size() + 1);  // the .bak, and no temporary file

  std::promise<void> stopped;
  asio::post(ioc, [&] { gateway->stop([&] { stopped.set_value(); }); });
  CHECK(stopped.get_future().wait_for(10s) == std::future_status::ready);
  ioc.stop();
  thread.join();
  gateway->release();
}

TEST_CASE(
    "checkPorts: offline every serial port, a LoRa port only when a change starts it, FILE:LINE:COL at the port") {
  TempDir dir;
  auto events = std::make_shared<Events>();
  const auto registry = registryWith("", events);
  // A UDP port in use, as a running daemon's packet forwarder would hold it.
  const int held = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(held, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  socklen_t len = sizeof sa;
  REQUIRE(::getsockname(held, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  const std::string port = std::to_string(ntohs(sa.sin_port));
  const std::string text = configText(dir.path) +
                           "modbus_bus { name: \"gone\"\n"
                           "  rtu { device: \"/dev/ttyCITYGATE-NONE\" baud: 9600 }\n"
                           "  device { id: \"x\" unit_id: 9 profile: \"vaisala-aqt530\" } }\n"
                           "lora { packet_forwarder { bind: \"127.0.0.1\" port: " +
                           port + " } }\n";
  config::Diagnostics diags;
  auto cfg = app::validateText("gw.textproto", text, diags, config::ReadPolicy::any(), registry);
  INFO(diags.str());
  REQUIRE(cfg != nullptr);

  config::Diagnostics offline;
  CHECK_FALSE(app::checkPorts(nullptr, *cfg, nullptr, config::ReadPolicy::any(), offline, registry));
  REQUIRE(offline.size() == 1);  // the serial port; the LoRa port may be the running daemon's
  CHECK(offline.items()[0].str() ==
        "gw.textproto:6:9: bus 'gone': cannot open /dev/ttyCITYGATE-NONE: No such file or directory");

  // Before a change that starts both (nothing running): both, each at its own setting.
  config::ConfigPlan plan;
  plan.added = {"gone", "lora"};
  config::Diagnostics change;
  CHECK_FALSE(app::checkPorts(nullptr, *cfg, &plan, config::ReadPolicy::any(), change, registry));
  REQUIRE(change.size() == 2);
  CHECK(change.items()[0].str() == offline.items()[0].str());  // the same words as offline
  CHECK(change.items()[1].line == 8);
  CHECK(change.items()[1].message.find("lora: 127.0.0.1:" + port + " (udp) is not available") == 0);
  ::close(held);
}
