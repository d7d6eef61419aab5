# Cross build for 32-bit ARM hard-float (armv7: Raspberry Pi 2/3 on 32-bit OS, BeagleBone, i.MX6,
# ...) with Debian's cross compiler and a self-contained armhf sysroot built by mmdebstrap
# (toolchains/install-cross-deps.sh armhf). armhf is deliberately NOT a dpkg foreign architecture
# here: its bookworm-security index does not download, and a registered armhf breaks apt.
#
#   cmake --preset armhf        (or: toolchains/cross-build.sh armhf [--test])
#
# CITYGATE_ARMHF_SYSROOT (cache or environment) overrides the sysroot path.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)

if(NOT CITYGATE_ARMHF_SYSROOT)
  if(DEFINED ENV{CITYGATE_ARMHF_SYSROOT})
    set(CITYGATE_ARMHF_SYSROOT "$ENV{CITYGATE_ARMHF_SYSROOT}")
  else()
    get_filename_component(CITYGATE_ARMHF_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build/sysroot-armhf" ABSOLUTE)
  endif()
endif()
set(CITYGATE_ARMHF_SYSROOT "${CITYGATE_ARMHF_SYSROOT}" CACHE PATH "armhf sysroot (mmdebstrap)")
# try_compile projects re-read this file; hand the sysroot on to them.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CITYGATE_ARMHF_SYSROOT)
if(NOT EXISTS "${CITYGATE_ARMHF_SYSROOT}/usr/lib/arm-linux-gnueabihf/libc.so")
  message(FATAL_ERROR "No armhf sysroot at ${CITYGATE_ARMHF_SYSROOT}: run toolchains/install-cross-deps.sh armhf")
endif()

set(CMAKE_SYSROOT "${CITYGATE_ARMHF_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${CITYGATE_ARMHF_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_AR /usr/bin/arm-linux-gnueabihf-gcc-ar CACHE FILEPATH "")
set(CMAKE_RANLIB /usr/bin/arm-linux-gnueabihf-gcc-ranlib CACHE FILEPATH "")
set(CMAKE_C_COMPILER_AR /usr/bin/arm-linux-gnueabihf-gcc-ar CACHE FILEPATH "")
set(CMAKE_CXX_COMPILER_AR /usr/bin/arm-linux-gnueabihf-gcc-ar CACHE FILEPATH "")
set(CMAKE_C_COMPILER_RANLIB /usr/bin/arm-linux-gnueabihf-gcc-ranlib CACHE FILEPATH "")
set(CMAKE_CXX_COMPILER_RANLIB /usr/bin/arm-linux-gnueabihf-gcc-ranlib CACHE FILEPATH "")
set(CMAKE_STRIP /usr/bin/arm-linux-gnueabihf-strip CACHE FILEPATH "")
set(CMAKE_OBJCOPY /usr/bin/arm-linux-gnueabihf-objcopy CACHE FILEPATH "")

# GCC's notes about the ARM32 parameter-passing ABI change (GCC 7.1) flood the build.
# CitygateCompiler.cmake adds this too; here it also reaches try_compile checks.
# _FILE_OFFSET_BITS=64: 64-bit off_t/ino_t and readdir64. Without it, readdir() fails with
# EOVERFLOW on directories whose entries carry 64-bit offsets (ext4 hash cookies, large inode
# numbers on XFS/NFS): seen as profile_dir coming back empty under qemu-arm on a 64-bit host.
# None of the libraries' interfaces that citygate uses carry off_t, so mixing is safe (Debian's
# armhf moves to 64-bit off_t and time_t wholesale in trixie).
set(CMAKE_C_FLAGS_INIT "-D_FILE_OFFSET_BITS=64")
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi -D_FILE_OFFSET_BITS=64")

# The host pkg-config, pointed into the sysroot only.
set(PKG_CONFIG_EXECUTABLE /usr/bin/pkg-config CACHE FILEPATH "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${CITYGATE_ARMHF_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR} "${CITYGATE_ARMHF_SYSROOT}/usr/lib/arm-linux-gnueabihf/pkgconfig:${CITYGATE_ARMHF_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# -L is right here: the loader and libc both come from the sysroot.
set(CMAKE_CROSSCOMPILING_EMULATOR "/usr/bin/qemu-arm-static;-L;${CITYGATE_ARMHF_SYSROOT}")
