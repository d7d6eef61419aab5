// Arm semihosting on M-profile (semihosting.hpp): r0 = operation, r1 = argument, `bkpt 0xAB`.
#include "ports/cortexm/semihosting.hpp"

namespace citygate::fw::cortexm::semihosting {
namespace {

constexpr uint32_t kSysWrite0 = 0x04;
constexpr uint32_t kSysGetCmdline = 0x15;
constexpr uint32_t kSysExitExtended = 0x20;
constexpr uint32_t kAdpStoppedApplicationExit = 0x20026;

uint32_t call(uint32_t operation, const void* argument) {
  register uint32_t r0 asm("r0") = operation;
  register const void* r1 asm("r1") = argument;
  asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

}  // namespace

void write0(const char* text) {
  call(kSysWrite0, text);
}

const char* arguments(char* buffer, size_t capacity) {
  struct {
    char* buffer;
    uint32_t size;
  } block{buffer, static_cast<uint32_t>(capacity)};
  if (capacity == 0 || call(kSysGetCmdline, &block) != 0) return nullptr;
  buffer[capacity - 1] = '\0';
  char* p = buffer;
  while (*p != '\0' && *p != ' ') ++p;  // the kernel's file name
  while (*p == ' ') ++p;
  return *p == '\0' ? nullptr : p;
}

void exit(int status) {
  // The A32/T32 SYS_EXIT carries no status; SYS_EXIT_EXTENDED (semihosting 2.0) does.
  const uint32_t block[2] = {kAdpStoppedApplicationExit, static_cast<uint32_t>(status)};
  for (;;) call(kSysExitExtended, block);
}

}  // namespace citygate::fw::cortexm::semihosting

// For startup.c: main()'s status ends the run; an exception nobody handles is reported.
extern "C" [[noreturn]] void citygate_cortexm_exit(int status) {
  citygate::fw::cortexm::semihosting::exit(status < 0 ? 255 : status > 255 ? 255 : status);
}

extern "C" [[noreturn]] void citygate_cortexm_fault() {
  uint32_t ipsr;
  asm volatile("mrs %0, ipsr" : "=r"(ipsr));
  char text[] = "fault: unhandled exception 00\n";
  text[27] = static_cast<char>('0' + (ipsr & 0x1FF) / 10 % 10);
  text[28] = static_cast<char>('0' + (ipsr & 0x1FF) % 10);
  citygate::fw::cortexm::semihosting::write0(text);
  citygate::fw::cortexm::semihosting::exit(254);
}

// newlib's exit() and abort() end in _exit(): the same end as main()'s return (a library that
// names exit(), even in code the program never calls, links against this).
extern "C" [[noreturn]] void _exit(int status) {
  citygate_cortexm_exit(status);
}
