#!/bin/sh
# run_cpu.sh - the CPU benchmarks of benchmarks/RESULTS.md: the SimCLR training step of
# simclr and of PyTorch (Debian's python3-torch, eager, channels_last) on the same shapes and
# thread count, alternating over ROUNDS rounds (default 2) so that machine drift hits both
# alike; each line is the median of 20 timed steps after 3 warm-up steps. Appends JSON lines to
# benchmarks/results/cpu/step.jsonl and prints them. Build first (tools/setup.sh).
set -eu
cd "$(dirname "$0")/.."
OUT=benchmarks/results/cpu/step.jsonl
THREADS=${THREADS:-$(nproc)}
mkdir -p "$(dirname "$OUT")"
run() { # arch stem width size channels batch
    set -- --arch "$1" --stem "$2" --width "$3" --size "$4" --channels "$5" --batch "$6" --threads "$THREADS" --iters 20 --warmup 3
    for _ in $(seq "${ROUNDS:-2}"); do
        build/simclr bench step --device cpu "$@" | tee -a "$OUT"
        /usr/bin/python3 tools/bench_torch.py --device cpu "$@" | tee -a "$OUT"
    done
}
# The roofline reference: a large dense SGEMM (OpenBLAS through numpy) on the same threads.
OPENBLAS_NUM_THREADS=$THREADS /usr/bin/python3 - <<'PY' | tee -a "$OUT"
import datetime, json, time, numpy as np
n = 2048
a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
a @ b
ts = []
for _ in range(10):
    t0 = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t0)
ts.sort()
print(json.dumps({"bench": "sgemm_peak", "impl": "numpy-openblas", "date": datetime.date.today().isoformat(),
                  "device": "cpu", "n": n, "ms_median": round(1e3 * ts[5], 3), "gflops": round(2 * n**3 / ts[5] / 1e9, 1)}))
PY
run resnet18 cifar 0.125 28 1 256   # the quickstart: Fashion-MNIST, width 1/8
run resnet18 cifar 0.25 32 3 128    # CIFAR-size RGB, width 1/4
