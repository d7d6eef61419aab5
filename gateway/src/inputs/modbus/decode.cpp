#include "inputs/modbus/decode.hpp"

#include "core/utf8.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

namespace citygate::modbus {

namespace {
// A FLOAT32 register pair holds a float: its value as a double is the shortest decimal that reads
// back as the same float (28.4f -> 28.4, not 28.399999618530273: float noise in a platform's JSON).
double floatAsDecimal(float f) {
  if (!std::isfinite(f)) return static_cast<double>(f);
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, f).ptr;
  double d = 0;
  std::from_chars(buf, end, d);
  return d;
}
}  // namespace

std::uint32_t registerCount(pb::DataType type, std::uint32_t stringRegisters) {
  switch (type) {
    case pb::BOOL:
    case pb::INT16:
    case pb::UINT16:
      return 1;
    case pb::INT32:
    case pb::UINT32:
    case pb::FLOAT32:
      return 2;
    case pb::INT64:
    case pb::UINT64:
    case pb::FLOAT64:
      return 4;
    case pb::STRING:
      return stringRegisters;
    default:
      return 0;
  }
}

namespace {

std::uint16_t swapBytes(std::uint16_t r) {
  return static_cast<std::uint16_t>((r << 8) | (r >> 8));
}

bool wordsReversed(pb::WordOrder o) {
  return o == pb::CDAB || o == pb::DCBA;
}
bool bytesSwapped(pb::WordOrder o) {
  return o == pb::BADC || o == pb::DCBA;
}

}  // namespace

namespace {

// assemble() for a count known at compile time (the hot path: one call per numeric point), with
// the word order's two questions asked once.
template <std::size_t N>
std::uint64_t assembleN(const std::uint16_t* regs, pb::WordOrder order) {
  const bool reversed = wordsReversed(order);
  const bool swapped = bytesSwapped(order);
  std::uint64_t v = 0;
  if (!reversed && !swapped) {  // ABCD, the Modbus default
    for (std::size_t i = 0; i < N; ++i) v = (v << 16) | regs[i];
    return v;
  }
  for (std::size_t i = 0; i < N; ++i) {
    std::uint16_t r = regs[reversed ? N - 1 - i : i];
    if (swapped) r = swapBytes(r);
    v = (v << 16) | r;
  }
  return v;
}

}  // namespace

std::uint64_t assemble(std::span<const std::uint16_t> regs, pb::WordOrder order) {
  const std::size_t n = regs.size();
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t r = regs[wordsReversed(order) ? n - 1 - i : i];
    if (bytesSwapped(order)) r = swapBytes(r);
    v = (v << 16) | r;
  }
  return v;
}

std::optional<double> decodeNumber(pb::DataType type, pb::WordOrder order, std::span<const std::uint16_t> regs) {
  // One switch: the type gives the register count and the conversion (same results as
  // registerCount() and assemble() over the first registerCount(type) registers).
  const std::uint16_t* r = regs.data();
  const std::size_t have = regs.size();
  switch (type) {
    case pb::INT16:
      if (have < 1) return std::nullopt;
      return static_cast<double>(static_cast<std::int16_t>(assembleN<1>(r, order)));
    case pb::UINT16:
      if (have < 1) return std::nullopt;
      return static_cast<double>(static_cast<std::uint16_t>(assembleN<1>(r, order)));
    case pb::INT32:
      if (have < 2) return std::nullopt;
      return static_cast<double>(static_cast<std::int32_t>(static_cast<std::uint32_t>(assembleN<2>(r, order))));
    case pb::UINT32:
      if (have < 2) return std::nullopt;
      return static_cast<double>(static_cast<std::uint32_t>(assembleN<2>(r, order)));
    case pb::FLOAT32:
      if (have < 2) return std::nullopt;
      return floatAsDecimal(std::bit_cast<float>(static_cast<std::uint32_t>(assembleN<2>(r, order))));
    case pb::INT64:
      if (have < 4) return std::nullopt;
      return static_cast<double>(static_cast<std::int64_t>(assembleN<4>(r, order)));
    case pb::UINT64:
      if (have < 4) return std::nullopt;
      return static_cast<double>(assembleN<4>(r, order));
    case pb::FLOAT64:
      if (have < 4) return std::nullopt;
      return std::bit_cast<double>(assembleN<4>(r, order));
    default:
      return std::nullopt;  // BOOL, STRING and unknown types are not numbers
  }
}

bool isNotAvailable(pb::DataType type, pb::WordOrder order, std::span<const std::uint16_t> regs) {
  bool isSigned = false;
  switch (type) {
    case pb::INT16:
    case pb::INT32:
    case pb::INT64:
      isSigned = true;
      break;
    case pb::UINT16:
    case pb::UINT32:
    case pb::UINT64:
      break;
    default:
      return false;
  }
  const std::uint32_t n = registerCount(type);
  if (regs.size() < n) return false;
  const std::uint32_t bits = 16 * n;
  const std::uint64_t v = assemble(regs.first(n), order);
  const std::uint64_t ones = bits == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
  return v == (isSigned ? std::uint64_t{1} << (bits - 1) : ones);
}

std::string decodeString(pb::WordOrder order, std::span<const std::uint16_t> regs) {
  std::string s;
  s.reserve(regs.size() * 2);
  for (std::uint16_t r : regs) {
    if (bytesSwapped(order)) r = swapBytes(r);
    for (char c : {static_cast<char>(r >> 8), static_cast<char>(r & 0xFF)}) {
      if (c == '\0') goto done;
      s.push_back(c);
    }
  }
done:
  while (!s.empty() && s.back() == ' ') s.pop_back();
  // A device's bytes are not always UTF-8 (Latin-1 names, noise): a protobuf string must be, or the
  // platform cannot parse the whole batch. Each byte that does not start a valid sequence becomes
  // U+FFFD.
  for (std::size_t at = core::firstInvalidUtf8(s); at != std::string::npos;) {
    s.replace(at, 1, "\xEF\xBF\xBD");
    const std::size_t next = core::firstInvalidUtf8(std::string_view(s).substr(at + 3));
    at = next == std::string::npos ? next : at + 3 + next;
  }
  return s;
}

void encode32(std::uint32_t v, pb::WordOrder order, std::uint16_t out[2]) {
  std::uint16_t w[2] = {static_cast<std::uint16_t>(v >> 16), static_cast<std::uint16_t>(v)};
  for (int i = 0; i < 2; ++i) {
    std::uint16_t r = w[wordsReversed(order) ? 1 - i : i];
    out[i] = bytesSwapped(order) ? swapBytes(r) : r;
  }
}

void encode64(std::uint64_t v, pb::WordOrder order, std::uint16_t out[4]) {
  std::uint16_t w[4];
  for (int i = 0; i < 4; ++i) w[i] = static_cast<std::uint16_t>(v >> (48 - 16 * i));
  for (int i = 0; i < 4; ++i) {
    std::uint16_t r = w[wordsReversed(order) ? 3 - i : i];
    out[i] = bytesSwapped(order) ? swapBytes(r) : r;
  }
}

const char* orderName(pb::WordOrder order) {
  switch (order) {
    case pb::CDAB:
      return "CDAB";
    case pb::BADC:
      return "BADC";
    case pb::DCBA:
      return "DCBA";
    default:
      return "ABCD";
  }
}

}  // namespace citygate::modbus
