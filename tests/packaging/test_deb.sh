#!/usr/bin/env bash
# The Debian packages, checked as an administrator would meet them:
#
#   1. every built package (build/release/{amd64,aarch64,armhf}/packages): contents, conffiles,
#      maintainer scripts, architecture, a stripped program of the right ELF machine with a
#      debuglink whose CRC matches the -dbgsym file, and Depends covering every NEEDED library;
#   2. the amd64 package installed here with dpkg -i: the citygate system user (in dialout), its
#      directories and modes, the conffile, `systemd-analyze verify` and the offline security score
#      of the unit, the config accepted by the installed daemon run as that user, and the
#      Type=notify protocol (READY, WATCHDOG, SIGHUP, SIGTERM) played by tests/packaging/notify_probe.py
#      since no systemd runs in a container;
#   3. dpkg --purge: no user, no group, no directory, no file of the package left.
#
#   tests/packaging/test_deb.sh              builds the amd64 release package first (preset release)
#   tests/packaging/test_deb.sh --no-build   uses the packages already built
#
# Needs root (dpkg -i). Refuses to run when citygate is already installed on this machine: it
# would purge it. Ends with the line "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=1
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
  esac
done

passed=0 failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
check() {  # check "what" command... : one line per check, output shown on failure
  local what=$1; shift
  if "$@" >"$out" 2>&1; then
    passed=$((passed + 1)); echo "ok   $what"
  else
    failed=$((failed + 1)); echo "FAIL $what"; sed 's/^/     | /' "$out" | tail -n 30
  fi
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

if [ "$(id -u)" -ne 0 ]; then
  echo "test_deb: needs root (dpkg -i / --purge)" >&2; exit 1
fi
if dpkg-query -W -f='${Status}' citygate 2>/dev/null | grep -q "installed\|config-files\|unpacked"; then
  echo "test_deb: citygate is already installed here; purge it first (dpkg --purge citygate citygate-dbgsym)" >&2
  exit 1
fi
if getent passwd citygate >/dev/null || getent group citygate >/dev/null; then
  echo "test_deb: a citygate user or group exists without the package; this machine is not clean" >&2
  exit 1
fi

cd "$root"
if [ $build -eq 1 ]; then
  echo "test_deb: building the amd64 release package (preset release)"
  t0=$(date +%s)
  { cmake --preset release >/dev/null && cmake --build --preset release && cpack --preset release; } \
    >"$out" 2>&1 || { cat "$out"; echo "test_deb: the release build failed" >&2; exit 1; }
  echo "test_deb: built in $(( $(date +%s) - t0 )) s"
fi

version=$(sed -n 's/^project(citygate VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)-1
profiles=$(cd gateway/profiles && ls *.textproto)

# --- 1. every package that was built ------------------------------------------------------------
declare -A machine=([amd64]=62 [arm64]=183 [armhf]=40)  # ELF e_machine
declare -A builddir=([amd64]=amd64 [arm64]=aarch64 [armhf]=armhf)
declare -A objcopy=([amd64]=objcopy [arm64]=aarch64-linux-gnu-objcopy [armhf]=arm-linux-gnueabihf-objcopy)

elf_machine() { /usr/bin/python3 -c 'import sys; h=open(sys.argv[1],"rb").read(20); print(int.from_bytes(h[18:20],"little"))' "$1"; }

# The package that provides SONAME for ARCH. amd64 and arm64: this machine's dpkg database
# (multiarch). armhf: the sysroot has no dpkg database (mmdebstrap --variant=extract), so the
# soname must exist in the sysroot and its package is looked up in the host's database: Debian
# names a library's package the same on every architecture (libmodbus.so.5 -> libmodbus5).
lib_owner() {  # lib_owner ARCH SONAME
  local arch=$1 so=$2 triplet
  case "$arch" in
    amd64) triplet=x86_64-linux-gnu ;;
    arm64) triplet=aarch64-linux-gnu ;;
    armhf)
      if [ ! -e "$root/build/sysroot-armhf/usr/lib/arm-linux-gnueabihf/$so" ] &&
         [ ! -e "$root/build/sysroot-armhf/lib/arm-linux-gnueabihf/$so" ]; then return; fi
      triplet=x86_64-linux-gnu ;;
  esac
  dpkg -S "*/$triplet/$so" 2>/dev/null | head -n 1 | cut -d: -f1
}

check_depends_cover_needed() {  # ARCH DEB EXTRACTED_BINARY
  local arch=$1 deb=$2 bin=$3 depends so owner missing=0
  depends=$(dpkg-deb -f "$deb" Depends)
  for so in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    owner=$(lib_owner "$arch" "$so")
    if [ -z "$owner" ]; then echo "no package of $arch provides $so"; missing=1; continue; fi
    # The package itself, or a name it Provides (libspdlog1.10 provides libspdlog1.10-fmt9,
    # the name its shlibs file asks for).
    local names ok=0 n
    names="$owner $(dpkg-query -W -f='${Provides}\n' "$owner" 2>/dev/null | head -n 1 | sed 's/([^)]*)//g; s/,/ /g')"
    for n in $names; do
      if echo ", $depends," | grep -q ", *$n[ ,(]"; then ok=1; fi
    done
    if [ $ok -eq 0 ]; then
      echo "$so is in $owner (provides: ${names#"$owner"}), which Depends ($depends) does not name"; missing=1
    fi
  done
  return $missing
}

check_debuglink() {  # OBJCOPY STRIPPED DEBUG: the .gnu_debuglink names DEBUG and carries its CRC32
  /usr/bin/python3 - "$1" "$2" "$3" <<'EOF'
import os, subprocess, sys, tempfile, zlib
objcopy, stripped, debug = sys.argv[1:]
with tempfile.TemporaryDirectory() as d:
    sec = os.path.join(d, "link")
    subprocess.run([objcopy, "--dump-section", f".gnu_debuglink={sec}", stripped, os.path.join(d, "copy")],
                   check=True)
    raw = open(sec, "rb").read()
name = raw[:raw.index(b"\0")].decode()
crc = int.from_bytes(raw[-4:], "little")
want = zlib.crc32(open(debug, "rb").read()) & 0xFFFFFFFF
print(f"debuglink {name} crc {crc:08x}, {os.path.basename(debug)} crc {want:08x}")
sys.exit(0 if name == os.path.basename(debug) and crc == want else 1)
EOF
}

found=0
for arch in amd64 arm64 armhf; do
  dir=build/release/${builddir[$arch]}/packages
  deb=$dir/citygate_${version}_${arch}.deb
  dbg=$dir/citygate-dbgsym_${version}_${arch}.deb
  [ -f "$deb" ] || { echo "skip $arch: no $deb"; continue; }
  found=$((found + 1))
  x=$(mktemp -d); xd=$(mktemp -d)
  dpkg-deb -x "$deb" "$x"; dpkg-deb -e "$deb" "$x/DEBIAN"
  [ -f "$dbg" ] && dpkg-deb -x "$dbg" "$xd"
  listing=$(dpkg-deb -c "$deb")
  want="./usr/sbin/citygated ./etc/citygate/citygate.textproto ./usr/lib/systemd/system/citygated.service
        ./usr/lib/tmpfiles.d/citygate.conf"
  for p in $profiles; do want+=" ./usr/share/citygate/profiles/$p"; done
  check "$arch: dpkg -c lists the daemon, config, unit, tmpfiles and $(echo "$profiles" | wc -w) profiles" \
    bash -c 'for f in $1; do grep -q " $f\$" <<<"$2" || { echo "missing $f"; exit 1; }; done' _ "$want" "$listing"
  if [ -f gateway/cli/main.cpp ]; then  # the technician's CLI is part of the tree: it must ship
    check "$arch: dpkg -c lists /usr/bin/citygatectl (stripped, mode 0755) and its bash completion" \
      bash -c 'grep -q "^-rwxr-xr-x root/root .* ./usr/bin/citygatectl\$" <<<"$1" &&
               grep -q " ./usr/share/bash-completion/completions/citygatectl\$" <<<"$1" &&
               ! readelf -S "$2" | grep -qE "\.symtab|\.debug_info"' _ "$listing" "$x/usr/bin/citygatectl"
  fi
  check "$arch: /usr/sbin/citygated is mode 0755 root:root" \
    grep -q '^-rwxr-xr-x root/root .* ./usr/sbin/citygated$' <<<"$listing"
  check "$arch: Architecture field is $arch" test "$(dpkg-deb -f "$deb" Architecture)" = "$arch"
  check "$arch: the program is an ELF for e_machine ${machine[$arch]}" \
    test "$(elf_machine "$x/usr/sbin/citygated")" = "${machine[$arch]}"
  check "$arch: the program is stripped (no .symtab, no .debug_info)" \
    bash -c '! readelf -S "$1" | grep -qE "\.symtab|\.debug_info"' _ "$x/usr/sbin/citygated"
  check "$arch: conffiles names /etc/citygate/citygate.textproto" \
    grep -qx /etc/citygate/citygate.textproto "$x/DEBIAN/conffiles"
  check "$arch: postinst, prerm, postrm are executable shell scripts that parse" \
    bash -c 'for s in postinst prerm postrm; do test -x "$1/$s" && sh -n "$1/$s" || exit 1; done' _ "$x/DEBIAN"
  check "$arch: Depends names the package of every NEEDED library" \
    check_depends_cover_needed "$arch" "$deb" "$x/usr/sbin/citygated"
  if [ -f "$dbg" ]; then
    check "$arch: the dbgsym's citygated.debug matches the program's debuglink (name and CRC)" \
      check_debuglink "${objcopy[$arch]}" "$x/usr/sbin/citygated" "$xd/usr/lib/debug/usr/sbin/citygated.debug"
  else
    check "$arch: a citygate-dbgsym package was built" test -f "$dbg"
  fi
  rm -rf "$x" "$xd"
done
check "at least the amd64 package was built" test -f "build/release/amd64/packages/citygate_${version}_amd64.deb"

deb=build/release/amd64/packages/citygate_${version}_amd64.deb
dbg=build/release/amd64/packages/citygate-dbgsym_${version}_amd64.deb
[ -f "$deb" ] || finish

# --- 2. install on this machine ----------------------------------------------------------------
purge() { dpkg --purge citygate-dbgsym citygate >/dev/null 2>&1 || true; }
trap 'purge; rm -f "$out"' EXIT

check "dpkg -i citygate citygate-dbgsym" dpkg -i "$deb" "$dbg"
check "the package is installed" bash -c 'dpkg-query -W -f="\${Status}" citygate | grep -qx "install ok installed"'
check "system user citygate exists, no login shell, home /var/lib/citygate" \
  bash -c 'IFS=: read -r n _ uid _ _ home shell < <(getent passwd citygate) && [ "$uid" -lt 1000 ] &&
           [ "$home" = /var/lib/citygate ] && [ "$shell" = /usr/sbin/nologin ]'
check "citygate is in group dialout (serial ports)" bash -c 'id -nG citygate | tr " " "\n" | grep -qx dialout'
for d in /var/lib/citygate /var/lib/citygate/spool /run/citygate /etc/citygate; do
  check "$d exists, citygate:citygate 0750" test "$(stat -c '%U:%G %a' "$d" 2>&1)" = "citygate:citygate 750"
done
check "/etc/citygate/citygate.textproto is a registered conffile" \
  bash -c 'dpkg-query -W -f="\${Conffiles}" citygate | grep -q "/etc/citygate/citygate.textproto [0-9a-f]\{32\}"'
check "the unit is enabled (multi-user.target.wants)" \
  test -L /etc/systemd/system/multi-user.target.wants/citygated.service
check "systemd-analyze verify accepts citygated.service" \
  bash -c 'systemd-analyze verify /usr/lib/systemd/system/citygated.service 2>&1 | tee /dev/stderr | { ! grep -q .; }'
check "systemd-analyze security --offline: exposure at most 2.5" \
  bash -c 'systemd-analyze security --offline=true --threshold=25 /usr/lib/systemd/system/citygated.service | tail -n 1'
check "the installed daemon, run as citygate, accepts the shipped config" \
  setpriv --reuid=citygate --regid=citygate --init-groups /usr/sbin/citygated --check-config /etc/citygate/citygate.textproto
check "Type=notify protocol as citygate: READY, WATCHDOG, SIGHUP, SIGTERM -> exit 0" \
  /usr/bin/python3 "$here/notify_probe.py" --user citygate -- /usr/sbin/citygated --config /etc/citygate/citygate.textproto
check "the daemon's state went to its StateDirectory, owned by citygate" \
  bash -c 'test -z "$(find /var/lib/citygate ! -user citygate)"'

# An edited conffile survives a reinstall (dpkg keeps the admin's version).
echo '# site edit' >> /etc/citygate/citygate.textproto
check "dpkg -i again (upgrade path) keeps an edited conffile" \
  bash -c 'dpkg --force-confold -i "$1" >/dev/null && grep -q "# site edit" /etc/citygate/citygate.textproto' _ "$deb"

# --- 3. purge leaves nothing --------------------------------------------------------------------
check "dpkg --purge citygate-dbgsym citygate" dpkg --purge citygate-dbgsym citygate
check "no citygate user or group left" bash -c '! getent passwd citygate && ! getent group citygate'
check "no file or directory of the package left" \
  bash -c 'for p in /usr/sbin/citygated /etc/citygate /var/lib/citygate /run/citygate /usr/share/citygate \
             /usr/lib/systemd/system/citygated.service /usr/lib/tmpfiles.d/citygate.conf /usr/lib/debug/usr/sbin/citygated.debug /usr/bin/citygatectl \
             /etc/systemd/system/multi-user.target.wants/citygated.service /var/lib/systemd/deb-systemd-helper-enabled/citygated.service.dsh-also; do
             if [ -e "$p" ] || [ -L "$p" ]; then echo "left: $p"; exit 1; fi; done'
check "dpkg no longer knows citygate" bash -c '! dpkg-query -W citygate 2>/dev/null | grep -q .'
trap 'rm -f "$out"' EXIT

finish
