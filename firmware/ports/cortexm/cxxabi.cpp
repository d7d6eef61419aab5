// The C++ ABI symbols the compiler emits for the node core's C++ (no exceptions, no RTTI, no
// heap), so that no libstdc++ is linked (toolchains/arm-none-eabi.cmake says why).
#include <stddef.h>

extern "C" [[noreturn]] void citygate_cortexm_fault();

extern "C" {
// A pure virtual called through a half-built object: a bug, reported as a fault.
[[noreturn]] void __cxa_pure_virtual() {
  citygate_cortexm_fault();
}
// Static destructors: a node never returns from main(), so none is registered (and no RAM is
// spent on the list).
int __cxa_atexit(void (*)(void*), void*, void*) {
  return 0;
}
void* __dso_handle = nullptr;
}

// A class with a virtual destructor gets a deleting destructor that names operator delete even
// when nothing is ever allocated; nothing is, so it is never called.
void operator delete(void*) noexcept {
  citygate_cortexm_fault();
}
void operator delete(void*, size_t) noexcept {
  citygate_cortexm_fault();
}
