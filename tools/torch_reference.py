#!/usr/bin/python3
"""torch_reference.py - PyTorch reference fixtures for simclr's parity tests.

Builds the same network simclr builds -- a ResNet assembled from torchvision's own BasicBlock /
Bottleneck classes with a width multiplier and the CIFAR or ImageNet stem, plus the projection
head as an nn.Sequential -- feeds it fixed pre-augmented inputs, and records, in a safetensors
file that the C test reads:

  x.<k>        input batch of step k, [2N, H, W, C] (NHWC; rows 0..N-1 first views)
  param.<name> initial parameters and BN statistics (conv filters as KRSC: [out, kh, kw, in])
  h, z         encoder features and head output of step 0, [2N, F] and [2N, D]
  loss, acc    NT-Xent loss (mean over the 2N anchors) and contrastive accuracy of step 0
  grad.<name>  every gradient of step 0
  after.<name> every parameter and BN statistic after `--steps` LARS steps
  loss.<k>     the loss of every step

LARS follows google-research/simclr exactly: for tensors other than BN parameters and biases,
g += wd * w and trust = eeta * ||w|| / ||g||; v = m * v + lr * trust * g; w -= v. Excluded
tensors take plain momentum SGD with the learning rate inside the momentum.

  tools/torch_reference.py fixture OUT.safetensors --arch resnet18 --stem cifar --width 0.0625 ...

The reference is computed in float64 by default, so it is the exact answer (up to 1e-15)
that both simclr's F64 model (tight tolerance: same mathematics) and its F32 model (fp32
tolerance) are compared with.
  tools/torch_reference.py names resnet50 OUT.txt    # torchvision's state_dict names and shapes

Exits 77 when PyTorch or torchvision cannot be imported (the test then reports a skip).
Runs on Debian's python3-torch / python3-torchvision (CPU).
"""
import argparse
import json
import math
import struct
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    from torchvision.models.resnet import BasicBlock, Bottleneck
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"SKIP: PyTorch/torchvision not importable: {exc}")
    sys.exit(77)

ARCHS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
         "resnet50": (Bottleneck, [3, 4, 6, 3])}


def channels(width, base):
    """Same rounding as simclr's lround(base * width), at least 1."""
    return max(1, int(math.floor(base * width + 0.5)))


class Encoder(nn.Module):
    """torchvision's ResNet topology with a width multiplier and a choice of stem."""

    def __init__(self, arch, stem, width, in_channels):
        super().__init__()
        block, layers = ARCHS[arch]
        self.inplanes = channels(width, 64)
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        for i, depth in enumerate(layers):
            setattr(self, f"layer{i + 1}", self._make_layer(block, channels(width, 64 << i), depth, 1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def _make_layer(self, block, planes, depth, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        blocks = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        blocks += [block(self.inplanes, planes) for _ in range(1, depth)]
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(self.avgpool(x), 1)


def make_head(in_dim, layers, hidden, out, bn_hidden, bn_last, bias):
    """The projection MLP with nn.Sequential numbering, as simclr names it."""
    hidden = hidden or in_dim
    mods, prev = [], in_dim
    for i in range(layers):
        last = i == layers - 1
        dim = out if last else hidden
        has_bn = bn_last if last else bn_hidden
        mods.append(nn.Linear(prev, dim, bias=bias and not has_bn))
        if has_bn:
            mods.append(nn.BatchNorm1d(dim))
            if last:  # BN without beta (center=False in TensorFlow)
                mods[-1].bias = None
        if not last:
            mods.append(nn.ReLU(inplace=True))
        prev = dim
    return nn.Sequential(*mods)


class SimCLR(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.encoder = Encoder(a.arch, a.stem, a.width, a.in_channels)
        feat = channels(a.width, 512) * (4 if a.arch == "resnet50" else 1)
        self.head = make_head(feat, a.head_layers, a.head_hidden, a.head_out, a.bn_hidden, a.bn_last, a.bias)

    def forward(self, x):
        h = self.encoder(x)
        return h, self.head(h)


def ntxent(z, tau):
    """Paper's NT-Xent: mean over 2N anchors; rows i and (i + N) mod 2N are positives."""
    zn = F.normalize(z, dim=1)
    n2 = zn.shape[0]
    logits = zn @ zn.t() / tau
    logits = logits.masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    target = (torch.arange(n2) + n2 // 2) % n2
    loss = F.cross_entropy(logits, target)
    pos = logits[torch.arange(n2), target]
    others = logits.masked_fill(F.one_hot(target, n2).bool(), float("-inf"))
    acc = (pos > others.max(dim=1).values).to(z.dtype).mean()
    return loss, acc


def simclr_name(name):
    """Module name -> simclr's table name (the encoder is top-level, like torchvision)."""
    return name[len("encoder."):] if name.startswith("encoder.") else name


def excluded(model):
    """Names of BN parameters and biases: no weight decay, no trust ratio."""
    out = set()
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) or pname == "bias":
                out.add(simclr_name(f"{mname}.{pname}"))
    return out


def lars_step(model, velocity, lr, momentum, wd, eeta, skip):
    with torch.no_grad():
        for name, p in model.named_parameters():
            key = simclr_name(name)
            g = p.grad.clone()
            trust = 1.0
            if key not in skip:
                g += wd * p
                wn, gn = torch.norm(p), torch.norm(g)
                if wn > 0 and gn > 0:
                    trust = eeta * wn / gn
            v = velocity.setdefault(key, torch.zeros_like(p))
            v.mul_(momentum).add_(lr * trust * g)
            p.sub_(v)


def to_simclr_layout(name, t):
    """OIHW conv filters -> KRSC; everything else unchanged. Always a copy: a snapshot must
    not alias a parameter that later training steps update in place."""
    t = t.detach().clone()
    if t.dim() == 4:
        t = t.permute(0, 2, 3, 1)
    return t.contiguous()


def state(model):
    """Parameters and BN running statistics under simclr names (no num_batches_tracked)."""
    out = {}
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        out[simclr_name(name)] = to_simclr_layout(name, t)
    return out


def write_safetensors(path, tensors, meta):
    """A minimal safetensors writer (F32 and F64): header JSON, padding, raw data."""
    header, blobs, offset = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        f64 = t.dtype == torch.float64
        data = t.detach().contiguous().numpy().astype("<f8" if f64 else "<f4").tobytes()
        header[name] = {"dtype": "F64" if f64 else "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def fixture(a):
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    model = SimCLR(a).to(dtype)
    # Randomise BN affine parameters and statistics so every gradient path is non-trivial.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.weight.uniform_(0.5, 1.5)
                if mod.bias is not None:
                    mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.8, 1.2)
    model.train()
    out = {f"param.{k}": v for k, v in state(model).items()}
    skip = excluded(model)
    velocity = {}
    lrs = [float(v) for v in a.lrs.split(",")]
    for step in range(a.steps):
        x = torch.rand(2 * a.batch, a.in_channels, a.size, a.size, dtype=dtype)
        out[f"x.{step}"] = x.permute(0, 2, 3, 1).contiguous()
        model.zero_grad(set_to_none=True)
        h, z = model(x)
        loss, acc = ntxent(z, a.tau)
        loss.backward()
        out[f"loss.{step}"] = loss.detach().reshape(1)
        if step == 0:
            out["h"], out["z"] = h.detach().clone(), z.detach().clone()
            out["loss"], out["acc"] = loss.detach().reshape(1), acc.reshape(1)
            for name, p in model.named_parameters():
                out[f"grad.{simclr_name(name)}"] = to_simclr_layout(name, p.grad)
        lars_step(model, velocity, lrs[step % len(lrs)], a.momentum, a.wd, a.eeta, skip)
    out.update({f"after.{k}": v for k, v in state(model).items()})
    meta = {k: str(v) for k, v in vars(a).items() if k != "out"}
    meta["torch"] = torch.__version__
    meta["torchvision"] = torchvision.__version__
    write_safetensors(a.out, out, meta)


def names(arch, path):
    """torchvision's own state_dict names and shapes (OIHW) for a full-width model."""
    model = getattr(torchvision.models, arch)()
    with open(path, "w") as f:
        for name, t in model.state_dict().items():
            f.write(f"{name} {' '.join(str(d) for d in t.shape)}\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    fx = sub.add_parser("fixture")
    fx.add_argument("out")
    fx.add_argument("--arch", default="resnet18", choices=sorted(ARCHS))
    fx.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"])
    fx.add_argument("--width", type=float, default=0.0625)
    fx.add_argument("--in-channels", type=int, default=3)
    fx.add_argument("--size", type=int, default=8)
    fx.add_argument("--batch", type=int, default=4, help="N: the batch holds 2N views")
    fx.add_argument("--head-layers", type=int, default=2)
    fx.add_argument("--head-hidden", type=int, default=0)
    fx.add_argument("--head-out", type=int, default=8)
    fx.add_argument("--bn-hidden", type=int, default=1)
    fx.add_argument("--bn-last", type=int, default=0)
    fx.add_argument("--bias", type=int, default=1)
    fx.add_argument("--tau", type=float, default=0.5)
    fx.add_argument("--lrs", default="0.5,0.4,0.3")
    fx.add_argument("--momentum", type=float, default=0.9)
    fx.add_argument("--wd", type=float, default=1e-4)
    fx.add_argument("--eeta", type=float, default=0.001)
    fx.add_argument("--steps", type=int, default=3)
    fx.add_argument("--seed", type=int, default=0)
    fx.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                    help="reference precision (float64: the exact answer fp32 code is judged against)")
    nm = sub.add_parser("names")
    nm.add_argument("arch", choices=sorted(ARCHS))
    nm.add_argument("out")
    a = p.parse_args()
    if a.cmd == "fixture":
        fixture(a)
    else:
        names(a.arch, a.out)


if __name__ == "__main__":
    main()
