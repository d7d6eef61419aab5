#!/usr/bin/env bash
# Runs a command on monotonic and boot clocks that read about 60 s, as on a gateway booted a
# minute ago (a time namespace: needs root and Linux 5.6). Code that takes steady_clock's epoch
# for "long ago" fails there. Where no time namespace can be made, runs the command as it is and
# says so on stderr.
#
#   tests/fresh-boot.sh COMMAND [ARG...]
set -euo pipefail
offset=$((60 - $(cut -d. -f1 /proc/uptime)))
if unshare --time --monotonic="$offset" --boottime="$offset" true 2>/dev/null; then
  echo "fresh-boot: monotonic and boot clocks read 60 s (time namespace)" >&2
  exec unshare --time --monotonic="$offset" --boottime="$offset" "$@"
fi
echo "fresh-boot: no time namespace here; running on the machine's own clocks" >&2
exec "$@"
