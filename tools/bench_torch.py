#!/usr/bin/python3
"""bench_torch.py - the PyTorch baseline of `simclr bench step`: the same SimCLR training step.

Same network (torchvision's ResNet blocks with simclr's width multiplier and stem, the same
projection head), same batch of 2B synthetic views, NT-Xent loss and the official per-tensor
LARS update, in eager mode with channels_last memory format and, where available
(--compile, PyTorch >= 2), torch.compile. Times each step with a synchronisation and prints
one JSON line in the format of `simclr bench step`, so results/*.jsonl hold both side by side.

  tools/bench_torch.py --device cpu --threads 2 --arch resnet18 --stem cifar --width 0.125 --size 28 --channels 1 --batch 256
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

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import torch_reference as R  # noqa: E402  (the same model builder as the parity test)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--stem", default="cifar")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--head-layers", type=int, default=2)
    p.add_argument("--head-out", type=int, default=64)
    p.add_argument("--tau", type=float, default=0.2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch >= 2)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        torch.backends.cudnn.allow_tf32 = a.tf32
        torch.backends.cudnn.benchmark = True

    class Args:
        pass

    m = Args()
    m.arch, m.stem, m.width, m.in_channels = a.arch, a.stem, a.width, a.channels
    m.head_layers, m.head_hidden, m.head_out, m.bn_hidden, m.bn_last, m.bias = a.head_layers, 0, a.head_out, 1, 0, 1
    model = R.SimCLR(m).to(dev).to(memory_format=torch.channels_last)
    model.train()
    step_model = model
    variant = "eager"
    if a.compile:
        if not hasattr(torch, "compile"):
            print(f"bench_torch: torch.compile is not available in PyTorch {torch.__version__}", file=sys.stderr)
            return 2
        step_model = torch.compile(model)
        variant = "compile"
    skip = R.excluded(model)
    velocity = {}
    x = torch.rand(2 * a.batch, a.channels, a.size, a.size, device=dev).to(memory_format=torch.channels_last)

    def step():
        model.zero_grad(set_to_none=True)
        _, z = step_model(x)
        loss, _ = R.ntxent(z, a.tau)
        loss.backward()
        R.lars_step(model, velocity, 0.3, 0.9, 1e-6, 1e-3, skip)
        return loss.item()  # synchronises

    for _ in range(a.warmup):
        step()
    ms = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        ms.append(1e3 * (time.perf_counter() - t0))
    ms.sort()
    med = statistics.median(ms)
    try:
        git = subprocess.run(["git", "-C", __file__.rsplit("/", 2)[0], "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        git = "unknown"
    views = 2 * a.batch
    print(json.dumps({
        "bench": "step", "impl": f"pytorch-{variant}", "date": datetime.date.today().isoformat(), "git": git,
        "host": socket.gethostname(), "device": a.device, "threads": torch.get_num_threads(), "arch": a.arch,
        "stem": a.stem, "width": a.width, "size": a.size, "channels": a.channels, "batch": a.batch, "views": views,
        "precision": "tf32" if a.tf32 else "fp32", "ms_median": round(med, 3), "ms_p10": round(ms[len(ms) // 10], 3),
        "ms_p90": round(ms[(len(ms) * 9) // 10], 3), "views_per_s": round(views / (med * 1e-3), 1),
        "torch": torch.__version__, "memory_format": "channels_last"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
