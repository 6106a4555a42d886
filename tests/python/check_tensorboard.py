#!/usr/bin/env python3
"""check_tensorboard.py - read simclr's TensorBoard output with the real tensorboard package.

  check_tensorboard.py --unit DIR   the writer test's events and projector (values known here)
  check_tensorboard.py --run RUN    a training run: every record of metrics.jsonl, the view-pair
                                    images, the histograms of every trained tensor, the final
                                    evaluation and the projector

Events are read with tensorboard's EventAccumulator (which checks every record's CRC); the
projector config is parsed with tensorboard's ProjectorConfig proto and the tensor with the
projector plugin's own TSV reader. Prints each failure and exits 1 on any, 0 otherwise.
"""
import glob
import io
import json
import math
import os
import sys

from google.protobuf import text_format
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.projector import projector_config_pb2, projector_plugin

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def load(path):
    files = glob.glob(os.path.join(path, "events.out.tfevents.*"))
    check(len(files) == 1, "%s: expected one event file, found %d" % (path, len(files)))
    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc


def f32(x):
    """x rounded to float32, as simple_value stores it"""
    import struct
    return struct.unpack("<f", struct.pack("<f", x))[0]


def scalars(acc, tag):
    return {e.step: e.value for e in acc.Scalars(tag)} if tag in acc.Tags()["scalars"] else {}


def check_projector(run, n_expected, dim_expected=None):
    cfg_path = os.path.join(run, "projector_config.pbtxt")
    check(os.path.exists(cfg_path), "no projector_config.pbtxt in %s" % run)
    if not os.path.exists(cfg_path):
        return
    cfg = projector_config_pb2.ProjectorConfig()
    text_format.Parse(open(cfg_path).read(), cfg)
    check(len(cfg.embeddings) == 1, "projector: %d embeddings" % len(cfg.embeddings))
    emb = cfg.embeddings[0]
    tensor = projector_plugin._read_tensor_tsv_file(projector_plugin._rel_to_abs_asset_path(emb.tensor_path, cfg_path))
    check(tensor.shape[0] == n_expected, "projector tensor has %d rows, expected %d" % (tensor.shape[0], n_expected))
    check(list(emb.tensor_shape) == list(tensor.shape), "tensor_shape %s != file %s" % (list(emb.tensor_shape), tensor.shape))
    if dim_expected is not None:
        check(tensor.shape[1] == dim_expected, "projector dim %d, expected %d" % (tensor.shape[1], dim_expected))
    meta = open(projector_plugin._rel_to_abs_asset_path(emb.metadata_path, cfg_path)).read().splitlines()
    check(meta[0] == "label\tclass" and len(meta) == n_expected + 1, "metadata: %d lines, header %r" % (len(meta), meta[0]))
    sprite = Image.open(projector_plugin._rel_to_abs_asset_path(emb.sprite.image_path, cfg_path))
    side = math.ceil(math.sqrt(n_expected)) * emb.sprite.single_image_dim[0]
    check(sprite.size == (side, side), "sprite is %s, expected %dx%d" % (sprite.size, side, side))
    return tensor


def unit(path):
    acc = load(path)
    a = scalars(acc, "test/a")
    check(sorted(a) == list(range(10)), "test/a steps %s" % sorted(a))
    for step, v in a.items():
        check(v == f32(0.5 * step), "test/a step %d = %r" % (step, v))
    check(scalars(acc, "test/b") == {100: 1.25}, "test/b = %r" % scalars(acc, "test/b"))
    for tag, step, w, h, mode in (("test/img", 3, 5, 4, "RGB"), ("test/gray", 4, 7, 3, "L")):
        imgs = acc.Images(tag)
        check(len(imgs) == 1 and imgs[0].step == step, "%s steps %s" % (tag, [i.step for i in imgs]))
        img = Image.open(io.BytesIO(imgs[0].encoded_image_string))
        check((imgs[0].width, imgs[0].height) == (w, h) and img.size == (w, h) and img.mode == mode,
              "%s: %dx%d %s" % (tag, img.size[0], img.size[1], img.mode))
    px = Image.open(io.BytesIO(acc.Images("test/img")[0].encoded_image_string)).getpixel((1, 0))
    check(px == (12, 16, 20), "test/img pixel (1, 0) = %s" % (px,))
    hs = acc.Histograms("test/h")
    check(len(hs) == 1 and hs[0].step == 7, "test/h steps %s" % [x.step for x in hs])
    h = hs[0].histogram_value
    vals = [float(i) for i in range(100) if i != 50]
    check((h.min, h.max, h.num) == (0.0, 99.0, 99.0), "test/h min/max/num %s %s %s" % (h.min, h.max, h.num))
    check(h.sum == sum(vals) and h.sum_squares == sum(v * v for v in vals), "test/h sums %s %s" % (h.sum, h.sum_squares))
    check(len(h.bucket) == 10 and sum(h.bucket) == 99, "test/h buckets %s" % list(h.bucket))
    check(h.bucket_limit[-1] == 99.0, "last limit %s" % h.bucket_limit[-1])
    # bucket i covers (limit[i-1], limit[i]]
    lims = [-math.inf] + list(h.bucket_limit)
    for i, c in enumerate(h.bucket):
        want = sum(1 for v in vals if lims[i] < v <= lims[i + 1])
        check(c == want, "test/h bucket %d holds %s, expected %d" % (i, c, want))
    hc = acc.Histograms("test/const")[0].histogram_value
    check(hc.num == 3 and list(hc.bucket) == [3.0] and hc.min == hc.max == 2.0, "constant histogram %s" % hc)
    t = check_projector(path, 20, 3)
    if t is not None:
        check(abs(t[19][2] - 59 * 0.25) < 1e-6, "projector value %r" % t[19][2])


def run(path):
    acc = load(path)
    records = [json.loads(line) for line in open(os.path.join(path, "metrics.jsonl"))]
    steps = [r for r in records if "event" not in r]
    check(len(steps) >= 2, "metrics.jsonl has %d step records" % len(steps))
    for key, tag in (("loss", "train/loss"), ("contrastive_acc", "train/contrastive_acc"), ("lr", "train/lr"),
                     ("images_per_s", "train/images_per_s"), ("data_wait", "train/data_wait_fraction"),
                     ("grad_norm", "train/grad_norm")):
        got = scalars(acc, tag)
        check(sorted(got) == [r["step"] for r in steps], "%s steps %s vs metrics %s" % (tag, sorted(got), [r["step"] for r in steps]))
        for r in steps:
            if r["step"] in got:
                check(abs(got[r["step"]] - f32(r[key])) <= 1e-5 * max(1.0, abs(r[key])),  # metrics.jsonl has 6-9 digits
                      "%s at step %d: %r vs metrics %r" % (tag, r["step"], got[r["step"]], r[key]))
    knn = [r for r in records if r.get("event") == "knn"]
    check(len(knn) == 2, "%d kNN records" % len(knn))
    got = scalars(acc, "eval/knn_top1")
    check(sorted(got) == [r["step"] for r in knn], "eval/knn_top1 steps %s" % sorted(got))
    for r in knn:
        check(abs(got.get(r["step"], -1) - f32(r["knn_top1"])) < 1e-6, "eval/knn_top1 at %d" % r["step"])
    last = steps[-1]["step"]
    imgs = acc.Images("views/pairs")
    check([i.step for i in imgs] == [1, 10, 20], "views/pairs steps %s" % [i.step for i in imgs])
    for i in imgs:
        img = Image.open(io.BytesIO(i.encoded_image_string))
        check(img.size == (i.width, i.height) and img.size[1] > img.size[0] / 16, "views/pairs image %s" % (img.size,))
    hist = [t for t in acc.Tags()["histograms"]]
    weights = [t for t in hist if t.startswith("weights/")]
    grads = [t for t in hist if t.startswith("grads/")]
    check(len(weights) > 10 and len(weights) == len(grads), "%d weight and %d gradient histograms" % (len(weights), len(grads)))
    check("weights/conv1.weight" in weights and "grads/head.0.weight" in grads, "histogram tags %s" % weights[:5])
    check(not any("running_" in t for t in hist), "BN running statistics have histograms")
    for t in hist:
        got_steps = [e.step for e in acc.Histograms(t)]
        check(got_steps == [10, 20], "%s steps %s" % (t, got_steps))
        h = acc.Histograms(t)[-1].histogram_value
        check(h.num > 0 and sum(h.bucket) == h.num, "%s: %s values in buckets of %s" % (t, sum(h.bucket), h.num))
    probe = [r for r in records if r.get("event") == "linear_probe"][0]
    for tag, key in (("final/linear_top1", "pretrained_test_acc"), ("final/linear_top5", "pretrained_test_top5"),
                     ("final/random_init_linear_top1", "random_init_test_acc"), ("final/knn_top1", "pretrained_knn_top1"),
                     ("final/random_init_knn_top1", "random_init_knn_top1")):
        got = scalars(acc, tag)
        check(list(got) == [last] and abs(got[last] - probe[key]) < 1e-6, "%s = %s, metrics %s" % (tag, got, probe[key]))
    check_projector(path, 50, probe["feature_dim"])
    for f in ("linear.json", "knn.json", "linear_confusion.png", "linear_confusion.txt", "knn_confusion.png"):
        check(os.path.exists(os.path.join(path, "eval", "final", f)), "eval/final/%s missing" % f)
    rep = json.load(open(os.path.join(path, "eval", "final", "linear.json")))
    check(abs(rep["pretrained"]["test_top1"] - probe["pretrained_test_acc"]) < 1e-6, "linear.json disagrees with metrics.jsonl")
    cm = rep["pretrained"]["metrics"]["confusion_matrix_rows_true_cols_predicted"]
    check(sum(map(sum, cm)) == rep["test_samples"], "confusion matrix sums to %d" % sum(map(sum, cm)))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("--unit", "--run"):
        print(__doc__)
        return 2
    (unit if sys.argv[1] == "--unit" else run)(sys.argv[2])
    print("check_tensorboard %s: %d failures" % (sys.argv[1], len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
