#!/bin/sh
# setup.sh - install simclr's dependencies from Debian's packages (when run as root and a
# package is missing) and build it into ./build. Safe to run again: it installs nothing that
# is present and rebuilds only what changed.
#
#   tools/setup.sh                      # Release build
#   WITH_TEST_DEPS=1 tools/setup.sh     # also PyTorch/torchvision/Pillow (parity tests, baselines),
#                                       # scikit-image (photos for benchmarks/run_loader.sh) and the
#                                       # TensorBoard reader (PyPI, pinned) in $BUILD_DIR/tb-venv
#   BUILD_DIR=build-asan CMAKE_ARGS=-DSIMCLR_SANITIZE=ON tools/setup.sh
#
# The CUDA backend is built when a CUDA toolkit is found (/usr/local/cuda); it is not
# installed from here (NVIDIA's packages are not Debian's).
set -eu
cd "$(dirname "$0")/.."

PACKAGES="build-essential cmake pkg-config git libfyaml-dev libopenblas-dev zlib1g-dev
libjpeg62-turbo-dev libpng-dev libarchive-dev dataset-fashion-mnist python3 python3-matplotlib"
if [ "${WITH_TEST_DEPS:-0}" = 1 ]; then
    PACKAGES="$PACKAGES python3-numpy python3-torch python3-torchvision python3-venv python3-pil python3-skimage"
fi

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages:$missing" >&2
        echo "setup: run this script as root, or: sudo apt-get install$missing" >&2
        exit 1
    fi
    echo "setup: installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$(nproc)"

# The real TensorBoard reader for tests/test_tensorboard.c: Debian 12 does not package it, so
# it comes from PyPI (pinned) into a venv inside the build directory.
if [ "${WITH_TEST_DEPS:-0}" = 1 ]; then
    VENV="$BUILD_DIR/tb-venv"
    if ! "$VENV/bin/python" -c "import tensorboard.backend.event_processing.event_accumulator" 2>/dev/null; then
        echo "setup: installing the TensorBoard reader into $VENV"
        rm -rf "$VENV"
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tools/requirements-tensorboard.txt
    fi
fi
