#!/bin/bash
# run_gpu.sh - everything that needs a GPU, in phases that each fit one short remote command:
# build simclr with CUDA, run the GPU tests (the CUDA ops, fused loss and optimizer,
# augmentation, training steps, exact resume and the 1-rank NCCL communicator against the CPU
# reference), the GPU benchmarks beside their PyTorch baselines on the same GPU in the same run,
# and the quickstart evaluation on the GPU beside PyTorch. Made for a bare GPU machine that
# reaches no package registry (carry .device from tools/device_prepare.sh: its .deb files are
# unpacked into a private prefix with dpkg -x); where the Debian packages are installed it uses
# those.
#
#   benchmarks/run_gpu.sh build test           # then: bench, eval (or: all)
#
# Phases: deps (unpack the carried packages; every phase runs it), build (build-gpu/, CUDA on),
# test (ctest -L gpu), bench (bench step / ntxent / lars / loader / allreduce, each beside its
# PyTorch baseline), eval (the quickstart recipe on the GPU, evaluated, beside a PyTorch SimCLR
# of the same recipe trained in the same run: benchmarks/run_eval.sh).
# Results go to $RESULTS (default: $OUT when set, else benchmarks/results/gpu): build.log,
# info.txt, gpu_tests.log, bench.jsonl (JSON lines of both implementations), bench.log,
# eval.jsonl, eval.log.
# PYTHON is the interpreter with PyTorch (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
PREFIX=${PREFIX:-/tmp/simclr-deps}
BUILD=${BUILD:-build-gpu}
RESULTS=${RESULTS:-${OUT:-$ROOT/benchmarks/results/gpu}}
mkdir -p "$RESULTS"
JOBS=$(nproc)
ARCH_LIB=lib/x86_64-linux-gnu

log() { echo "run_gpu: $*" >&2; }

# ---- deps: the carried Debian packages in a private prefix, cuDNN and NCCL located ----------
phase_deps() {
    if [ -d .device/debs ] && ! pkg-config --exists libfyaml 2>/dev/null; then
        if [ ! -f "$PREFIX/.unpacked" ]; then
            log "unpacking $(ls .device/debs/*.deb | wc -l) packages into $PREFIX"
            mkdir -p "$PREFIX"
            for f in .device/debs/*.deb; do dpkg -x "$f" "$PREFIX"; done
            # absolute symlinks (zlib's libz.so -> /lib/...) point outside the prefix: re-aim them
            find "$PREFIX" -type l | while read -r l; do
                t=$(readlink "$l")
                case "$t" in /*) if [ -e "$PREFIX$t" ]; then ln -sf "$PREFIX$t" "$l";
                                 elif [ ! -e "$t" ]; then
                                     sys=$(ls /lib/x86_64-linux-gnu/"$(basename "$t" | sed 's/\.so\..*/.so/')"* 2>/dev/null | head -1)
                                     [ -n "$sys" ] && ln -sf "$sys" "$l"; fi ;; esac
            done
            # a library the system already has (same soname) is used from the system, so the
            # prefix never shadows a newer one that PyTorch or CMake were built against: the
            # prefix's file becomes a link to the system's
            ldconfig -p > "$PREFIX/.ldcache"
            for f in "$PREFIX/usr/$ARCH_LIB"/lib*.so.*; do
                [ -f "$f" ] && [ ! -L "$f" ] || continue
                so=$(basename "$f" | sed 's/\(\.so\.[0-9]*\).*/\1/')
                sys=$(awk -v so="$so" '$1 == so && /x86-64/ { print $NF; exit }' "$PREFIX/.ldcache")
                if [ -n "$sys" ]; then ln -sf "$sys" "$f"; fi
            done
            touch "$PREFIX/.unpacked"
        fi
        export PATH="$PREFIX/usr/bin:$PATH"
        export PKG_CONFIG_LIBDIR="$PREFIX/usr/$ARCH_LIB/pkgconfig:$PREFIX/usr/$ARCH_LIB/openblas-pthread/pkgconfig:$PREFIX/usr/share/pkgconfig"
        export PKG_CONFIG_SYSROOT_DIR="$PREFIX"
        export LD_LIBRARY_PATH="$PREFIX/usr/$ARCH_LIB:$PREFIX/usr/$ARCH_LIB/openblas-pthread:${LD_LIBRARY_PATH:-}"
        export LIBRARY_PATH="$PREFIX/usr/$ARCH_LIB:${LIBRARY_PATH:-}"
        export CPATH="$PREFIX/usr/include:$PREFIX/usr/include/x86_64-linux-gnu:${CPATH:-}"
        CMAKE_EXTRA=(-DCMAKE_PREFIX_PATH="$PREFIX/usr" -DPKG_CONFIG_EXECUTABLE="$PREFIX/usr/bin/pkgconf")
        FMNIST="$PREFIX/usr/share/datasets/fashion-mnist"
    else
        CMAKE_EXTRA=()
        FMNIST=/usr/share/datasets/fashion-mnist
    fi
    # cuDNN and NCCL: the toolkit's own, else the nvidia-* wheels next to PyTorch
    CUDNN_LIB=$(ls /usr/local/cuda/lib64/libcudnn.so* /usr/lib/x86_64-linux-gnu/libcudnn.so* 2>/dev/null | head -1 || true)
    NCCL_LIB=$(ls /usr/local/cuda/lib64/libnccl.so* /usr/lib/x86_64-linux-gnu/libnccl.so* 2>/dev/null | head -1 || true)
    if [ -z "$CUDNN_LIB" ] || [ -z "$NCCL_LIB" ]; then
        NV=$("$PY" -c "import nvidia; print(list(nvidia.__path__)[0])" 2>/dev/null || true)
        [ -n "$NV" ] || { log "cuDNN/NCCL not under /usr/local/cuda and no nvidia wheels for $PY"; exit 1; }
        [ -n "$CUDNN_LIB" ] || CUDNN_LIB=$(find "$NV" -name 'libcudnn.so.[0-9]*' | sort | head -1)
        [ -n "$NCCL_LIB" ] || NCCL_LIB=$(find "$NV" -name 'libnccl.so.[0-9]*' | sort | head -1)
        for h in cudnn.h nccl.h; do
            d=$(dirname "$(find "$NV" -name "$h" | head -1)")
            export CPATH="$d:${CPATH:-}"
        done
    fi
    [ -n "$CUDNN_LIB" ] && [ -n "$NCCL_LIB" ] || { log "cuDNN or NCCL library not found"; exit 1; }
    export LD_LIBRARY_PATH="$(dirname "$CUDNN_LIB"):$(dirname "$NCCL_LIB"):${LD_LIBRARY_PATH:-}"
    CMAKE_EXTRA+=(-DCUDNN_LIBRARY="$CUDNN_LIB" -DNCCL_LIBRARY="$NCCL_LIB")
    log "cuDNN $CUDNN_LIB, NCCL $NCCL_LIB"
}

phase_build() {
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSIMCLR_CUDA=ON -DSIMCLR_WERROR=ON "${CMAKE_EXTRA[@]}" > "$RESULTS/build.log"
    cmake --build "$BUILD" -j "$JOBS" >> "$RESULTS/build.log" 2>&1 || { tail -40 "$RESULTS/build.log"; exit 1; }
    "$BUILD/simclr" info | tee "$RESULTS/info.txt"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >> "$RESULTS/info.txt" 2>&1 || true
}

phase_test() {
    # the GPU tests, then the CPU tests that share code with them (a broken build shows at once)
    ctest --test-dir "$BUILD" -L gpu --output-on-failure -j 2 2>&1 | tee "$RESULTS/gpu_tests.log" || true
    ctest --test-dir "$BUILD" -R 'test_op_tables|test_loss_optim|test_ops_cpu$' 2>&1 | tail -5 | tee -a "$RESULTS/gpu_tests.log" || true
}

# one benchmark line of each implementation into bench.jsonl; their stderr into bench.log
both() { "$@" 2>> "$RESULTS/bench.log" | tee -a "$RESULTS/bench.jsonl" || log "failed: $*"; }

phase_bench() {
    local S=("$BUILD/simclr" bench)
    # (a) ResNet-18 CIFAR stem 32x32, batch 512; (b) ResNet-50 224x224, batch 256; fp32 and TF32
    for shape in "--arch resnet18 --stem cifar --width 1 --size 32 --channels 3 --batch 512 --head-out 128" \
                 "--arch resnet50 --stem imagenet --width 1 --size 224 --channels 3 --batch 256 --head-out 128"; do
        for tf32 in 0 1; do
            # shellcheck disable=SC2086
            both "${S[@]}" step --device cuda $shape --tf32 $tf32 --iters 20 --warmup 5
            flag=$([ $tf32 = 1 ] && echo --tf32 || true)
            # shellcheck disable=SC2086
            both "$PY" tools/bench_torch.py --device cuda $shape $flag --iters 20 --warmup 5
            # shellcheck disable=SC2086
            both "$PY" tools/bench_torch.py --device cuda $shape $flag --compile --iters 20 --warmup 5
        done
    done
    both "${S[@]}" ntxent --device cuda --sizes 512,2048,8192,32768,131072 --dim 128 --precision both
    both "$PY" tools/bench_ntxent_torch.py --device cuda --sizes 512,2048,8192,32768,131072 --dim 128
    both "${S[@]}" lars --device cuda --optim all
    both "$PY" tools/bench_lars_torch.py --device cuda
    # the loader: an ImageNet-like JPEG folder, two 224x224 views, workers 1..16
    local data=/tmp/simclr-bench-data
    [ -d "$data/photos" ] || "$PY" tools/make_photo_folder.py "$data/photos" --count 2000 >> "$RESULTS/bench.log" 2>&1
    both "${S[@]}" loader --dataset imagefolder --path "$data/photos" --size 224 --batch 256 --batches 8 --warmup 1 --workers 1,4,8,16
    both "$PY" tools/bench_loader_torch.py --dataset imagefolder --path "$data/photos" --size 224 --batch 256 --batches 8 --warmup 1 --workers 1,4,8,16
    # the gradient all-reduce on this GPU and the scaling model from the ResNet-50 TF32 step time
    local step_ms
    step_ms=$("$PY" - "$RESULTS/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ms = [r["ms_median"] for r in rows if r.get("bench") == "step" and r.get("impl") == "simclr"
      and r.get("arch") == "resnet50" and r.get("precision") == "tf32"]
print(f"{ms[-1]:.3f}" if ms else "0")
PY
)
    both "${S[@]}" allreduce --device cuda --step-ms "$step_ms"
}

phase_eval() {
    DEVICE=cuda SIMCLR="$BUILD/simclr" PYTHON="$PY" DATA="$FMNIST" OUT="$RESULTS/eval.jsonl" \
        benchmarks/run_eval.sh 2> "$RESULTS/eval.log"
}

phase_deps
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(build test)
[ "${phases[0]}" = all ] && phases=(build test bench eval)
for p in "${phases[@]}"; do
    case "$p" in
        deps) ;;
        build|test|bench|eval) log "phase $p"; "phase_$p" ;;
        *) log "unknown phase '$p' (deps, build, test, bench, eval, all)"; exit 2 ;;
    esac
done
