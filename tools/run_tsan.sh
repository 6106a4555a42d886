#!/bin/sh
# run_tsan.sh - the loader under ThreadSanitizer: builds build-tsan (SIMCLR_TSAN=ON, no CUDA)
# and runs the tests whose threads are the loader's own pthreads (test_loader,
# test_imagefolder); any reported race fails the run. Tests that run OpenMP regions are left
# out: Debian's libgomp is not instrumented, so TSan would report its internal
# synchronisation. Costs 5-15x the normal run time.
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-tsan}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMCLR_TSAN=ON -DSIMCLR_CUDA=OFF > /dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target test_loader test_imagefolder
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
    exec ctest --test-dir "$BUILD_DIR" --output-on-failure -R '^(test_loader|test_imagefolder)$' "$@"
