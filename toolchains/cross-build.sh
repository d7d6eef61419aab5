#!/usr/bin/env bash
# One command per ARM target, from a clean clone: installs the cross dependencies (fast when they
# are there), configures, builds, and optionally runs the unit tests under qemu-user, the
# end-to-end smoke test, and builds the release .deb packages.
#
#   toolchains/cross-build.sh aarch64|armhf [--test] [--smoke] [--package]
#
#   (no option)  cmake --preset ARCH && cmake --build --preset ARCH       -> build/ARCH
#                (with --package alone, this development build is skipped)
#   --test       + ctest --preset ARCH (the unit tests and fuzz corpora, through qemu-user, on a fresh-boot clock)
#   --smoke      + tests/integration/test_cross_smoke.py (aarch64 only: the aarch64 citygated under
#                  qemu against a real mosquitto and pymodbus; needs toolchains/install-deps.sh test)
#   --package    the release build (preset ARCH-release, -> build/release/ARCH) and its .deb files
#                in build/release/ARCH/packages
#
# For CI: `toolchains/cross-build.sh aarch64 --test` (exit status = the tests' verdict).
# Prints the wall time of each step. Builds with -j2 (the presets' jobs).
set -euo pipefail

usage() { echo "usage: $0 aarch64|armhf [--test] [--smoke] [--package]" >&2; exit 2; }
[ $# -ge 1 ] || usage
arch=$1; shift
case "$arch" in aarch64|armhf) ;; *) usage ;; esac
test=0 smoke=0 package=0
for a in "$@"; do
  case "$a" in
    --test) test=1 ;;
    --smoke) smoke=1 ;;
    --package) package=1 ;;
    *) usage ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
case "$arch" in
  aarch64) toolchain=toolchains/aarch64-linux-gnu.cmake ;;
  armhf) toolchain=toolchains/arm-linux-gnueabihf.cmake ;;
esac

# A toolchain file's *_FLAGS_INIT only reach a fresh cache: reconfigure from scratch when the
# toolchain file is newer than the build dir's cache.
configure() {  # configure PRESET BUILD_DIR
  local fresh=()
  if [ -f "$2/CMakeCache.txt" ] && [ "$toolchain" -nt "$2/CMakeCache.txt" ]; then fresh=(--fresh); fi
  cmake --preset "$1" "${fresh[@]}" >/dev/null
}

step_start=0
step() { step_start=$(date +%s); echo "cross-build[$arch]: $*"; }
done_step() { echo "cross-build[$arch]: ... $(( $(date +%s) - step_start )) s"; }
t0=$(date +%s)

step "dependencies (toolchains/install-cross-deps.sh $arch)"
"$here/install-cross-deps.sh" "$arch"
done_step

# The development build (tests included): unless only --package was asked for.
if [ $test -eq 1 ] || [ $smoke -eq 1 ] || [ $package -eq 0 ]; then
  step "configure + build (preset $arch -> build/$arch)"
  configure "$arch" "build/$arch"
  cmake --build --preset "$arch"
  done_step
fi

status=0
if [ $test -eq 1 ]; then
  step "unit tests under qemu-user (ctest --preset $arch)"
  tests/fresh-boot.sh ctest --preset "$arch" || status=$?
  done_step
fi

if [ $smoke -eq 1 ]; then
  if [ "$arch" != aarch64 ]; then
    echo "cross-build: --smoke runs the aarch64 daemon only" >&2; exit 2
  fi
  step "end-to-end smoke test under qemu-user"
  (cd tests/integration && CITYGATE_CROSS_BIN="$root/build/aarch64/bin/citygated" \
    CITYGATE_CROSS_BUILD_DIR="$root/build/aarch64" PYTHONDONTWRITEBYTECODE=1 \
    /usr/bin/python3 -m unittest -v test_cross_smoke) || status=$?
  done_step
fi

if [ $package -eq 1 ]; then
  step "release build + packages (preset $arch-release -> build/release/$arch)"
  configure "$arch-release" "build/release/$arch"
  cmake --build --preset "$arch-release"
  cpack --preset "$arch-release"
  ls -l "build/release/$arch/packages/"*.deb
  done_step
fi

echo "cross-build[$arch]: total $(( $(date +%s) - t0 )) s, exit $status"
exit $status
