#!/usr/bin/env bash
# Installs what citygate needs from Debian 12's archive (and the npm registry for the LoRa test
# encoder). Idempotent, and fast when everything is already there: it only calls apt-get when a
# package is missing.
#
#   toolchains/install-deps.sh build     compilers and -dev packages
#   toolchains/install-deps.sh schema    what a CITYGATE_GATEWAY=OFF build needs: compiler, cmake, protoc, python3-protobuf
#   toolchains/install-deps.sh test      build + the test peers (mosquitto, pymodbus, socat, ...) + firmware
#   toolchains/install-deps.sh firmware  the node firmware for Cortex-M: arm-none-eabi, newlib, qemu, nanopb
#   toolchains/install-deps.sh demo      build + the test peers (the nodes run as host programs: no Cortex-M)
#   toolchains/install-deps.sh fuzz      test + clang's libFuzzer runtime
#   toolchains/install-deps.sh fleet     test + a RabbitMQ cluster for tests/fleet (rabbitmq-server, pika)
#   toolchains/install-deps.sh lint      clang-format (toolchains/check-style.sh)
#   toolchains/install-deps.sh tidy      clang-format and clang-tidy (check-style.sh --tidy)
#
# Runs as root, or through sudo when it is available.
set -euo pipefail

what=${1:-test}
here=$(cd "$(dirname "$0")" && pwd)

build_pkgs=(g++ cmake ninja-build pkg-config libpaho-mqttpp-dev libpaho-mqtt-dev libssl-dev libboost-dev
  libprotobuf-dev protobuf-compiler libmodbus-dev libspdlog-dev doctest-dev libsystemd-dev)
# The node firmware is built with the rest (CITYGATE_FIRMWARE) for the host: nanopb's generator (schema too).
build_pkgs+=(nanopb)
# citygate-ingest, the reference platform consumer (platform/): PostgreSQL's client library.
build_pkgs+=(libpq-dev)
test_pkgs=(mosquitto mosquitto-clients python3-pymodbus python3-serial python3-serial-asyncio python3-paho-mqtt
  python3-protobuf socat mbpoll openssl tmux procps valgrind)
# citygate-ingest's tests: a PostgreSQL server they start themselves (initdb, pg_ctl), and the
# FIWARE JSON schemas' validator.
test_pkgs+=(postgresql python3-jsonschema)
fuzz_pkgs=(clang libclang-rt-14-dev)
# tests/fleet: a three-node RabbitMQ 3.10 cluster with its MQTT plugin (Erlang comes with it), and an
# AMQP client for the optional AMQP platform consumer.
fleet_pkgs=(rabbitmq-server python3-pika)
lint_pkgs=(clang-format-14)
# python3-protobuf: toolchains/check-schema.py and its test (nanopb's generator needs it too).
schema_pkgs=(g++ cmake ninja-build protobuf-compiler nanopb python3-protobuf)
# The node firmware (firmware/README.md): Debian's arm-none-eabi GCC and newlib-nano, qemu for its
# tests, nanopb's generator (python3-protobuf runs it). Not libstdc++-arm-none-eabi-newlib: the
# node core needs no C++ library (toolchains/arm-none-eabi.cmake).
firmware_pkgs=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm nanopb python3-protobuf)

pkgs=("${build_pkgs[@]}")
case "$what" in
  build) ;;
  schema) pkgs=("${schema_pkgs[@]}") ;;
  test) pkgs+=("${test_pkgs[@]}" "${firmware_pkgs[@]}") ;;
  demo) pkgs+=("${test_pkgs[@]}") ;;
  firmware) pkgs=("${schema_pkgs[@]}" "${firmware_pkgs[@]}") ;;
  fuzz) pkgs+=("${test_pkgs[@]}" "${firmware_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
  fleet) pkgs+=("${test_pkgs[@]}" "${firmware_pkgs[@]}" "${fleet_pkgs[@]}") ;;
  lint) pkgs=("${lint_pkgs[@]}") ;;
  tidy) pkgs=("${lint_pkgs[@]}" clang-tidy-14) ;;
  *) echo "usage: $0 [build|schema|test|demo|fuzz|fleet|lint|tidy|firmware]" >&2; exit 2 ;;
esac
# Node.js for the LoRa encoder: Debian's packages unless a Node.js is already installed (a
# Node.js from elsewhere conflicts with Debian's npm package).
if [ "$what" != build ] && [ "$what" != schema ] && [ "$what" != lint ] && [ "$what" != tidy ] && [ "$what" != firmware ]; then
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo_cmd=(sudo); else
    echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2; exit 1
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A machine whose last dpkg run was cut short (a power cut, a killed CI job) refuses every
  # install until the interrupted one is finished: finish it first, then repair what it left.
  if [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ]; then
    echo "install-deps: an earlier dpkg run was interrupted; finishing it (dpkg --configure -a)"
    "${sudo_cmd[@]}" dpkg --configure -a
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "install-deps: apt-get install failed; repairing (dpkg --configure -a, apt-get -f install) and trying once more"
    "${sudo_cmd[@]}" dpkg --configure -a
    "${sudo_cmd[@]}" apt-get install -y -qq -f >/dev/null
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# mosquitto's package starts a broker on :1883 where systemd runs; the tests start their own on
# free ports, so the packaged one is not needed (and not touched).

if [ "$what" != build ] && [ "$what" != schema ] && [ "$what" != lint ] && [ "$what" != tidy ] && [ "$what" != firmware ]; then
  # The independent LoRaWAN encoder for the LoRa tests and the demo's concentrator.
  if [ ! -f "$here/../tests/peers/node_modules/lora-packet/package.json" ]; then
    echo "install-deps: npm install (tests/peers)"
    (cd "$here/../tests/peers" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
