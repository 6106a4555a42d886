#!/bin/sh
# run_loader.sh - the loader benchmarks of benchmarks/RESULTS.md: `simclr bench loader` and
# torchvision's transforms (PIL backend, Debian's python3-torchvision) doing the same work, per
# worker count, on (a) an ImageNet-like JPEG folder (about 400x350, quality 90-96, made from
# python3-skimage's photographs by tools/make_photo_folder.py) producing two 224x224 views,
# and (b) CIFAR-size 32x32 images held in memory (CIFAR-10 binary format, same tool).
# Appends JSON lines to benchmarks/results/cpu/loader.jsonl and prints them. Build first
# (WITH_TEST_DEPS=1 tools/setup.sh: python3-torchvision, python3-pil, python3-skimage).
#
#   WORKERS=1,2,4 IMAGES=1000 benchmarks/run_loader.sh
set -eu
cd "$(dirname "$0")/.."
OUT=benchmarks/results/cpu/loader.jsonl
DATA=${DATA:-/tmp/simclr-bench-data}
IMAGES=${IMAGES:-600}
WORKERS=${WORKERS:-$(python3 -c "import os; n=os.cpu_count(); print(','.join(str(1<<i) for i in range(n.bit_length()) if 1<<i <= n))")}
mkdir -p "$(dirname "$OUT")"
if [ ! -d "$DATA/photos" ] || [ ! -f "$DATA/cifar/data_batch_5.bin" ]; then
    rm -rf "$DATA"
    /usr/bin/python3 tools/make_photo_folder.py "$DATA/photos" --count "$IMAGES" --cifar "$DATA/cifar" --cifar-count 2000
fi
for _ in $(seq "${ROUNDS:-1}"); do
    build/simclr bench loader --dataset imagefolder --path "$DATA/photos" --size 224 --batch 64 --batches 8 \
        --warmup 1 --workers "$WORKERS" | tee -a "$OUT"
    /usr/bin/python3 tools/bench_loader_torch.py --dataset imagefolder --path "$DATA/photos" --size 224 --batch 64 \
        --batches 8 --warmup 1 --workers "$WORKERS" | tee -a "$OUT"
    build/simclr bench loader --dataset cifar10 --path "$DATA/cifar" --size 32 --batch 256 --batches 40 \
        --warmup 2 --workers "$WORKERS" | tee -a "$OUT"
    /usr/bin/python3 tools/bench_loader_torch.py --dataset cifar10 --path "$DATA/cifar" --size 32 --batch 256 \
        --batches 40 --warmup 2 --workers "$WORKERS" | tee -a "$OUT"
done
