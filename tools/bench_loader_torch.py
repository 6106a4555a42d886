#!/usr/bin/python3
"""bench_loader_torch.py - the torchvision baseline of `simclr bench loader`.

The same work with torchvision's transforms on the PIL backend and a torch DataLoader with N
worker processes (one thread each): every sample is decoded once (Pillow) and transformed
twice into two SimCLR views: RandomResizedCrop(S, scale 0.08..1) -> RandomHorizontalFlip ->
RandomApply(ColorJitter(0.8s, 0.8s, 0.8s, 0.2s), p 0.8) -> RandomGrayscale(0.2) ->
(S >= 64: RandomApply(GaussianBlur(S//10 made odd, sigma 0.1..2), p 0.5)) -> ToTensor, with
s = 1 (0.5 and no blur below 64 px), as simclr's bench. Prints one JSON line per worker count,
with the same fields as simclr's.

    /usr/bin/python3 tools/bench_loader_torch.py --dataset imagefolder --path DIR --size 224 --workers 1,2
    /usr/bin/python3 tools/bench_loader_torch.py --dataset cifar10 --path DIR --size 32
"""
import argparse
import datetime
import json
import os
import socket
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T


def recipe(size):
    s = 1.0 if size >= 64 else 0.5
    ops = [T.RandomResizedCrop(size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
           T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8), T.RandomGrayscale(p=0.2)]
    if size >= 64:
        k = size // 10
        k += 1 - k % 2
        ops.append(T.RandomApply([T.GaussianBlur(k, sigma=(0.1, 2.0))], p=0.5))
    ops.append(T.ToTensor())
    return T.Compose(ops)


class TwoViews:
    def __init__(self, t):
        self.t = t

    def __call__(self, img):
        return torch.stack([self.t(img), self.t(img)])


class Cifar(torch.utils.data.Dataset):
    """CIFAR-10 binary batches held in memory, returned as PIL images like torchvision's CIFAR10."""

    def __init__(self, root, transform):
        raw = b"".join(open(os.path.join(root, f"data_batch_{i}.bin"), "rb").read() for i in range(1, 6))
        rec = np.frombuffer(raw, np.uint8).reshape(-1, 3073)
        self.labels = rec[:, 0].astype(np.int64)
        self.images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def one_thread(_):
    torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="imagefolder", choices=["imagefolder", "cifar10"])
    ap.add_argument("--path", required=True)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workers", default="1,2")
    a = ap.parse_args()
    torch.set_num_threads(1)
    tf = TwoViews(recipe(a.size))
    if a.dataset == "imagefolder":
        ds = torchvision.datasets.ImageFolder(a.path, transform=tf)
    else:
        ds = Cifar(a.path, tf)
    cores = os.cpu_count()
    for w in [int(x) for x in a.workers.split(",")]:
        dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=w, drop_last=True,
                                         persistent_workers=True, prefetch_factor=2, worker_init_fn=one_thread)
        it, seen = iter(dl), 0
        def batch():
            nonlocal it
            try:
                return next(it)
            except StopIteration:
                it = iter(dl)
                return next(it)
        x, _ = batch()
        assert x.shape == (a.batch, 2, 3, a.size, a.size) and float(x.min()) >= 0 and float(x.max()) <= 1
        for _ in range(a.warmup - 1):
            batch()
        t0 = time.perf_counter()
        for _ in range(a.batches):
            batch()
        sec = time.perf_counter() - t0
        images = a.batch * a.batches / sec
        print(json.dumps({"bench": "loader", "impl": f"torchvision-{torchvision.__version__}-pil",
                          "date": datetime.date.today().isoformat(), "host": socket.gethostname(), "cores": cores,
                          "dataset": f"{a.dataset}:{os.path.basename(os.path.normpath(a.path))}", "images": len(ds),
                          "size": a.size, "output": "views", "batch": a.batch, "batches": a.batches, "workers": w,
                          "seconds": round(sec, 3), "views_per_s": round(2 * images, 1),
                          "images_per_s": round(images, 1), "images_per_s_per_core": round(images / min(w, cores), 1),
                          "validated": "shape and range of batch 0"}), flush=True)
        del it, dl


if __name__ == "__main__":
    main()
