#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test (unit and CLI,
# on ext4 and, as root, on XFS and btrfs loop mounts), then the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, then the concurrency test and the unit tests of the
# shared-state modules (gc, database, store) under ThreadSanitizer. Exits non-zero when any test
# fails. TREESNAP_SKIP_ASAN=1 / TREESNAP_SKIP_TSAN=1 skip a sanitizer stage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure --timeout 900 -j1)
if [ "${TREESNAP_SKIP_ASAN:-0}" != 1 ]; then
  BUILD_DIR=build-asan CMAKE_ARGS="-DTREESNAP_SANITIZE=address" BUILD_TYPE=RelWithDebInfo bash scripts/build.sh
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 900 -E '^cli[.]')
fi
if [ "${TREESNAP_SKIP_TSAN:-0}" != 1 ]; then
  # Only the library and the unit tests: the CLI tests exercise processes, not threads.
  BUILD_DIR=build-tsan CMAKE_ARGS="-DTREESNAP_SANITIZE=thread -DTREESNAP_BUILD_BENCH=OFF" BUILD_TYPE=RelWithDebInfo \
    BUILD_TARGET=treesnap_unit_tests bash scripts/build.sh
  (cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ctest --output-on-failure --timeout 600 -R '^(ConcurrencyTest|GcTest|DatabaseTest|StoreTest)[.]')
fi
