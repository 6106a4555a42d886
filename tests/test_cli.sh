#!/bin/sh
# test_cli.sh - the `simclr` command line: help texts, exit codes, configuration errors that
# name file:line:col and the key, --print-config, info, preview, a tiny train + eval linear run,
# the stop signals (Ctrl-C 130, SIGTERM/SIGUSR1 0 after a checkpoint, a second signal at once),
# --resume, export, embed and model.init_from; the all-reduce benchmark's overlap measurement.
# Usage: test_cli.sh path/to/simclr
set -u
SIMCLR=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0; checks=0
pass() { checks=$((checks + 1)); }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL: $*"; }

# expect CODE PATTERN -- command...: exit status CODE and output matching PATTERN
expect() {
    code=$1; pattern=$2; shift 3
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -ne "$code" ]; then fail "$* exited $rc, expected $code: $out"; return; fi
    if ! printf '%s' "$out" | grep -q -- "$pattern"; then fail "$*: output lacks '$pattern': $out"; return; fi
    pass
}

expect 0 "commands:" -- "$SIMCLR" --help
expect 2 "usage: simclr" -- "$SIMCLR"
expect 2 "unknown command 'trian'" -- "$SIMCLR" trian
expect 0 "model.head.out_dim" -- "$SIMCLR" train --help
expect 0 "CPU cores" -- "$SIMCLR" info
expect 0 "arch: resnet18" -- "$SIMCLR" train --print-config
expect 0 "width: 0.5" -- "$SIMCLR" train --print-config --set model.width=0.5
expect 2 "unknown key 'model.widht' (did you mean 'model.width'?)" -- "$SIMCLR" train --set model.widht=0.5
expect 2 "model.width: expected a number, got 'abc'" -- "$SIMCLR" train --set model.width=abc
expect 2 "unknown option '--bogus'" -- "$SIMCLR" train --bogus

printf 'model:\n  arch: resnet18\n  head:\n    out_dimm: 64\n' > "$TMP/bad.yaml"
expect 2 "$TMP/bad.yaml:4:5: unknown key 'model.head.out_dimm'" -- "$SIMCLR" train --config "$TMP/bad.yaml"
printf 'train:\n  batch_size: 1\n' > "$TMP/range.yaml"
expect 2 "range.yaml:2:15: train.batch_size: 1 is out of range" -- "$SIMCLR" train --config "$TMP/range.yaml"
expect 1 "nope.yaml: cannot open" -- "$SIMCLR" train --config "$TMP/nope.yaml"
expect 1 "no CUDA GPU is visible\|built without CUDA\|GPU" -- "$SIMCLR" train --device cuda:7 --set run.dir="$TMP/runs"

# preview and the data options of encoded datasets
expect 2 "data.image_size is required for data.dataset: imagefolder" -- "$SIMCLR" preview --set data.dataset=imagefolder --set data.path="$TMP" --set eval.linear_probe=false
expect 1 "nowhere: cannot open the image folder" -- "$SIMCLR" preview --set data.dataset=imagefolder --set data.path="$TMP/nowhere" --set data.image_size=64 --set eval.linear_probe=false
expect 2 "samples 'x'" -- "$SIMCLR" preview --samples x
expect 0 "usage: simclr bench loader" -- "$SIMCLR" bench loader --help
# the all-reduce benchmark measures the hidden fraction with 2 CPU ranks (a tiny model)
expect 0 '"bench": "allreduce_overlap".*"hidden_fraction": [01]\.[0-9]' -- "$SIMCLR" bench allreduce --device cpu \
    --ranks 2 --count 1000 --iters 1 --warmup 0 --bucket-mb 0.01 --arch resnet18 --width 0.0625 --size 8 --overlap-iters 1

# tools/make_shards.py -> tar shards -> preview (needs Debian's Pillow to draw the images)
if /usr/bin/python3 -c "import PIL" 2> /dev/null; then
    /usr/bin/python3 - "$TMP/folder" <<'PY'
import os, sys
from PIL import Image
for i in range(6):
    d = os.path.join(sys.argv[1], "ab"[i % 2])
    os.makedirs(d, exist_ok=True)
    Image.new("RGB", (40 + i, 30 + i), (40 * i, 255 - 40 * i, 90)).save(os.path.join(d, f"{i}.{'png' if i % 3 else 'jpg'}"))
PY
    /usr/bin/python3 "$(dirname "$0")/../tools/make_shards.py" "$TMP/folder" "$TMP/shards" --per-shard 4 > /dev/null
    expect 0 "4 samples of shards:shards, two 32x32 views" -- "$SIMCLR" preview --set data.dataset=shards \
        --set data.path="$TMP/shards" --set data.cache=off --set data.image_size=32 --set train.batch_size=4 \
        --set eval.linear_probe=false --samples 4 --out "$TMP/shards.png"
else
    echo "note: /usr/bin/python3 has no PIL; the shard converter is not tested"
fi

if [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    expect 0 "3 samples of fashion_mnist/train, two 28x28 views" -- "$SIMCLR" preview --samples 3 --out "$TMP/preview.png"
    if [ "$(head -c 4 "$TMP/preview.png" | od -An -tx1 | tr -d ' \n')" = "89504e47" ]; then pass; else fail "preview.png is not a PNG"; fi
    expect 0 "random init:" -- "$SIMCLR" train --device cpu --set run.dir="$TMP/runs" --name cli \
        --set model.width=0.0625 --set train.batch_size=32 --set train.max_steps=3 \
        --set eval.probe_train_samples=500 --set eval.probe_test_samples=200
    expect 0 "pretrained encoder:" -- "$SIMCLR" eval linear "$TMP/runs/cli" --set eval.probe_train_samples=300 \
        --set eval.probe_test_samples=100
    expect 1 "no such run directory" -- "$SIMCLR" eval linear "$TMP/runs/none"
    expect 2 "usage: simclr eval linear|knn" -- "$SIMCLR" eval bogus "$TMP/runs/cli"
    expect 0 "kNN evaluation (k 200" -- "$SIMCLR" eval knn "$TMP/runs/cli" --set eval.probe_train_samples=300 \
        --set eval.probe_test_samples=100
    for f in linear.json linear_confusion.png linear_confusion.txt knn.json knn_confusion.png; do
        if [ -s "$TMP/runs/cli/eval/final/$f" ]; then pass; else fail "eval report $f missing"; fi
    done
    if ls "$TMP"/runs/cli/events.out.tfevents.* > /dev/null 2>&1 && [ -s "$TMP/runs/cli/projector_config.pbtxt" ]; then
        pass
    else
        fail "no TensorBoard event file or projector in the run directory"
    fi
    expect 0 "pretrained encoder:" -- "$SIMCLR" finetune "$TMP/runs/cli" --label-fraction 0.005 --set finetune.epochs=1 \
        --set finetune.batch_size=30 --set finetune.baseline=false --set eval.probe_test_samples=100
    if [ "$(grep -vc '^#' "$TMP/runs/cli/finetune/labels-0.5pct/label_subset.txt" 2>/dev/null)" = 300 ] &&
        [ -s "$TMP/runs/cli/finetune/labels-0.5pct/report.json" ]; then
        pass
    else
        fail "finetune outputs: $(ls "$TMP/runs/cli/finetune/labels-0.5pct" 2>&1)"
    fi
    expect 2 "finetune.label_fraction: 2 is out of range" -- "$SIMCLR" finetune "$TMP/runs/cli" --label-fraction 2
    if python3 -c "import matplotlib" 2>/dev/null; then
        expect 0 "knn.png" -- python3 "$(dirname "$0")/../tools/plot_run.py" "$TMP/runs/cli"
    else
        echo "note: python3-matplotlib not installed; tools/plot_run.py is not run"
    fi

    # Ctrl-C: stop at a step boundary, save a checkpoint, exit 130
    "$SIMCLR" train --device cpu --set run.dir="$TMP/runs" --name sigint --set model.width=0.0625 \
        --set train.batch_size=32 --set run.log_every=1 --set eval.linear_probe=false > "$TMP/sigint.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        [ -s "$TMP/runs/sigint/metrics.jsonl" ] && break
        sleep 0.1
    done
    kill -INT "$pid"
    wait "$pid"; rc=$?
    if [ "$rc" -eq 130 ] && ls "$TMP"/runs/sigint/checkpoints/step_*.safetensors > /dev/null 2>&1 &&
        grep -q "the state is saved in" "$TMP/sigint.log"; then
        pass
    else
        fail "Ctrl-C: exit $rc, checkpoints: $(ls "$TMP/runs/sigint/checkpoints" 2>&1), log: $(tail -3 "$TMP/sigint.log")"
    fi

    # start a run in the background and wait until it has logged a step
    TINY="--device cpu --set run.dir=$TMP/runs --set model.width=0.0625 --set train.batch_size=32 --set run.threads=1
          --set run.log_every=1 --set eval.linear_probe=false --set train.checkpoint_every=2"
    start_run() { # name
        "$SIMCLR" train $TINY --name "$1" --resume auto > "$TMP/$1.log" 2>&1 &
        pid=$!
        for _ in $(seq 600); do
            [ -s "$TMP/runs/$1/metrics.jsonl" ] && break
            sleep 0.1
        done
    }
    # SIGTERM and SIGUSR1 (preemption): a checkpoint at the next step boundary, then exit 0
    for sig in TERM USR1; do
        start_run "sig$sig"
        kill -"$sig" "$pid"
        wait "$pid"; rc=$?
        if [ "$rc" -eq 0 ] && grep -q "exiting with status 0" "$TMP/sig$sig.log" &&
            ls "$TMP/runs/sig$sig"/checkpoints/step_*.safetensors > /dev/null 2>&1; then
            pass
        else
            fail "SIG$sig: exit $rc, log: $(tail -3 "$TMP/sig$sig.log")"
        fi
    done
    # --resume auto continues the same run directory and metrics
    steps=$(ls "$TMP/runs/sigTERM/checkpoints" | sed -n 's/step_0*\([0-9][0-9]*\).safetensors/\1/p' | sort -n | tail -1)
    expect 0 "resumed:    from step $steps" -- "$SIMCLR" train $TINY --name sigTERM --resume auto \
        --set train.max_steps=$((steps + 2))
    if [ "$(grep -c '"step"' "$TMP/runs/sigTERM/metrics.jsonl")" -eq $((steps + 2)) ] && [ ! -e "$TMP/runs/sigTERM-2" ]; then
        pass
    else
        fail "resumed metrics: $(cat "$TMP/runs/sigTERM/metrics.jsonl")"
    fi
    expect 0 "already complete at step $((steps + 2))" -- "$SIMCLR" train $TINY --name sigTERM --resume auto \
        --set train.max_steps=$((steps + 2))
    expect 0 "name: \"sigTERM\"" -- "$SIMCLR" train --resume "$TMP/runs/sigTERM" --print-config
    # a second signal ends the process at once (both delivered while it is stopped)
    start_run double
    kill -STOP "$pid"; kill -USR1 "$pid"; kill -TERM "$pid"; kill -CONT "$pid"
    wait "$pid"; rc=$?
    if [ "$rc" -eq 143 ] || [ "$rc" -eq 138 ]; then pass; else fail "two signals: exit $rc"; fi
    # resume errors: nothing to resume, a changed model
    expect 1 "no such run directory or checkpoint" -- "$SIMCLR" train --resume "$TMP/nowhere"
    expect 2 "model.width 0.0625 -> 0.125" -- "$SIMCLR" train $TINY --name sigTERM --resume auto --set model.width=0.125

    # export, embed, model.init_from
    expect 0 "in torchvision format" -- "$SIMCLR" export "$TMP/runs/sigTERM" --out "$TMP/enc.safetensors"
    expect 0 "in timm format" -- "$SIMCLR" export "$TMP/runs/sigTERM" --out "$TMP/enc_timm.safetensors" --format timm
    expect 2 "expected torchvision or timm" -- "$SIMCLR" export "$TMP/runs/sigTERM" --out "$TMP/x" --format onnx
    expect 2 "usage: simclr export" -- "$SIMCLR" export "$TMP/runs/sigTERM"
    expect 0 "wrote 50 x 32 features of fashion_mnist/test" -- "$SIMCLR" embed "$TMP/runs/sigTERM" --out "$TMP/emb.safetensors" \
        --limit 50 --set run.threads=1
    expect 2 "expected train or test" -- "$SIMCLR" embed "$TMP/runs/sigTERM" --out "$TMP/x" --split val
    expect 0 "model.init_from: 100 encoder tensors" -- "$SIMCLR" train $TINY --name init --set train.max_steps=1 \
        --set model.init_from="$TMP/enc.safetensors"
    expect 1 "emb.safetensors: no 'conv1.weight'" -- "$SIMCLR" train $TINY --name init_bad --set train.max_steps=1 \
        --set model.init_from="$TMP/emb.safetensors"
    expect 1 "tensor 'conv1.weight' is \[4, 1, 3, 3\] F32, the model needs \[8, 1, 3, 3\] F32 (OIHW)" -- "$SIMCLR" train $TINY \
        --name init_wide --set train.max_steps=1 --set model.width=0.125 --set model.init_from="$TMP/enc.safetensors"
    if [ ! -e "$TMP/runs/init_bad" ] && [ ! -e "$TMP/runs/init_wide" ]; then pass; else fail "a bad init_from created a run directory"; fi
else
    echo "note: Fashion-MNIST not installed; the train/eval part is not run"
fi

echo "$checks checks, $fails failed"
[ "$checks" -gt 0 ] && [ "$fails" -eq 0 ]
