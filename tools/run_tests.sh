#!/bin/sh
# run_tests.sh - the README's second command (and what CI runs): install dependencies,
# build with warnings as errors, and run the whole test suite with ctest. Tests that need a
# GPU report "Skipped" on a machine without one. Extra arguments go to ctest (e.g. -L cpu).
set -eu
cd "$(dirname "$0")/.."
WITH_TEST_DEPS=1 CMAKE_ARGS="-DSIMCLR_WERROR=ON ${CMAKE_ARGS:-}" tools/setup.sh
exec ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"
