#include "core/spool.hpp"

namespace citygate::core {

void appendBatchRecord(std::string& out, std::string_view record) {
  out.push_back(static_cast<char>((3 << 3) | 2));  // field 3, wire type 2
  std::uint64_t len = record.size();
  while (len >= 0x80) {
    out.push_back(static_cast<char>((len & 0x7F) | 0x80));
    len >>= 7;
  }
  out.push_back(static_cast<char>(len));
  out.append(record);
}

}  // namespace citygate::core
