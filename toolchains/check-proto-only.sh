#!/usr/bin/env bash
# The schema builds without the gateway's libraries: configures -DCITYGATE_GATEWAY=OFF in a scratch
# build directory with every gateway dependency made unfindable (CMAKE_DISABLE_FIND_PACKAGE_<X> for
# Protobuf's library, Boost, Paho, spdlog, fmt, OpenSSL, doctest, Threads and pkg-config, and an
# empty pkg-config path), builds it (protoc descriptor sets and Python modules, node.proto alone,
# node_format.hpp compiled freestanding and as a host program without libstdc++, and the node
# firmware's host port and tests) and runs its tests. Then checks what it proves:
#   - the same configure with the gateway ON fails (so the disabled packages are really needed
#     by the gateway, and really unavailable here);
#   - nothing in the build names a gateway library, and node_format_check needs no libstdc++.
# CI runs it (.ci/run); a few seconds.
#
#   toolchains/check-proto-only.sh            # uses build/check-proto-only (wiped first)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
toolchains/install-deps.sh schema
dir=build/check-proto-only
rm -rf "$dir" "$dir-gateway"
mkdir -p build

no_deps=(--no-warn-unused-cli -G Ninja -DCITYGATE_WERROR=ON)
for pkg in Protobuf Boost PahoMqttCpp spdlog fmt OpenSSL doctest Threads PkgConfig; do
  no_deps+=("-DCMAKE_DISABLE_FIND_PACKAGE_$pkg=ON")
done
export PKG_CONFIG_PATH="" PKG_CONFIG_LIBDIR=/nonexistent

fail() {
  echo "check-proto-only: $*" >&2
  exit 1
}

cmake -S . -B "$dir" "${no_deps[@]}" -DCITYGATE_GATEWAY=OFF >"$dir.log" 2>&1 ||
  { cat "$dir.log" >&2; fail "configure with -DCITYGATE_GATEWAY=OFF failed"; }
cmake --build "$dir" >>"$dir.log" 2>&1 || { cat "$dir.log" >&2; fail "build failed"; }
ctest --test-dir "$dir" --output-on-failure >>"$dir.log" 2>&1 || { cat "$dir.log" >&2; fail "ctest failed"; }

for f in proto/citygate.desc proto/node-alone/node.desc python/citygate/v1/node_pb2.py python/citygate/v1/config_pb2.py \
  bin/node_format_check bin/fw_test_core_crc bin/fw_test_host_posix; do
  [ -s "$dir/$f" ] || fail "$dir/$f was not built"
done
if readelf -d "$dir/bin/node_format_check" | grep -q 'NEEDED.*libstdc++'; then
  fail "node_format_check links libstdc++"
fi
if grep -Eio -- '-l(protobuf|paho[a-z0-9-]*|modbus|spdlog|fmt|ssl|crypto|systemd)\b|/(boost|google/protobuf|spdlog|mqtt|modbus|openssl)/' \
  "$dir/build.ninja" "$dir/compile_commands.json" | sort -u | grep .; then
  fail "the schema-only build names a gateway library (above)"
fi
if grep -Ei '^(Protobuf_LIBRARY|Boost_INCLUDE_DIR|PahoMqttCpp_DIR|spdlog_DIR|OPENSSL_CRYPTO_LIBRARY|MODBUS_)[^=]*=[^-]' \
  "$dir/CMakeCache.txt"; then
  fail "the schema-only configure found a gateway package (above)"
fi

# The control: with the gateway on, the same configure must fail at its first dependency.
if cmake -S . -B "$dir-gateway" "${no_deps[@]}" -DCITYGATE_GATEWAY=ON >"$dir-gateway.log" 2>&1; then
  fail "configure with the gateway ON succeeded without its packages: this check proves nothing"
fi
grep -q 'CMAKE_DISABLE_FIND_PACKAGE_' "$dir-gateway.log" ||
  { cat "$dir-gateway.log" >&2; fail "the gateway configure failed for another reason than a missing package"; }
rm -rf "$dir-gateway" "$dir-gateway.log"

echo "check-proto-only: schema and node formats built with protoc alone in $dir ($((SECONDS - start)) s)"
