#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test (unit and CLI,
# on ext4 and, as root, on XFS and btrfs loop mounts), then the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure --timeout 900 -j1)
if [ "${TREESNAP_SKIP_ASAN:-0}" != 1 ]; then
  BUILD_DIR=build-asan CMAKE_ARGS="-DTREESNAP_SANITIZE=address" BUILD_TYPE=RelWithDebInfo bash scripts/build.sh
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 900 -E '^cli[.]')
fi
