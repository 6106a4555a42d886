#!/bin/sh
# quickstart.sh - the README's first command: install dependencies, build, and pretrain the
# embedded default (a width-1/8 ResNet-18 on Fashion-MNIST, on the GPU when one is present,
# else on the CPU), ending with the linear-probe accuracy of the pretrained encoder beside
# the same encoder at random initialisation. Extra arguments go to `simclr train`.
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
exec build/simclr train "$@"
