#include <doctest/doctest.h>

#include "spool/memory_spool.hpp"
#include "spool/spool_contract.hpp"

namespace {
struct MemoryFactory {
  static constexpr bool kDurable = false;
  static void reset() {}
  static std::unique_ptr<citygate::spool::Spool> restart(std::unique_ptr<citygate::spool::Spool>,
                                                         std::uint64_t maxBytes, citygate::v1::SpoolConfig::WhenFull w,
                                                         bool) {
    return make(maxBytes, w);
  }
  static std::unique_ptr<citygate::spool::Spool> make(std::uint64_t maxBytes, citygate::v1::SpoolConfig::WhenFull w) {
    return std::make_unique<citygate::spool::MemorySpool>(maxBytes, w);
  }
  static void settle(citygate::spool::Spool&) {}
  static std::uint64_t slack() { return 0; }
};
}  // namespace

CITYGATE_SPOOL_CONTRACT(MemoryFactory)
