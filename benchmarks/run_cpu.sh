#!/bin/sh
# run_cpu.sh - the CPU benchmarks of benchmarks/RESULTS.md: the SimCLR training step of
# simclr and of PyTorch (Debian's python3-torch, eager, channels_last) on the same shapes and
# thread count, one after the other in the same run. Appends JSON lines to
# benchmarks/results/cpu/step.jsonl and prints them. Build first (tools/setup.sh).
set -eu
cd "$(dirname "$0")/.."
OUT=benchmarks/results/cpu/step.jsonl
THREADS=${THREADS:-$(nproc)}
mkdir -p "$(dirname "$OUT")"
run() { # arch stem width size channels batch
    set -- --arch "$1" --stem "$2" --width "$3" --size "$4" --channels "$5" --batch "$6" --threads "$THREADS" --iters 10
    build/benchmarks/bench_step --device cpu "$@" | tee -a "$OUT"
    /usr/bin/python3 tools/bench_torch.py --device cpu "$@" | tee -a "$OUT"
}
run resnet18 cifar 0.125 28 1 256   # the quickstart: Fashion-MNIST, width 1/8
run resnet18 cifar 0.25 32 3 128    # CIFAR-size RGB, width 1/4
