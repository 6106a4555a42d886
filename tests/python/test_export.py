#!/usr/bin/python3
"""test_export.py - simclr's encoder export and import against torchvision itself.

  tests/python/test_export.py path/to/simclr

1. ImageNet stem, RGB (gray replicated), ImageNet normalisation: the export loads into
   torchvision.models.resnet18() with fc = Identity by load_state_dict(strict=True), and the
   features torchvision computes on 32 Fashion-MNIST test images equal `simclr embed`'s.
2. CIFAR stem, 1 channel: the same with conv1 = Conv2d(1, 64, 3, 1, 1) and maxpool = Identity,
   as the export's metadata says; --format timm writes the same tensors with timm's
   pretrained_cfg.
3. model.init_from: torchvision's own (randomly initialised) ResNet-18 weights, saved under a
   "backbone." prefix beside a projector, start a 1-channel simclr run; after one step at learning
   rate 0 the exported weights equal torchvision's, conv1 summed over its input channels.

Uses Debian's python3-torch / python3-torchvision (CPU); exits 77 when they or Fashion-MNIST are
missing. safetensors files are read and written here with the standard library (the format is a
JSON header and raw little-endian bytes), so no safetensors package is needed.
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import torch
    import torch.nn as nn
    import torchvision
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"SKIP: PyTorch/torchvision not importable: {exc}")
    sys.exit(77)

FASHION = "/usr/share/datasets/fashion-mnist"
DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
failures = []


def check(cond, what):
    print(f"{'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        failures.append(what)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=DTYPES[e["dtype"]]) if end > b else torch.zeros(0)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


def write_safetensors(path, tensors, meta):
    names = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def test_images(n):
    with gzip.open(f"{FASHION}/t10k-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    _, count, h, w = struct.unpack(">IIII", raw[:16])
    return torch.frombuffer(bytearray(raw[16:16 + n * h * w]), dtype=torch.uint8).reshape(n, 1, h, w)


def tiny_dataset(path, n_train=64, n_test=32):
    """The first images of each Fashion-MNIST split as uncompressed IDX files: fast to load."""
    os.makedirs(path)
    for split, n in (("train", n_train), ("t10k", n_test)):
        for kind, head, item in (("images", 16, 784), ("labels", 8, 1)):
            with gzip.open(f"{FASHION}/{split}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz", "rb") as f:
                raw = f.read(head + n * item)
            hdr = bytearray(raw[:head])
            hdr[4:8] = struct.pack(">I", n)
            with open(f"{path}/{split}-{kind}-idx{3 if kind == 'images' else 1}-ubyte", "wb") as f:
                f.write(bytes(hdr) + raw[head:])


def simclr(*args):
    r = subprocess.run([SIMCLR, *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit(f"FAIL: simclr {' '.join(args)} exited {r.returncode}")
    return r.stdout + r.stderr


def train(tmp, name, *sets):
    args = ["train", "--device", "cpu", "--name", name]
    for s in (f"run.dir={tmp}/runs", f"data.path={tmp}/data", "train.batch_size=8", "train.max_steps=2", "eval.linear_probe=false",
              "run.threads=1", "run.progress=never", "model.width=1", "data.workers=1") + sets:
        args += ["--set", s]
    simclr(*args)
    return f"{tmp}/runs/{name}"


def torchvision_encoder(meta):
    """torchvision's ResNet-18 made to match the export's metadata: fc removed, stem as stated."""
    m = torchvision.models.resnet18()
    m.fc = nn.Identity()
    c = int(meta["in_channels"])
    if meta["stem"] == "cifar":
        m.conv1 = nn.Conv2d(c, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
    elif c != 3:
        m.conv1 = nn.Conv2d(c, 64, 7, 2, 3, bias=False)
    return m


def compare_features(tmp, run, meta, model, label):
    out = f"{tmp}/{label}_features.safetensors"
    simclr("embed", run, "--out", out, "--limit", "32", "--set", "run.threads=1", "--set", "data.workers=1")
    emb, emeta = read_safetensors(out)
    c = int(meta["in_channels"])
    x = test_images(32).to(torch.float32) * torch.tensor(1.0 / 255.0, dtype=torch.float32)
    x = x.expand(-1, c, -1, -1)
    if meta["normalize"] == "true":
        mean = torch.tensor(json.loads(meta["mean"])).reshape(1, c, 1, 1)
        std = torch.tensor(json.loads(meta["std"])).reshape(1, c, 1, 1)
        x = (x - mean) / std
    model.eval()
    with torch.no_grad():
        ref = model(x)
    got = emb["features"]
    err = (got - ref).abs().max().item()
    scale = ref.abs().max().item()
    print(f"     {label}: features [{got.shape[0]}, {got.shape[1]}], max |simclr - torchvision| = {err:.3g} "
          f"(max |feature| {scale:.3g})")
    check(tuple(got.shape) == tuple(ref.shape) and err <= 1e-4 * max(scale, 1.0),
          f"{label}: simclr embed equals torchvision's forward pass")
    check(emb["labels"].dtype == torch.int32 and emb["labels"].shape[0] == 32 and emeta["step"] == "2",
          f"{label}: embed labels and metadata")


def case_imagenet(tmp):
    run = train(tmp, "rgb", "model.stem=imagenet", "data.channels=3", f"data.mean={IMAGENET_MEAN}",
                f"data.std={IMAGENET_STD}")
    simclr("export", run, "--out", f"{tmp}/rgb.safetensors")
    sd, meta = read_safetensors(f"{tmp}/rgb.safetensors")
    model = torchvision.models.resnet18()
    model.fc = nn.Identity()
    model.load_state_dict(sd, strict=True)  # raises on any missing or unexpected key
    check(True, "ImageNet stem: torchvision.models.resnet18() loads the export strictly (fc = Identity)")
    check(len(sd) == 120 and sd["layer4.1.bn2.num_batches_tracked"].item() == 2 and sd["conv1.weight"].shape == (64, 3, 7, 7),
          "ImageNet stem: 120 tensors, OIHW, num_batches_tracked = steps")
    mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    check(meta["normalize"] == "true" and all(abs(a - b) < 1e-6 for a, b in zip(mean + std, IMAGENET_MEAN + IMAGENET_STD)),
          f"ImageNet stem: normalisation in the metadata (mean {meta['mean']}, std {meta['std']})")
    compare_features(tmp, run, meta, model, "ImageNet stem")


def case_cifar(tmp):
    run = train(tmp, "gray", "model.stem=cifar")
    simclr("export", run, "--out", f"{tmp}/gray.safetensors")
    sd, meta = read_safetensors(f"{tmp}/gray.safetensors")
    check(meta["conv1"] == "Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)" and meta["maxpool"] == "Identity",
          "CIFAR stem: the metadata describes the stem")
    model = torchvision_encoder(meta)
    model.load_state_dict(sd, strict=True)
    check(True, "CIFAR stem: torchvision's ResNet-18 with the stated conv1/maxpool loads the export strictly")
    compare_features(tmp, run, meta, model, "CIFAR stem")
    simclr("export", run, "--out", f"{tmp}/gray_timm.safetensors", "--format", "timm")
    td, tmeta = read_safetensors(f"{tmp}/gray_timm.safetensors")
    cfg = json.loads(tmeta["pretrained_cfg"])
    check(td.keys() == sd.keys() and all(torch.equal(td[k], sd[k]) for k in sd),
          "timm format: the same tensors under the same keys")
    check(cfg["architecture"] == "resnet18" and cfg["input_size"] == [1, 28, 28] and cfg["num_features"] == 512,
          "timm format: pretrained_cfg")


def case_init_from(tmp):
    torch.manual_seed(1)
    tv = torchvision.models.resnet18()
    with torch.no_grad():
        for mod in tv.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    state = {f"backbone.{k}": v for k, v in tv.state_dict().items()}
    state["projector.0.weight"] = torch.zeros(4, 512)  # not under the prefix: ignored
    write_safetensors(f"{tmp}/tv.safetensors", state, {"format": "pt"})
    out = simclr("train", "--device", "cpu", "--name", "init", "--set", f"run.dir={tmp}/runs", "--set", f"data.path={tmp}/data",
                 "--set", "model.stem=imagenet", "--set", "model.width=1", "--set", f"model.init_from={tmp}/tv.safetensors",
                 "--set", "optim.lr=0", "--set", "train.batch_size=8", "--set", "train.max_steps=1",
                 "--set", "eval.linear_probe=false", "--set", "run.threads=1", "--set", "run.progress=never")
    check("under 'backbone.'" in out and "conv1 summed over the file's 3 input channels" in out,
          "init_from: prefix found, conv1 adapted to the 1-channel model")
    simclr("export", f"{tmp}/runs/init", "--out", f"{tmp}/init_export.safetensors")
    sd, _ = read_safetensors(f"{tmp}/init_export.safetensors")
    ref = tv.state_dict()
    check(torch.allclose(sd["conv1.weight"], ref["conv1.weight"].sum(dim=1, keepdim=True), rtol=1e-6, atol=1e-7),
          "init_from: conv1 is torchvision's summed over RGB")
    weights = [k for k in ref if not k.startswith(("fc.", "conv1.")) and not k.endswith(("running_mean", "running_var",
                                                                                        "num_batches_tracked"))]
    same = [k for k in weights if torch.equal(sd[k], ref[k])]
    check(len(same) == len(weights) == 59, f"init_from: {len(same)} of {len(weights)} weights equal torchvision's bit for bit")


def main():
    global SIMCLR
    if len(sys.argv) != 2:
        raise SystemExit("usage: test_export.py path/to/simclr")
    SIMCLR = sys.argv[1]
    if not os.path.exists(f"{FASHION}/t10k-images-idx3-ubyte.gz"):
        print("SKIP: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
        sys.exit(77)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="simclr_export_") as tmp:
        tiny_dataset(f"{tmp}/data")
        case_imagenet(tmp)
        case_cifar(tmp)
        case_init_from(tmp)
    print(f"{len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
