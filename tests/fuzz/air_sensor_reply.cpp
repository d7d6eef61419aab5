// The air node's sensor drivers (firmware/nodes/air/sensors.hpp) on replies made of any bytes: the
// input is the I2C bus's answers in order (each read takes the next bytes; a read past the end is
// a NACK). A reply the drivers take must give values the citygate-air format carries (never its
// fault value, never out of the sensor's range); a refused one must leave the values untouched.
#include <cstdint>
#include <cstring>

#include "citygate/v1/node_format.hpp"
#include "nodes/air/sensors.hpp"

namespace {

namespace air = citygate::fw::air;
namespace hal = citygate::fw::hal;

class ReplayBus final : public hal::I2c {
 public:
  ReplayBus(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  Result write(std::uint8_t, const std::uint8_t*, std::size_t) override { return Result::Ok; }
  Result read(std::uint8_t, std::uint8_t* out, std::size_t n) override {
    if (size_ - pos_ < n) return Result::Nack;
    std::memcpy(out, data_ + pos_, n);
    pos_ += n;
    return Result::Ok;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace nf = citygate::node_format;
  ReplayBus bus(data, size);
  air::Sps30 sps(bus);
  air::Sht3x sht(bus);
  for (int round = 0; round < 4; ++round) {
    air::Sps30::Values pm;
    pm.pm1 = pm.pm25 = pm.pm4 = pm.pm10 = -7;
    if (sps.read(pm) == air::SensorStatus::Ok) {
      const auto& f = nf::air::layout(nf::air::Field::Pm1);
      const std::int32_t values[] = {pm.pm1, pm.pm25, pm.pm4, pm.pm10};
      for (std::int32_t v : values) {
        if (v < nf::minRaw(f) || v > nf::maxRaw(f)) __builtin_trap();
      }
    } else if (pm.pm1 != -7 || pm.pm25 != -7 || pm.pm4 != -7 || pm.pm10 != -7) {
      __builtin_trap();
    }
    air::Sht3x::Values th;
    th.temperature = th.humidity = -99999;
    if (sht.fetch(th) == air::SensorStatus::Ok) {
      if (th.temperature < -4500 || th.temperature > 13000 || th.humidity < 0 || th.humidity > 10000) __builtin_trap();
    } else if (th.temperature != -99999 || th.humidity != -99999) {
      __builtin_trap();
    }
  }
  return 0;
}
