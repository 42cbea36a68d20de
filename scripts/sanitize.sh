#!/usr/bin/env bash
# The Swift test suite under the sanitizers: AddressSanitizer (out-of-bounds and use-after-free
# accesses, leaks), ThreadSanitizer (data races in the simulator's worker threads, the sweeps'
# concurrentPerform, the thread-local error state) and UndefinedBehaviorSanitizer (for the C shims).
#
# Usage: scripts/sanitize.sh [address] [thread] [undefined]   (default: all three; `make sanitize`)
#        (swiftc 6.3 has no -sanitize=undefined on Linux: that run is then reported as skipped)
#        SANITIZE_FILTER=EdgeCase scripts/sanitize.sh thread  (only the matching tests)
#
# Each sanitizer builds in its own scratch path (.build-asan, .build-tsan, .build-ubsan), a debug
# build of the package and its tests with instrumentation: several minutes each on two cores. The
# log of each run is .build-<name>/sanitize.log. Exits non-zero when any run fails or reports.
set -uo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
if [ $# -eq 0 ]; then set -- address thread undefined; fi
filter=()
if [ -n "${SANITIZE_FILTER:-}" ]; then filter=(--filter "$SANITIZE_FILTER"); fi

# OpenBLAS is not instrumented: its own thread pool is invisible to TSan and shows up as races on
# its buffers; one OpenBLAS thread keeps every reported race in code TSan can see. halt_on_error=0
# lets a run report every race before the suite's verdict.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# LeakSanitizer: XCTest's runner (swift test starts it before Swift Testing, with no XCTest case
# here) keeps its suite objects to the end of the process; those are the toolchain's, not ours.
lsan_supp=$(mktemp)
trap 'rm -f "$lsan_supp"' EXIT
printf 'leak:libXCTest.so\nleak:XCTest\n' >"$lsan_supp"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$lsan_supp:print_suppressions=0}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:print_summary=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:report_signal_unsafe=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

declare -A scratch=([address]=.build-asan [thread]=.build-tsan [undefined]=.build-ubsan)
failed=0
summary=()
for name in "$@"; do
  dir=${scratch[$name]:-}
  if [ -z "$dir" ]; then echo "unknown sanitizer $name (address, thread, undefined)"; exit 2; fi
  mkdir -p "$dir"
  log="$dir/sanitize.log"
  echo "== $name sanitizer: swift test --sanitize=$name --scratch-path $dir (log: $log)"
  start=$(date +%s)
  "$SWIFT" test --sanitize="$name" --scratch-path "$dir" "${filter[@]}" >"$log" 2>&1
  status=$?
  seconds=$(( $(date +%s) - start ))
  if grep -q "unsupported option '-sanitize=$name'" "$log"; then
    summary+=("$name: not supported by this Swift toolchain on this platform (skipped; see $log)")
    continue
  fi
  reports=$(grep -cE "^(==[0-9]+==ERROR: |WARNING: ThreadSanitizer|SUMMARY: (Address|Thread|UndefinedBehavior)Sanitizer)|runtime error:" "$log")
  verdict=$(grep -E "Test run with [0-9]+ tests? .*(passed|failed)|Executed [0-9]+ tests" "$log" | tail -2 | tr '\n' ' ')
  if [ $status -ne 0 ] || [ "$reports" -ne 0 ]; then
    failed=1
    summary+=("$name: FAILED (exit $status, $reports sanitizer reports, ${seconds}s) $verdict")
    grep -nE -A12 "^(==[0-9]+==ERROR: |WARNING: ThreadSanitizer)|runtime error:" "$log" | head -80
  else
    summary+=("$name: clean (${seconds}s) $verdict")
  fi
done
echo
printf '%s\n' "${summary[@]}"
exit $failed
