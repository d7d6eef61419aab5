// Modbus TCP: citygate's own MBAP framing over a ByteLink (a TCP connection). libmodbus 3.1
// fails an exchange on a transaction-id mismatch and its flush runs before a late answer
// arrives, so one late answer broke every later exchange on that connection; here a stale frame
// is skipped.
//
//  * Every request carries a new transaction id (per connection, from 1).
//  * The stream is framed by the MBAP header: transaction id, protocol id (must be 0), length
//    (unit id + PDU: 2..254), unit id. A header that fails these checks means the stream is out of
//    step: the connection is closed (the next request reconnects) and the request fails with
//    BadFrame.
//  * A frame with another transaction id (a late answer to an earlier request) is skipped and
//    counted, and the wait goes on until the matching id or the deadline (Timeout). Bytes left
//    over after a timeout stay in the buffer: the late answer is skipped by the next request.
//  * The frame with the matching id must come from the unit asked, with the function asked (or
//    its exception form) and the byte count for the quantity asked, consistent with the length;
//    anything else is counted and fails the request with BadFrame (no other answer will come for
//    that id).
//
// Blocking; runs on the bus worker thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "inputs/modbus/link.hpp"
#include "inputs/modbus/transport.hpp"

namespace citygate::modbus {

constexpr std::size_t kMbapHeaderBytes = 7;  // transaction id, protocol id, length, unit id

// The MBAP request for reading `count` items at `address` from `unit` with function `function`.
std::array<std::uint8_t, 12> encodeMbapRequest(std::uint16_t transactionId, std::uint8_t unit, std::uint8_t function,
                                               std::uint16_t address, std::uint16_t count);

class MbapTransport final : public Transport {
 public:
  explicit MbapTransport(std::unique_ptr<ByteLink> link);
  ~MbapTransport() override;

  ReadError connect() override;
  void close() override;
  bool isOpen() const override;
  ReadError read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                 std::chrono::milliseconds timeout, std::span<std::uint16_t> out) override;
  ReadError write(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address,
                  std::span<const std::uint16_t> values, std::chrono::milliseconds timeout) override;
  bool canWrite() const override { return true; }
  std::vector<DiscardedFrames> takeDiscarded() override { return std::exchange(discarded_, {}); }
  std::string describe() const override;

 private:
  // Sends `frame` (transaction id `tid`) and receives until the frame with that id: frames of other
  // ids (late answers) are skipped and counted, a header out of step closes the link. `check`
  // judges the answer (the whole MBAP frame); its verdict is the transaction's. Defined in mbap.cpp,
  // its only user.
  template <typename Check>
  ReadError transact(std::uint8_t unit, std::uint16_t tid, std::span<const std::uint8_t> frame,
                     std::chrono::milliseconds timeout, Check&& check);
  ReadError open(ByteLink::Clock::time_point until);

  std::unique_ptr<ByteLink> link_;
  std::uint16_t transactionId_ = 0;
  std::vector<std::uint8_t> rx_;  // kept between requests: a late answer may be half received
  std::vector<DiscardedFrames> discarded_;
};

}  // namespace citygate::modbus
