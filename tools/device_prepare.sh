#!/bin/sh
# device_prepare.sh - gather what a bare GPU machine without a package registry needs to build
# and run simclr (benchmarks/run_gpu.sh): the Debian packages of the build and run-time
# dependencies that such an image lacks (libfyaml, OpenBLAS, libjpeg-turbo, libpng, libarchive,
# zlib headers, pkgconf, and the libraries libarchive loads) and Fashion-MNIST, downloaded as .deb
# files into .device/debs (about 56 MB; ignored by git). run_gpu.sh unpacks them with `dpkg -x` into a private prefix there;
# nothing is installed into the system. The CUDA toolkit, cuDNN and NCCL come from the GPU
# machine itself (/usr/local/cuda, or PyTorch's nvidia-* wheels).
#
#   tools/device_prepare.sh            # then carry .device to the GPU machine
set -eu
cd "$(dirname "$0")/.."
DEST=.device/debs
PACKAGES="libfyaml0 libfyaml-dev libopenblas0-pthread libopenblas-pthread-dev libgfortran5
libjpeg62-turbo libjpeg62-turbo-dev libpng16-16 libpng-dev libarchive13 libarchive-dev zlib1g-dev
pkgconf pkgconf-bin libpkgconf3 dataset-fashion-mnist
libxml2 libicu72 libnettle8 liblz4-1 libzstd1 libbz2-1.0 liblzma5 libacl1"
mkdir -p "$DEST"
apt-get update -qq
# apt's download user cannot write everywhere; fetch as root into a fresh directory
(cd "$DEST" && rm -f ./*.deb && apt-get download -qq $PACKAGES 2>&1 | grep -v "unsandboxed" || true)
count=$(ls "$DEST"/*.deb | wc -l)
[ "$count" -eq "$(echo $PACKAGES | wc -w)" ] || { echo "device_prepare: only $count .deb files in $DEST" >&2; exit 1; }
du -sh "$DEST"
