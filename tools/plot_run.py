#!/usr/bin/env python3
"""plot_run.py - training curves of a simclr run as PNG, without TensorBoard.

    python3 tools/plot_run.py RUN_DIR [--out DIR]

Reads RUN_DIR/metrics.jsonl (written by `simclr train`) and writes into DIR (default
RUN_DIR/plots) loss.png (NT-Xent loss and contrastive accuracy), lr.png (learning rate),
knn.png (kNN monitor top-1/top-5 by epoch, with the final linear/kNN evaluation when present),
throughput.png (images/s and the fraction of time spent waiting for data) and grad_norm.png.
Uses Debian's python3-matplotlib (tools/setup.sh installs it); no display is needed.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    steps, knn, final = [], [], None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit("plot_run: %s:%d: not JSON: %s" % (path, n, e))
            if "event" not in r:
                steps.append(r)
            elif r["event"] == "knn":
                knn.append(r)
            elif r["event"] == "linear_probe":
                final = r
    return steps, knn, final


def save(fig, out, name):
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run directory holding metrics.jsonl")
    ap.add_argument("--out", help="output directory (default RUN/plots)")
    a = ap.parse_args()
    metrics = os.path.join(a.run, "metrics.jsonl")
    if not os.path.exists(metrics):
        sys.exit("plot_run: %s does not exist" % metrics)
    steps, knn, final = read(metrics)
    if not steps:
        sys.exit("plot_run: %s has no step records yet" % metrics)
    out = a.out or os.path.join(a.run, "plots")
    os.makedirs(out, exist_ok=True)
    x = [r["step"] for r in steps]
    title = os.path.basename(os.path.normpath(a.run))

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [r["loss"] for r in steps], color="tab:blue", label="NT-Xent loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(x, [r["contrastive_acc"] for r in steps], color="tab:orange", label="contrastive accuracy")
    ax2.set_ylabel("contrastive accuracy")
    ax.set_title("%s: loss" % title)
    fig.legend(loc="upper right")
    save(fig, out, "loss.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [r["lr"] for r in steps])
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title("%s: learning rate" % title)
    save(fig, out, "lr.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    if knn:
        ax.plot([r["epoch"] for r in knn], [100 * r["knn_top1"] for r in knn], "o-", label="kNN top-1")
        ax.plot([r["epoch"] for r in knn], [100 * r["knn_top5"] for r in knn], "o--", label="kNN top-5")
    if final:
        last = max(r["epoch"] for r in knn) if knn else steps[-1]["epoch"]
        for key, label, marker in (("pretrained_test_acc", "final linear top-1", "s"),
                                   ("pretrained_knn_top1", "final kNN top-1", "^"),
                                   ("random_init_test_acc", "random init linear top-1", "x")):
            if key in final:
                ax.plot([last], [100 * final[key]], marker, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("%s: kNN monitor" % title + ("" if knn else " (eval.every = 0: no monitor records)"))
    if knn or final:
        ax.legend()
    save(fig, out, "knn.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [r["images_per_s"] for r in steps], color="tab:green", label="images/s")
    ax.set_xlabel("step")
    ax.set_ylabel("images/s")
    ax2 = ax.twinx()
    ax2.plot(x, [100 * r["data_wait"] for r in steps], color="tab:red", label="waiting for data (%)")
    ax2.set_ylabel("waiting for data (%)")
    ax.set_title("%s: throughput" % title)
    fig.legend(loc="lower right")
    save(fig, out, "throughput.png")

    if all("grad_norm" in r for r in steps):
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(x, [r["grad_norm"] for r in steps])
        ax.set_xlabel("step")
        ax.set_ylabel("gradient L2 norm")
        ax.set_title("%s: gradient norm" % title)
        save(fig, out, "grad_norm.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
