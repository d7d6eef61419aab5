# Cross build for 64-bit ARM (Raspberry Pi 4/5, i.MX8, ...) with Debian's cross compiler and the
# :arm64 multiarch -dev packages (toolchains/install-cross-deps.sh aarch64 installs both).
#
#   cmake --preset aarch64      (or: toolchains/cross-build.sh aarch64 [--test])
#
# The host protoc generates the code; the tests run through qemu-user, called explicitly so that
# neither binfmt_misc nor a -L prefix is needed (with multiarch libc6:arm64 installed, `-L
# /usr/aarch64-linux-gnu` mixes two loaders and threaded programs hang).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# LTO needs the cross wrappers, not the host's ar/ranlib.
set(CMAKE_AR /usr/bin/aarch64-linux-gnu-gcc-ar CACHE FILEPATH "")
set(CMAKE_RANLIB /usr/bin/aarch64-linux-gnu-gcc-ranlib CACHE FILEPATH "")
set(CMAKE_C_COMPILER_AR /usr/bin/aarch64-linux-gnu-gcc-ar CACHE FILEPATH "")
set(CMAKE_CXX_COMPILER_AR /usr/bin/aarch64-linux-gnu-gcc-ar CACHE FILEPATH "")
set(CMAKE_C_COMPILER_RANLIB /usr/bin/aarch64-linux-gnu-gcc-ranlib CACHE FILEPATH "")
set(CMAKE_CXX_COMPILER_RANLIB /usr/bin/aarch64-linux-gnu-gcc-ranlib CACHE FILEPATH "")
set(CMAKE_STRIP /usr/bin/aarch64-linux-gnu-strip CACHE FILEPATH "")
set(CMAKE_OBJCOPY /usr/bin/aarch64-linux-gnu-objcopy CACHE FILEPATH "")

# Multiarch: the target's libraries live in /usr/lib/aarch64-linux-gnu of this very system.
# Programs (protoc) come from the host; libraries and headers are searched as usual, and
# CMAKE_LIBRARY_ARCHITECTURE keeps the search inside the aarch64 directories.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)

# Without the arch-prefixed pkg-config, libmodbus and OpenSSL resolve to the x86_64 libraries and
# the link fails with "file in wrong format".
set(PKG_CONFIG_EXECUTABLE /usr/bin/aarch64-linux-gnu-pkg-config CACHE FILEPATH "")

# doctest_discover_tests runs the test binaries during the build; ctest runs them too.
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/qemu-aarch64-static)
