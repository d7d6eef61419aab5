#!/usr/bin/env bash
# The layout check CI runs: every tracked C++ file must be as .clang-format lays it out.
# With --tidy, clang-tidy (.clang-tidy) also runs on the C++ sources changed since REF (default:
# the previous commit), against the compile database of the default preset.
#
#   toolchains/check-style.sh                 layout of every file (a second or two)
#   toolchains/check-style.sh --fix           rewrite the files in place
#   toolchains/check-style.sh --tidy [REF]    + clang-tidy on the changed sources
set -euo pipefail
cd "$(dirname "$0")/.."
mode=check
ref=HEAD~1
case "${1:-}" in
  --fix) mode=fix ;;
  --tidy) mode=tidy; ref=${2:-HEAD~1} ;;
  "") ;;
  *) echo "check-style: unknown argument $1" >&2; exit 2 ;;
esac
toolchains/install-deps.sh "$([ "$mode" = tidy ] && echo tidy || echo lint)"

mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.cc' ':!tests/data')
if [ "$mode" = fix ]; then
  clang-format-14 -i "${files[@]}"
  exit 0
fi
if ! clang-format-14 --dry-run --Werror "${files[@]}"; then
  echo "check-style: files above are not laid out as .clang-format says; toolchains/check-style.sh --fix" >&2
  exit 1
fi
echo "check-style: ${#files[@]} files laid out as .clang-format says"

if [ "$mode" = tidy ]; then
  [ -f build/default/compile_commands.json ] || cmake --preset default >/dev/null
  mapfile -t changed < <(git diff --name-only --diff-filter=AM "$ref" -- 'gateway/*.cpp' 'tests/*.cpp' 2>/dev/null || true)
  if [ ${#changed[@]} -eq 0 ]; then
    echo "check-style: no C++ sources changed since $ref"
    exit 0
  fi
  clang-tidy-14 -p build/default --quiet "${changed[@]}"
fi
