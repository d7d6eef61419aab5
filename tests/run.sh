#!/usr/bin/env bash
# The whole citygate suite: installs what it needs (Debian packages, the npm LoRa encoder),
# builds, and runs the unit tests and the integration tests against real peers (mosquitto,
# pymodbus over TCP and socat pseudo-terminals, lora-packet frames, the real daemon and CLI).
#
#   tests/run.sh                 default preset (optimised, warnings are errors)
#   tests/run.sh --asan          the same suite under AddressSanitizer + UBSan
#   tests/run.sh --unit          unit tests only (with the fuzz targets' regression corpora and the
#                                host firmware's tests, label firmware)
#   tests/run.sh -R REGEX        only the CTest tests matching REGEX
#   tests/run.sh --fleet         only the fleet test's CI slice (label fleet: a RabbitMQ cluster,
#                                tests/fleet/README.md); not part of the default run
#
# The unit tests run on monotonic and boot clocks that read about 60 s (tests/fresh-boot.sh): a
# gateway may have booted a minute ago.
set -euo pipefail

preset=default
labels=""
regex=""
while [ $# -gt 0 ]; do
  case "$1" in
    --asan) preset=asan; shift ;;
    --unit) labels=unit; shift ;;
    --integration) labels=integration; shift ;;
    --fleet) labels=fleet; shift ;;
    -R) regex=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "run: unknown argument $1" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
toolchains/install-deps.sh "$([ "$labels" = fleet ] && echo fleet || echo test)"
start=$SECONDS
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
echo "run: built in $((SECONDS - start)) s"

args=(--preset "$preset" --output-on-failure --timeout 900)
[ -n "$regex" ] && args+=(-R "$regex")
status=0
if [ -z "$labels" ] || [ "$labels" = unit ]; then
  tests/fresh-boot.sh ctest "${args[@]}" -L '^(unit|fuzz|firmware)$' -j2 || status=1
fi
if [ -z "$labels" ] || [ "$labels" = integration ]; then
  # Two at a time: they mostly wait on the wall clock (outages, poll windows, backoff), not on the
  # CPU, and each must pass beside another (a gateway runs under load too). Serially they take
  # about 730 s here, two at a time about 350 s.
  ctest "${args[@]}" -L integration -j2 || status=1
fi
if [ "$labels" = fleet ]; then
  ctest "${args[@]}" -L fleet -j1 || status=1
fi
echo "run: $([ $status = 0 ] && echo PASSED || echo FAILED) in $((SECONDS - start)) s"
exit $status
