#!/usr/bin/env bash
# Fetches a Debian 12 source package's upstream tarball and unpacks it, for the node firmware's
# runtimes that Debian does not package for a Cortex-M (nanopb's pb_*.c, Mbed TLS's aes.c and
# cmac.c): the code is a dependency from Debian's archive, never copied into the repository.
#
#   toolchains/fetch-debian-source.sh PACKAGE DEST_DIR
#
# Unpacks into DEST_DIR/PACKAGE-VERSION/ and prints that path. Idempotent: an unpacked tree is
# reused. Uses the archive the machine's apt already uses, through a private deb-src list (the
# system's apt lists are not touched). Needs no root.
set -euo pipefail
pkg=${1:?usage: $0 PACKAGE DEST_DIR}
dest=${2:?usage: $0 PACKAGE DEST_DIR}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

existing=$(find "$dest" -maxdepth 1 -mindepth 1 -type d -name "$pkg-[0-9]*" -print -quit)
if [ -n "$existing" ] && [ -f "$existing/.citygate-unpacked" ]; then
  echo "$existing"
  exit 0
fi

archive=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  archive=$(awk '/^URIs:/ {print $2; exit}' "$f")
  [ -n "$archive" ] && break
done
if [ -z "$archive" ] && [ -f /etc/apt/sources.list ]; then
  archive=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
if [ -z "$archive" ]; then
  echo "$0: cannot find the Debian archive in /etc/apt/sources.list(.d)" >&2
  exit 1
fi

apt_dir="$dest/.apt"
mkdir -p "$apt_dir/lists/partial"
cat > "$apt_dir/src.sources" <<EOT
Types: deb-src
URIs: $archive
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
o=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir" -o "Dir::State::Lists=$apt_dir/lists"
   -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
if ! ls "$apt_dir"/lists/*Sources* >/dev/null 2>&1; then
  apt-get "${o[@]}" update >&2 || { echo "$0: apt-get update of the deb-src list failed ($archive)" >&2; exit 1; }
fi
work="$dest/.download-$pkg"
rm -rf "$work" && mkdir -p "$work"
(cd "$work" && apt-get "${o[@]}" source --download-only "$pkg" >&2) ||
  { echo "$0: apt-get source --download-only $pkg failed" >&2; exit 1; }
tarball=$(find "$work" -maxdepth 1 -name "${pkg}_*.orig.tar.*" -print -quit)
if [ -z "$tarball" ]; then
  echo "$0: no ${pkg}_*.orig.tar.* in what apt-get source downloaded" >&2
  exit 1
fi
version=$(basename "$tarball" | sed -E "s/^${pkg}_([^-]+)\.orig\.tar\..*/\1/")
out="$dest/$pkg-$version"
rm -rf "$out" && mkdir -p "$out"
tar -xf "$tarball" -C "$out" --strip-components=1
touch "$out/.citygate-unpacked"
rm -rf "$work"
echo "$out"
