#!/usr/bin/env bash
# Builds citygated for one architecture in four optimisation variants and prints the stripped size
# of each (the figures behind the release presets' choice, tests/bench/SIZES.md):
#
#   Os-lto   -Os, link-time optimisation     (the release presets)
#   Os       -Os
#   O2-lto   -O2, link-time optimisation
#   O2       -O2
#
#   tests/packaging/size_variants.sh amd64|aarch64|armhf [VARIANT...]
#
# Build dirs: build/release/variants/ARCH-VARIANT (only the citygated and citygate_stripped
# targets; -j2). Prints one line per variant: arch, variant, stripped bytes, .text bytes, build s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
arch=${1:?usage: $0 amd64|aarch64|armhf [VARIANT...]}; shift
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(Os-lto Os O2-lto O2)

case "$arch" in
  amd64) toolchain=(); size=size ;;
  aarch64) toolchain=(-DCMAKE_TOOLCHAIN_FILE="$root/toolchains/aarch64-linux-gnu.cmake"); size=aarch64-linux-gnu-size ;;
  armhf) toolchain=(-DCMAKE_TOOLCHAIN_FILE="$root/toolchains/arm-linux-gnueabihf.cmake"); size=arm-linux-gnueabihf-size ;;
  *) echo "unknown arch $arch" >&2; exit 2 ;;
esac

for v in "${variants[@]}"; do
  case "$v" in
    Os-lto) opt="-Os"; lto=ON ;;
    Os) opt="-Os"; lto=OFF ;;
    O2-lto) opt="-O2"; lto=ON ;;
    O2) opt="-O2"; lto=OFF ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  dir="$root/build/release/variants/$arch-$v"
  t0=$(date +%s)
  cmake -S "$root" -B "$dir" -G Ninja "${toolchain[@]}" -DCMAKE_BUILD_TYPE=MinSizeRel \
    -DCMAKE_CXX_FLAGS_MINSIZEREL="$opt -DNDEBUG -g" -DCMAKE_C_FLAGS_MINSIZEREL="$opt -DNDEBUG -g" \
    -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=$lto -DCITYGATE_WERROR=ON -DCITYGATE_TESTS=OFF -DCITYGATE_BENCH=OFF >/dev/null
  cmake --build "$dir" -j2 --target citygate_stripped >/dev/null
  bin="$dir/gateway/packaging/stripped/citygated"
  text=$($size -A "$bin" | awk '$1 == ".text" {print $2}')
  echo "$arch $v stripped_bytes=$(stat -c %s "$bin") text_bytes=$text build_s=$(( $(date +%s) - t0 ))"
done
