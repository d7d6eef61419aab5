#!/usr/bin/env bash
# Installs what the ARM cross builds need, from Debian 12's archive only. Idempotent, and fast when
# everything is already there (no apt-get call, no mmdebstrap run).
#
#   toolchains/install-cross-deps.sh aarch64   g++-aarch64-linux-gnu + the :arm64 -dev packages
#                                              (dpkg multiarch), qemu-user-static
#   toolchains/install-cross-deps.sh armhf     g++-arm-linux-gnueabihf + a self-contained armhf
#                                              sysroot (mmdebstrap) under build/sysroot-armhf
#   toolchains/install-cross-deps.sh all       both
#
# Why armhf is a sysroot and not multiarch: registering armhf with dpkg breaks apt here (the
# bookworm-security armhf index does not download, so every later `apt-get update` fails). This
# script never leaves armhf registered; if it finds it registered it removes it again.
#
# Environment: CITYGATE_ARMHF_SYSROOT overrides the sysroot path (default build/sysroot-armhf).
# Runs as root, or through sudo when it is available.
set -euo pipefail

what=${1:-all}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
sysroot=${CITYGATE_ARMHF_SYSROOT:-$root/build/sysroot-armhf}

# The target -dev set, the same for both architectures (mirrors toolchains/install-deps.sh build).
target_dev=(libpaho-mqttpp-dev libpaho-mqtt-dev libssl-dev libboost-dev libprotobuf-dev zlib1g-dev
  libmodbus-dev libspdlog-dev libfmt-dev libsystemd-dev)
# The host side: cmake/ninja/protoc from the native set, plus the cross tools.
host_common=(cmake ninja-build pkg-config protobuf-compiler doctest-dev qemu-user-static binutils dpkg-dev)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo_cmd=(sudo); else
    echo "install-cross-deps: run as root or install sudo" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive

installed() {  # installed PKG[:ARCH]
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

updated=0
apt_update() {
  if [ $updated -eq 0 ]; then
    "${sudo_cmd[@]}" apt-get update -qq
    updated=1
  fi
}

apt_install() {  # apt_install PKG... (only the missing ones)
  local missing=()
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "install-cross-deps: installing ${missing[*]}"
  apt_update
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A stray armhf registration (from an earlier experiment) breaks every apt-get update: undo it.
if dpkg --print-foreign-architectures | grep -qx armhf; then
  echo "install-cross-deps: removing the armhf dpkg architecture (it breaks apt here)"
  armhf_pkgs=$(dpkg-query -W -f='${Package}:${Architecture}\n' 2>/dev/null | grep ':armhf$' || true)
  if [ -n "$armhf_pkgs" ]; then
    # shellcheck disable=SC2086
    "${sudo_cmd[@]}" apt-get purge -y -qq $armhf_pkgs >/dev/null
  fi
  "${sudo_cmd[@]}" dpkg --remove-architecture armhf
  updated=0
  apt_update
fi

do_aarch64() {
  apt_install "${host_common[@]}" g++-aarch64-linux-gnu
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "install-cross-deps: dpkg --add-architecture arm64"
    "${sudo_cmd[@]}" dpkg --add-architecture arm64
    updated=0
  fi
  # pkgconf:arm64 provides /usr/bin/aarch64-linux-gnu-pkg-config (the host pkgconf-bin runs it).
  # Never protobuf-compiler:arm64: it would replace the host protoc, which generates for every arch.
  local pkgs=(pkgconf:arm64 libc6-dev:arm64)
  for p in "${target_dev[@]}"; do pkgs+=("$p:arm64"); done
  apt_install "${pkgs[@]}"
}

# The Debian archive as apt is configured here (deb822 or one-line sources), else the default.
debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i !~ /security/) {print $i; exit}}' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
      /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

do_armhf() {
  apt_install "${host_common[@]}" g++-arm-linux-gnueabihf mmdebstrap
  local stamp="$sysroot/.citygate-sysroot"
  local want
  want="v1 ${target_dev[*]} doctest-dev libc6-dev libstdc++-12-dev"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  local mirror
  mirror=$(debian_mirror)
  echo "install-cross-deps: armhf sysroot in $sysroot (mmdebstrap from $mirror)"
  local tmp="$sysroot.tmp"
  "${sudo_cmd[@]}" rm -rf "$tmp"
  mkdir -p "$(dirname "$sysroot")"
  local include
  include=$(IFS=,; echo "libc6-dev,libstdc++-12-dev,doctest-dev,${target_dev[*]}")
  # Only bookworm and bookworm-updates: the security suite's armhf index does not download here.
  # Fine for building and testing; an image that ships must be built from a complete mirror.
  "${sudo_cmd[@]}" mmdebstrap --quiet --variant=extract --architectures=armhf --include="$include" \
    bookworm "$tmp" "deb $mirror bookworm main" "deb $mirror bookworm-updates main"
  # Absolute symlinks inside the sysroot point at the host (e.g. libz.so -> /lib/...): make them
  # relative, or the linker silently falls back to static archives or the host's libraries.
  /usr/bin/python3 - "$tmp" <<'EOF'
import os, sys
root = os.path.realpath(sys.argv[1])
fixed = 0
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        p = os.path.join(dirpath, name)
        if not os.path.islink(p):
            continue
        target = os.readlink(p)
        if not target.startswith("/"):
            continue
        inside = root + target
        os.unlink(p)
        os.symlink(os.path.relpath(inside, os.path.dirname(p)), p)
        fixed += 1
print(f"install-cross-deps: {fixed} absolute symlink(s) made relative")
EOF
  # apt's lists and the package cache are not needed to build against the tree.
  "${sudo_cmd[@]}" rm -rf "$tmp/var/lib/apt/lists" "$tmp/var/cache/apt"
  echo "$want" > "$tmp/.citygate-sysroot"
  "${sudo_cmd[@]}" rm -rf "$sysroot"
  mv "$tmp" "$sysroot"
}

case "$what" in
  aarch64) do_aarch64 ;;
  armhf) do_armhf ;;
  all) do_aarch64; do_armhf ;;
  *) echo "usage: $0 [aarch64|armhf|all]" >&2; exit 2 ;;
esac
