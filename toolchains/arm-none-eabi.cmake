# The sensor-node firmware for a Cortex-M3 (firmware/README.md, "Ports"): Debian's
# gcc-arm-none-eabi and libnewlib-arm-none-eabi (newlib-nano), run under qemu-system-arm's
# mps2-an385 (toolchains/install-deps.sh firmware installs all three).
#
#   cmake --preset firmware-cortexm && cmake --build --preset firmware-cortexm
#   ctest --preset firmware-cortexm
#
# Only firmware/ and the schema's freestanding check build here (CITYGATE_GATEWAY=OFF).
#
# No libstdc++: Debian's libstdc++-arm-none-eabi-newlib is not installed (1.57 GB) and not
# needed. The node core is C++17 with C headers only, no exceptions, no RTTI, no heap; the few
# ABI symbols the compiler emits for such code (__cxa_pure_virtual, the sized operator delete of a
# deleting destructor, __cxa_atexit for static destructors) are defined by the port
# (firmware/ports/cortexm/cxxabi.cpp). g++ 12 as a link driver always adds -lstdc++ (no
# -nostdlib++ before GCC 13), so executables are linked by the C driver, arm-none-eabi-gcc
# (citygate_cortexm_executable sets LINKER_LANGUAGE C): libc_nano, libm and libgcc, nothing else.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar CACHE FILEPATH "")
set(CMAKE_RANLIB arm-none-eabi-ranlib CACHE FILEPATH "")
set(CMAKE_OBJCOPY arm-none-eabi-objcopy CACHE FILEPATH "")
set(CITYGATE_SIZE arm-none-eabi-size CACHE FILEPATH "arm-none-eabi-size, printed after each link")
set(CITYGATE_QEMU qemu-system-arm CACHE FILEPATH "qemu-system-arm, for the tests")
# No hosted program can be linked for the part: the compiler checks build a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# Cortex-M3, Thumb-2, no FPU (mps2-an385). Every function and object in its own section so that
# --gc-sections drops what no one calls.
set(cpu "-mcpu=cortex-m3 -mthumb")
set(CMAKE_C_FLAGS_INIT "${cpu} -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT
    "${cpu} -ffunction-sections -fdata-sections -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-unwind-tables")
set(CMAKE_ASM_FLAGS_INIT "${cpu}")
# newlib-nano, our own start-up (no crt0), unused sections dropped, a map file per ELF
# (citygate_cortexm_executable).
set(CMAKE_EXE_LINKER_FLAGS_INIT "${cpu} -specs=nano.specs -nostartfiles -Wl,--gc-sections -Wl,--no-warn-rwx-segments")
# -Os, and debug info (it takes no flash).
set(CMAKE_C_FLAGS_MINSIZEREL_INIT "-Os -g -DNDEBUG")
set(CMAKE_CXX_FLAGS_MINSIZEREL_INIT "-Os -g -DNDEBUG")

# Programs (protoc, qemu) come from the host; nothing else is searched there.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
