#!/usr/bin/env bash
# The fleet test (issue 18): a three-node RabbitMQ cluster on loopback, real citygated gateways and
# light simulated gateway sessions, node outages, a platform consumer that must receive every
# reading. See tests/fleet/README.md.
#
#   tests/fleet/run.sh                       full run: 10 citygated + 300 light sessions; one node
#                                            down 20 s, then two nodes down 20 s (about 7 min)
#   tests/fleet/run.sh --slice               the CI slice: 3 + 30, one node down (about 3 min)
#   tests/fleet/run.sh --gateways N --light M [--classic] [--kill] [--consumer CMD] [--keep] ...
#   tests/fleet/run.sh --no-build ...        use the existing build/default
#
# Installs what it needs (toolchains/install-deps.sh fleet), builds the default preset, runs
# tests/fleet/fleet.py; exit status 1 when a gateway misses readings or an acceptance time is not
# met. Everything it starts (RabbitMQ nodes and their epmd, daemons, simulators) is stopped at the
# end, also on failure, Ctrl-C or its --timeout.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
build=1
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    -h|--help) sed -n '2,16p' "$0"; exec /usr/bin/python3 tests/fleet/fleet.py --help ;;
    *) args+=("$a") ;;
  esac
done
toolchains/install-deps.sh fleet
if [ $build = 1 ]; then
  cmake --preset default >/dev/null
  cmake --build --preset default
fi
exec /usr/bin/python3 tests/fleet/fleet.py "${args[@]}"
