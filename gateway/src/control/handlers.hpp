// The control socket's commands (contract section 4), served from the running daemon through
// ControlTarget (control_target.hpp; app::Gateway implements it) on the executor. The generic
// commands see sources only through sources::Source (devices and health of every kind); the
// commands of one kind (`modbus read/scan`: modbus_handlers.cpp) find their source by kind and
// name and cast it to that kind's class. Nothing here blocks: Modbus reads go to the bus worker
// through BusSource::adhocRead (queued behind the polls, so the bus is not disturbed),
// configuration checks run on the Gateway's helper thread.
//
// The handlers tap the pipeline: every numbered reading updates the "latest values" kept per
// configured device (`devices`, bounded by the configuration) and goes to the `tail` streams.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "control/control_target.hpp"
#include "control/server.hpp"

namespace spdlog {
class logger;
}
namespace citygate::modbus {
class ModbusSource;
struct JobResult;
}  // namespace citygate::modbus

namespace citygate::control {

class Handlers : public RequestHandler, public std::enable_shared_from_this<Handlers> {
 public:
  static constexpr std::size_t kMaxLatestPerDevice = 64;  // readings of one observation (lanes, bays)

  Handlers(boost::asio::any_io_executor executor, std::shared_ptr<ControlTarget> gateway,
           std::shared_ptr<spdlog::logger> log);

  // Installs the pipeline tap. Call once, after Gateway::start().
  void install();
  void handle(const citygate::v1::ControlRequest& request, Reply reply) override;

  std::size_t tailers() const { return tailers_.size(); }

 private:
  struct Tailer {
    Reply reply;
    std::string device;
  };
  // The readings of a device's newest observation (one per lane or bay), kept as their wire
  // bytes: the strings keep their capacity, so a steady device costs a memcpy per reading and no
  // allocation; they are parsed only when somebody asks.
  struct Latest {
    std::int64_t seconds = 0;
    std::int32_t nanos = 0;
    std::size_t count = 0;
    std::vector<std::string> readings;
  };
  struct AdhocRead;
  struct Scan;
  // A `config diff` or `config apply` in progress.
  struct ConfigRequest {
    enum class Mode : std::uint8_t {
      Diff,    // config diff: plan only
      Apply,   // config apply --runtime-only
      Save,    // config apply --save, or of the --config file itself
      Choose,  // config apply of another file without either: checked, then refused
    };
    Mode mode = Mode::Diff;
    std::string label;            // the file's path, as sent
    std::size_t secretsKept = 0;  // "<redacted>" values replaced by the running secrets
  };

  void status(Reply reply);
  void devices(const std::string& id, Reply reply);
  void tail(const std::string& id, Reply reply);
  void configShow(Reply reply);
  void configChange(const citygate::v1::ControlRequest& request, Reply reply);
  void onConfigChecked(const ConfigRequest& req, const std::string& runningText, const std::string& runningPath,
                       ApplyOutcome o, Reply reply);
  void modbusRead(const citygate::v1::ModbusReadRequest& request, Reply reply);
  void modbusScan(const citygate::v1::ModbusScanRequest& request, Reply reply);
  void loraDevices(Reply reply);
  void loraHeard(Reply reply);                                 // lora_handlers.cpp
  void loraDevStatus(const std::string& device, Reply reply);  // lora_handlers.cpp
  void spool(Reply reply);
  void logLevel(const citygate::v1::LogLevelRequest& request, Reply reply);
  void deviceRetry(const std::string& id, Reply reply);  // modbus_handlers.cpp
  void mqttReconnect(Reply reply);
  void modbusWrite(const citygate::v1::ModbusWriteRequest& request, Reply reply);  // modbus_handlers.cpp

  void onReading(const citygate::v1::Reading& reading, std::string_view bytes);
  void onReadDone(const std::shared_ptr<AdhocRead>& read, modbus::JobResult&& result);
  void onReadTimeout(const std::shared_ptr<AdhocRead>& read, const boost::system::error_code& ec);
  void scanNext(const std::shared_ptr<Scan>& scan);
  void onScanRetry(const std::shared_ptr<Scan>& scan, const boost::system::error_code& ec);
  void onScanDone(const std::shared_ptr<Scan>& scan, std::uint64_t step, modbus::JobResult&& result);
  void onScanTimeout(const std::shared_ptr<Scan>& scan, std::uint64_t step, const boost::system::error_code& ec);
  void scanStep(const std::shared_ptr<Scan>& scan, bool answered, std::string detail, std::uint32_t rttUs);

  // DeviceInfo for every configured device (`withLatest`: and its latest readings).
  std::vector<citygate::v1::DeviceInfo> deviceInfos(bool withLatest, const citygate::v1::GatewayHealth& health);
  std::shared_ptr<modbus::ModbusSource> findBus(const std::string& name, Reply& reply);
  bool knownDevice(const std::string& id);
  std::string unknownDevice(const std::string& id);  // the NOT_FOUND message, with a suggestion
  void refreshKnown();

  boost::asio::any_io_executor executor_;
  std::shared_ptr<ControlTarget> gateway_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<Tailer> tailers_;
  std::map<std::string, Latest> latest_;
  std::set<std::string> known_;  // device ids of the running configuration
  std::uint64_t knownGeneration_ = 0;
};

}  // namespace citygate::control
