#!/usr/bin/python3
"""torch_simclr.py - the PyTorch baseline of simclr's quickstart benchmark: SimCLR pretraining on
Fashion-MNIST with the same recipe and epochs, then the same evaluations (linear protocol and kNN,
beside the same network at random initialisation), timed on the same machine.

Recipe (configs/fashion_mnist.yaml): ResNet-18 with the CIFAR stem at width 1/8 (8-16-32-64
channels, 1 input channel, torchvision's blocks via tools/torch_reference.py, simclr's
initialisation: Kaiming fan-out, zero gamma on each block's last BN), a 2-layer head
(64 -> 64 with BN + ReLU -> 64), 256 images per step (two views each), 3 epochs of 234 steps,
LARS (official update, lr 1.0 * B/256, momentum 0.9, wd 1e-6, eeta 0.001, BN and biases
excluded), 0.1-epoch linear warmup then cosine, NT-Xent tau 0.2. Views: random resized crop
(area 0.2-1, ratio 3/4-4/3, bilinear) + horizontal flip (p 0.5) + colour jitter with p 0.8 and
strength 0.5 (brightness and contrast 0.4 in random order, clipped; saturation, hue and
grayscale do nothing to gray images), no blur, no normalisation -- generated on the training
device for a whole batch at once (affine grid sampling), as a GPU pipeline would.

Evaluation, as `simclr eval`: features h of the train and test splits in eval mode (whole
28x28 images); kNN with k 200, t 0.1 on L2-normalised features; logistic regression on
standardised features with L2 chosen on a 10 % class-stratified hold-out from 1e-6..1e-1
(6 log-spaced values), refit on the whole train split, L-BFGS (float64).

  tools/torch_simclr.py --device cuda            # where a GPU exists
  tools/torch_simclr.py --device cpu --threads 2 --max-steps 20 --train-samples 5000 --test-samples 1000   # smoke run

Prints one JSON line (impl "pytorch"): training wall time and images/s, first/last loss, the
linear and kNN top-1 of the pretrained and the random-init encoder, and the evaluation time.
"""
import argparse
import datetime
import gzip
import json
import math
import os
import socket
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as R  # noqa: E402  (the network builder of the parity tests)

FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(root, prefix):
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(root, name)):
                return os.path.join(root, name)
        sys.exit("torch_simclr: %s not found in %s" % (stem, root))
    x = read_idx(find("%s-images-idx3-ubyte" % prefix))
    y = read_idx(find("%s-labels-idx1-ubyte" % prefix))
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def augment(x, gen, a):
    """x [B, 1, H, W] in [0, 1] -> one SimCLR view per image (see the module docstring)."""
    b, _, h, w = x.shape
    dev = x.device
    u = lambda *s: torch.rand(*s, generator=gen, device=dev)  # noqa: E731
    # random resized crop: area fraction s, log-uniform aspect ratio r (no fallback needed
    # at these ranges: the box is clipped to the image)
    area = a.crop_min + (1 - a.crop_min) * u(b)
    logr = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u(b)
    r = torch.exp(logr)
    cw = torch.sqrt(area * r).clamp(max=1.0)
    ch = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1 - cw) * u(b) + cw / 2  # centre in [0, 1]
    cy = (1 - ch) * u(b) + ch / 2
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = cw * flip
    theta[:, 0, 2] = 2 * cx - 1
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = 2 * cy - 1
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # colour jitter (p 0.8): brightness and contrast in random order, clipped after each
    s = a.jitter_strength
    apply = (u(b) < 0.8).view(b, 1, 1, 1)
    bf = (1 - 0.8 * s + 1.6 * s * u(b)).view(b, 1, 1, 1)
    cf = (1 - 0.8 * s + 1.6 * s * u(b)).view(b, 1, 1, 1)
    brightness_first = (u(b) < 0.5).view(b, 1, 1, 1)

    def bright(t):
        return (t * bf).clamp(0, 1)

    def contrast(t):
        m = t.mean(dim=(1, 2, 3), keepdim=True)
        return ((t - m) * cf + m).clamp(0, 1)

    j = torch.where(brightness_first, contrast(bright(v)), bright(contrast(v)))
    return torch.where(apply, j, v).clamp(0, 1)


def init_like_simclr(model):
    """simclr's (and torchvision's) initialisation: Kaiming-normal fan-out convolutions, BN
    gamma 1 and beta 0, the last BN gamma of every residual block 0; head layers keep
    nn.Linear's default."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
    for m in model.encoder.modules():
        if isinstance(m, R.Bottleneck):
            torch.nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, R.BasicBlock):
            torch.nn.init.zeros_(m.bn2.weight)


def lr_at(step, peak, warmup, total):
    if step < warmup:
        return peak * step / warmup
    if step >= total:
        return 0.0
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


@torch.no_grad()
def features(model, x, device, batch=1024):
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = (x[i:i + batch].to(device).float() / 255.0).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        out.append(model.encoder(xb).flatten(1).float())
    return torch.cat(out)


@torch.no_grad()
def knn_top1(ftr, ytr, fte, yte, k=200, t=0.1, classes=10):
    ftr, fte = F.normalize(ftr, dim=1), F.normalize(fte, dim=1)
    correct = 0
    for i in range(0, len(fte), 1024):
        sim = fte[i:i + 1024] @ ftr.t()
        s, idx = sim.topk(min(k, len(ftr)), dim=1)
        votes = torch.zeros(len(s), classes, device=s.device, dtype=torch.float64)
        votes.scatter_add_(1, ytr[idx], torch.exp(s.double() / t))
        correct += (votes.argmax(1) == yte[i:i + 1024]).sum().item()
    return correct / len(fte)


def logreg(xtr, ytr, xte, yte, l2, classes, iters=200):
    """Multinomial logistic regression, (1/N) sum CE + l2/2 ||W||^2, by L-BFGS in float64."""
    w = torch.zeros(xtr.shape[1], classes, dtype=torch.float64, device=xtr.device, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, device=xtr.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=iters, history_size=10, tolerance_grad=1e-6,
                            tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ w + b, ytr) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss
    opt.step(closure)
    with torch.no_grad():
        return ((xte @ w + b).argmax(1) == yte).double().mean().item()


def linear_top1(ftr, ytr, fte, yte, classes=10, seed=0):
    ftr, fte = ftr.double(), fte.double()
    mean, sd = ftr.mean(0), ftr.std(0, unbiased=False).clamp(min=1e-12)
    xtr, xte = (ftr - mean) / sd, (fte - mean) / sd
    g = torch.Generator().manual_seed(seed)
    held = torch.zeros(len(ytr), dtype=torch.bool)
    for c in range(classes):
        rows = (ytr.cpu() == c).nonzero().flatten()
        take = max(1, min(len(rows) - 1, round(0.1 * len(rows))))
        held[rows[torch.randperm(len(rows), generator=g)[:take]]] = True
    held = held.to(xtr.device)
    best, best_l2 = -1.0, None
    for l2 in np.logspace(-6, -1, 6):
        acc = logreg(xtr[~held], ytr[~held], xtr[held], ytr[held], float(l2), classes)
        if acc >= best:
            best, best_l2 = acc, float(l2)
    return logreg(xtr, ytr, xte, yte, best_l2, classes), best_l2


def evaluate(model, xtr, ytr, xte, yte, device):
    ftr, fte = features(model, xtr, device), features(model, xte, device)
    ytr_d, yte_d = ytr.to(device), yte.to(device)
    knn = knn_top1(ftr, ytr_d, fte, yte_d)
    lin, l2 = linear_top1(ftr, ytr_d, fte, yte_d)
    return lin, knn, l2


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--data", default=FMNIST)
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--warmup-epochs", type=float, default=0.1)
    p.add_argument("--tau", type=float, default=0.2)
    p.add_argument("--crop-min", type=float, default=0.2)
    p.add_argument("--jitter-strength", type=float, default=0.5)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=0, help="stop early (smoke runs); the schedule still spans --epochs")
    p.add_argument("--train-samples", type=int, default=0, help="evaluation train images (0 = all)")
    p.add_argument("--test-samples", type=int, default=0, help="evaluation test images (0 = all)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    xtr, ytr = load_split(a.data, "train")
    xte, yte = load_split(a.data, "t10k")
    margs = argparse.Namespace(arch="resnet18", stem="cifar", width=a.width, in_channels=1, head_layers=2,
                               head_hidden=0, head_out=64, bn_hidden=True, bn_last=False, bias=True)
    model = R.SimCLR(margs)
    init_like_simclr(model)
    model = model.to(dev).to(memory_format=torch.channels_last)
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    skip = R.excluded(model)
    per_epoch = len(xtr) // a.batch
    total = int(per_epoch * a.epochs)
    warmup = round(per_epoch * a.warmup_epochs)
    steps = min(total, a.max_steps) if a.max_steps else total
    peak = a.lr * a.batch / 256
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    xtr_dev = xtr.to(dev)
    velocity, losses = {}, []
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    step = 0
    while step < steps:
        perm = torch.randperm(len(xtr), generator=gen, device=dev) if dev.type == "cuda" else torch.randperm(len(xtr))
        for i in range(per_epoch):
            if step >= steps:
                break
            idx = perm[i * a.batch:(i + 1) * a.batch].to(dev)
            x = (xtr_dev[idx].float() / 255.0).unsqueeze(1)
            views = torch.cat([augment(x, gen, a), augment(x, gen, a)]).contiguous(memory_format=torch.channels_last)
            model.train()
            model.zero_grad(set_to_none=True)
            _, z = model(views)
            loss, _ = R.ntxent(z, a.tau)
            loss.backward()
            R.lars_step(model, velocity, lr_at(step, peak, warmup, total), 0.9, 1e-6, 1e-3, skip)
            losses.append(loss.item())
            step += 1
    if dev.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0
    ntr = a.train_samples or len(xtr)
    nte = a.test_samples or len(xte)
    t1 = time.perf_counter()
    lin, knn, l2 = evaluate(model, xtr[:ntr], ytr[:ntr], xte[:nte], yte[:nte], dev)
    model.load_state_dict(init_state)
    lin0, knn0, l20 = evaluate(model, xtr[:ntr], ytr[:ntr], xte[:nte], yte[:nte], dev)
    eval_s = time.perf_counter() - t1
    try:
        git = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        git = ""
    w = max(1, len(losses) // 20)
    print(json.dumps({
        "bench": "quickstart_eval", "impl": "pytorch", "torch": torch.__version__, "date": datetime.date.today().isoformat(),
        "git": git, "host": socket.gethostname(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "epochs": a.epochs, "steps": step, "batch": a.batch,
        "train_seconds": round(train_s, 2), "images_per_s": round(step * a.batch / train_s, 1),
        "loss_first_window": round(sum(losses[:w]) / w, 4), "loss_last_window": round(sum(losses[-w:]) / w, 4),
        "eval_train_samples": ntr, "eval_test_samples": nte,
        "linear_top1_pretrained": round(lin, 4), "linear_l2_pretrained": l2, "knn_top1_pretrained": round(knn, 4),
        "linear_top1_random_init": round(lin0, 4), "linear_l2_random_init": l20, "knn_top1_random_init": round(knn0, 4),
        "eval_seconds": round(eval_s, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
