#!/usr/bin/env bash
# Configures and builds treesnap into BUILD_DIR (default build/), Release unless told otherwise;
# BUILD_TARGET builds one target only (the sanitizer stages of test.sh need only the unit tests).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
