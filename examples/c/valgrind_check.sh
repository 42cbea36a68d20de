#!/usr/bin/env bash
# Runs every example under examples/c in valgrind's memcheck: no invalid read or write, no use of
# uninitialised memory, no leak (definite or possible; the Swift runtime's one-time metadata caches
# are suppressed, see valgrind.supp). Exits 0 with a note when valgrind is not installed.
#
# Usage: examples/c/valgrind_check.sh   (after `make build`; `make test-c` runs it)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind: not installed, memory check of examples/c skipped"
  exit 0
fi
work=.build/valgrind
mkdir -p "$work"
# The library as shipped: `make build` links it without debug information, which valgrind 3.19
# (Debian 12) could not read (DWARF 5); its symbols are all there for the reports.
lib=.build/release
if readelf -S "$lib/libsgdnoise.so" | grep -q '\.debug_info'; then
  echo "valgrind: $lib/libsgdnoise.so carries debug information: build it with 'make build'"; exit 1
fi
status=0
for src in examples/c/*.c; do
  name=$(basename "$src" .c)
  gcc -std=c99 -g -O0 -Iinclude "$src" -L"$lib" -lsgdnoise -lm -Wl,-rpath,"$PWD/$lib" -o "$work/$name"
  # valgrind exits 99 when it finds an error, else with the program's own exit status.
  rc=0
  valgrind -q --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=99 \
    --suppressions=examples/c/valgrind.supp "$work/$name" >"$work/$name.out" 2>"$work/$name.valgrind" || rc=$?
  if [ $rc -eq 0 ]; then
    echo "== $name: valgrind clean"
  elif [ $rc -eq 99 ]; then
    echo "== $name: valgrind found errors:"; cat "$work/$name.valgrind"; status=1
  else
    echo "== $name: the program failed (exit $rc) under valgrind:"; cat "$work/$name.out" "$work/$name.valgrind"; status=1
  fi
done
exit $status
