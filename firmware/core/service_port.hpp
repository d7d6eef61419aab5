// The service UART of every node (firmware/README.md "Service UART"): a technician's laptop runs
// `citygatectl node show|provision --port TTY` against it. Requests:
//
//   SHOW       ->  0x81: state u8 (0 none, 1 a record, 2 a record this firmware cannot read),
//                  generation u32 LE, then the NodeProvisioning without its keys (keys_set
//                  instead); with no record, a NodeProvisioning with only `kind`
//   PROVISION  ->  0x82: generation u32 LE of the record written; the payload is a whole
//                  NodeProvisioning, checked against the node's rules (provisioning.hpp)
//   RESET      ->  0x83 (empty), then the node resets
//   COUNTERS   ->  0x84: count u8, then count u32 LE: frames refused by Reason (index = code)
//
// and ERROR 0xFF for anything refused: reason u8, then a text for people (UTF-8, no terminator).
// A refused frame or request changes nothing but its counter.
//
// A PROVISION takes effect when the node resets: poll() returns Action::Reset after a record was
// written (and after RESET), once the reply is queued, and the node's main calls Board::reset().
// The node therefore always runs the record that SHOW reads back.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"
#include "core/provisioning.hpp"
#include "core/record_store.hpp"
#include "core/service_frame.hpp"

namespace citygate::fw {

class ServicePort {
 public:
  // The node's service baud (8N1): what citygatectl opens the port with.
  static constexpr uint32_t kBaud = 115200;

  enum class Action : uint8_t { None, Reset };

  ServicePort(hal::Uart& uart, RecordStore& store, NodeKind kind) : uart_(uart), store_(store), kind_(kind) {}

  // Reads what the UART has (at most kReadBudget bytes a call: bounded), answers every complete
  // frame, and says whether the node must now reset.
  Action poll();

  uint32_t refused(service::Reason r) const {
    return static_cast<size_t>(r) < kReasons ? counters_[static_cast<size_t>(r)] : 0;
  }
  uint32_t answered() const { return answered_; }

  static constexpr size_t kReadBudget = 512;

 private:
  static constexpr size_t kReasons = static_cast<size_t>(service::Reason::Count);

  Action handle(const service::Frame& frame);
  void reply(uint8_t type, uint8_t seq, const uint8_t* payload, size_t size);
  void refuse(uint8_t seq, service::Reason why, const char* text);
  void show(uint8_t seq);
  Action provision(const service::Frame& frame);

  hal::Uart& uart_;
  RecordStore& store_;
  NodeKind kind_;
  service::FrameParser parser_;
  uint32_t counters_[kReasons] = {};
  uint32_t answered_ = 0;
  // Scratch, static with the port (no stack-heavy frames on a small MCU stack).
  NodeProvisioning record_ = citygate_v1_NodeProvisioning_init_zero;
  uint8_t payload_[service::kMaxPayload] = {};
  uint8_t encoded_[service::kMaxEncoded] = {};
};

}  // namespace citygate::fw
