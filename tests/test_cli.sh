#!/bin/sh
# test_cli.sh - the `simclr` command line: help texts, exit codes, configuration errors that
# name file:line:col and the key, --print-config, info, preview, and a tiny train + eval linear run.
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
else
    echo "note: Fashion-MNIST not installed; the train/eval part is not run"
fi

echo "$checks checks, $fails failed"
[ "$checks" -gt 0 ] && [ "$fails" -eq 0 ]
