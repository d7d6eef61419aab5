// Arm semihosting (the debugger's, here qemu's, services through `bkpt 0xAB`): the Cortex-M
// port's console for the test runner, its command line, and its exit status. qemu needs
// `-semihosting-config enable=on,target=native`; on a part without a debugger attached a
// semihosting call is a HardFault, so only the test runner and fault reports use it.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace citygate::fw::cortexm::semihosting {

void write0(const char* text);  // SYS_WRITE0: a NUL-terminated string to the host's console
// SYS_GET_CMDLINE: qemu's "-kernel FILE -append ARGS" gives "FILE ARGS"; the text after the
// first word, or nullptr (no arguments, or no semihosting).
const char* arguments(char* buffer, size_t capacity);
// SYS_EXIT_EXTENDED with ADP_Stopped_ApplicationExit and status: qemu exits with status & 0xFF.
[[noreturn]] void exit(int status);

}  // namespace citygate::fw::cortexm::semihosting
