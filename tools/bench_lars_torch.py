#!/usr/bin/python3
"""bench_lars_torch.py - the PyTorch baselines of `simclr bench lars`: one LARS step (the official
SimCLR rule: g += wd w, trust = eeta ||w|| / ||g||, v = m v + lr trust g, w -= v; BN parameters
and biases excluded from decay and trust) over torchvision's ResNet-50 parameters (161 tensors,
25.6 M values), in the same JSON format.

  loop:     the usual per-tensor loop, several kernels per tensor (torch.where instead of a
            Python `if` on the norms, so it never waits for the device)
  foreach:  the same step with torch._foreach_* ops over the tensor lists (PyTorch >= 1.13)

Before timing, one step of each variant is checked against a float64 evaluation of the rule.

  tools/bench_lars_torch.py --device cuda
"""
import argparse
import datetime
import json
import socket
import statistics
import subprocess
import sys
import time

import torch
import torchvision

LR, MOMENTUM, WD, EETA = 4.8, 0.9, 1e-6, 1e-3


def lars_loop(params, grads, vel, skip):
    with torch.no_grad():
        for p, g, v, s in zip(params, grads, vel, skip):
            if s:
                v.mul_(MOMENTUM).add_(g, alpha=LR)
            else:
                g = g + WD * p
                wn, gn = torch.norm(p), torch.norm(g)
                trust = torch.where((wn > 0) & (gn > 0), EETA * wn / gn, torch.ones_like(wn))
                v.mul_(MOMENTUM).add_(LR * trust * g)
            p.sub_(v)


def lars_foreach(params, grads, vel, skip):
    with torch.no_grad():
        dec = [i for i, s in enumerate(skip) if not s]
        exc = [i for i, s in enumerate(skip) if s]
        pd = [params[i] for i in dec]
        gd = torch._foreach_add([grads[i] for i in dec], pd, alpha=WD)
        wn = torch.stack(torch._foreach_norm(pd))
        gn = torch.stack(torch._foreach_norm(gd))
        trust = torch.where((wn > 0) & (gn > 0), EETA * wn / gn, torch.ones_like(wn)) * LR
        torch._foreach_mul_(gd, list(trust.unbind(0)))
        vd = [vel[i] for i in dec]
        torch._foreach_mul_(vd, MOMENTUM)
        torch._foreach_add_(vd, gd)
        ve = [vel[i] for i in exc]
        torch._foreach_mul_(ve, MOMENTUM)
        torch._foreach_add_(ve, [grads[i] for i in exc], alpha=LR)
        torch._foreach_sub_(params, vel)


def reference(params, grads, skip):
    """One step from zero velocity in float64: the new weights."""
    out = []
    for p, g, s in zip(params, grads, skip):
        p, g = p.double(), g.double()
        trust = 1.0
        if not s:
            g = g + WD * p
            wn, gn = p.norm().item(), g.norm().item()
            if wn > 0 and gn > 0:
                trust = EETA * wn / gn
        out.append(p - LR * trust * g)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    model = torchvision.models.resnet50()
    named = list(model.named_parameters())
    skip = [p.dim() == 1 for _, p in named]  # BN gamma / beta and the fc bias
    gen = torch.Generator().manual_seed(3)
    init = [p.detach().clone() for _, p in named]
    grads = [(1e-3 * torch.randn(p.shape, generator=gen)).to(dev) for _, p in named]
    try:
        git = subprocess.run(["git", "-C", __file__.rsplit("/", 2)[0], "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        git = "unknown"
    numel = sum(p.numel() for p in init)
    bytes_moved = 28 * numel  # what the fused step moves with fp32 gradients (norms 8 + update 20)

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    want = reference(init, [g.cpu() for g in grads], skip)
    for name, fn in (("loop", lars_loop), ("foreach", lars_foreach)):
        line = {"bench": "lars", "impl": f"pytorch-{name}", "date": datetime.date.today().isoformat(), "git": git,
                "host": socket.gethostname(), "device": a.device,
                "gpu": torch.cuda.get_device_name(dev) if cuda else "", "optim": "lars", "grads": "fp32",
                "params": numel, "tensors": len(init), "torch": torch.__version__}
        try:
            params = [p.clone().to(dev) for p in init]
            vel = [torch.zeros_like(p) for p in params]
            fn(params, grads, vel, skip)
            worst = max(((p.cpu().double() - w).abs().max() / (w.abs().max() + 1e-12)).item()
                        for p, w in zip(params, want))
            if not worst <= 1e-5:
                print(f"bench_lars_torch: {name}: validation failed (relative error {worst:.3g})", file=sys.stderr)
                return 1
            for _ in range(a.warmup):
                fn(params, grads, vel, skip)
            ms = []
            for _ in range(a.iters):
                sync()
                t0 = time.perf_counter()
                fn(params, grads, vel, skip)
                sync()
                ms.append(1e3 * (time.perf_counter() - t0))
            ms.sort()
            med = statistics.median(ms)
            line.update({"ms_median": round(med, 4), "ms_p10": round(ms[len(ms) // 10], 4),
                         "ms_p90": round(ms[(len(ms) * 9) // 10], 4), "bytes_moved": bytes_moved,
                         "gbps": round(bytes_moved / (med * 1e-3) / 1e9, 1),
                         "validated": f"one step matches float64 (relative error {worst:.2e})"})
        except (RuntimeError, TypeError, AttributeError) as e:  # a _foreach op this PyTorch lacks
            line["status"] = f"unavailable: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
