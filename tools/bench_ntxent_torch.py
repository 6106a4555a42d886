#!/usr/bin/python3
"""bench_ntxent_torch.py - the PyTorch baseline of `simclr bench ntxent`: NT-Xent as it is usually
written in PyTorch, forward + backward, in the same JSON format.

  zn = F.normalize(z, dim=1); logits = zn @ zn.T / tau; diagonal masked with -inf;
  loss = F.cross_entropy(logits, (arange(2N) + N) % 2N); loss.backward()

z is a leaf of the benchmark's precision (fp32, or bf16 as a bf16 network would hand it over;
the cross-entropy then runs on the bf16 logits upcast to fp32, as autocast does). The extra
memory is the peak allocated during the step minus what the inputs hold (CUDA only). Before
timing, the fp32 loss is checked against float64 for sizes up to 8192. Sizes that do not fit
are reported as such.

  tools/bench_ntxent_torch.py --device cuda --sizes 512,2048,8192,32768,131072 --dim 128
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
import torch.nn.functional as F


def ntxent(z, tau):
    n2 = z.shape[0]
    zn = F.normalize(z, dim=1)
    logits = zn @ zn.t() / tau
    logits = logits.masked_fill(torch.eye(n2, dtype=torch.bool, device=z.device), float("-inf"))
    target = (torch.arange(n2, device=z.device) + n2 // 2) % n2
    return F.cross_entropy(logits.float(), target)


def inputs(rows, dim, device, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    n = rows // 2
    z[n:] = 0.8 * z[:n] + 0.6 * z[n:]
    return z.to(device=device, dtype=dtype).requires_grad_(True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", default="")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--tau", type=float, default=0.1)
    p.add_argument("--precision", default="both", choices=["fp32", "bf16", "both"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
    sizes = [int(s) for s in a.sizes.split(",")] if a.sizes else ([512, 2048, 8192, 32768, 131072] if cuda else [512, 2048])
    precisions = ["fp32", "bf16"] if a.precision == "both" else [a.precision]
    try:
        git = subprocess.run(["git", "-C", __file__.rsplit("/", 2)[0], "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        git = "unknown"
    gpu = torch.cuda.get_device_name(dev) if cuda else ""

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    for rows in sizes:
        for prec in precisions:
            dtype = torch.float32 if prec == "fp32" else torch.bfloat16
            line = {"bench": "ntxent", "impl": "pytorch-eager", "date": datetime.date.today().isoformat(), "git": git,
                    "host": socket.gethostname(), "device": a.device, "gpu": gpu, "rows": rows, "dim": a.dim,
                    "tau": a.tau, "precision": prec, "torch": torch.__version__}
            try:
                z = inputs(rows, a.dim, dev, dtype, rows)
                validated = "not checked above 2N = 8192"
                if prec == "fp32" and rows <= 8192:
                    want = ntxent(z.detach().double(), a.tau).item()
                    got = ntxent(z, a.tau).item()
                    if not abs(got - want) <= 1e-5 * abs(want):
                        print(f"bench_ntxent_torch: validation failed at 2N = {rows}: {got} vs {want} (float64)",
                              file=sys.stderr)
                        return 1
                    validated = f"fp32 loss matches float64 ({got:.6f})"
                sync()
                base = torch.cuda.memory_allocated(dev) if cuda else 0

                def step():
                    z.grad = None
                    loss = ntxent(z, a.tau)
                    loss.backward()
                    return loss

                if cuda:
                    torch.cuda.reset_peak_memory_stats(dev)
                for _ in range(a.warmup):
                    step()
                sync()
                extra = (torch.cuda.max_memory_allocated(dev) - base - z.numel() * z.element_size()) if cuda else None
                ms = []
                for _ in range(a.iters):
                    sync()
                    t0 = time.perf_counter()
                    step()
                    sync()
                    ms.append(1e3 * (time.perf_counter() - t0))
                ms.sort()
                med = statistics.median(ms)
                line.update({"ms_median": round(med, 4), "ms_p10": round(ms[len(ms) // 10], 4),
                             "ms_p90": round(ms[(len(ms) * 9) // 10], 4),
                             "extra_bytes": extra, "extra_gib": round(extra / 2**30, 4) if extra is not None else None,
                             "tflops_model": round(6.0 * rows * rows * a.dim / (med * 1e-3) / 1e12, 3),
                             "validated": validated})
            except RuntimeError as e:  # torch.cuda.OutOfMemoryError is a RuntimeError
                if "out of memory" not in str(e):
                    raise
                line["status"] = "does not fit: out of memory"
            finally:
                z = None
                if cuda:
                    torch.cuda.empty_cache()
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
