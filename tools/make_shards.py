#!/usr/bin/python3
"""make_shards.py - convert an ImageFolder into WebDataset tar shards for data.dataset: shards.

Samples are taken in ImageFolder order (class directories sorted, then a sorted recursive walk
that follows symlinks; .jpg .jpeg .png in any case; names starting with '.' skipped, as
simclr's ImageFolder reader does) and written as uncompressed tar members
<key>.<ext> (the image bytes, unchanged) and <key>.cls (the class index as ASCII), with
key = the sample's running index. simclr reads members at their offsets, so shards must not be
compressed.

    /usr/bin/python3 tools/make_shards.py SRC_DIR OUT_DIR [--per-shard 1000] [--prefix train]
                                          [--unlabeled]
"""
import argparse
import io
import os
import tarfile

EXTS = (".jpg", ".jpeg", ".png")


def walk(top):
    for d, dirs, files in sorted(os.walk(top, followlinks=True)):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        if any(part.startswith(".") for part in os.path.relpath(d, top).split(os.sep) if part != "."):
            continue
        for f in sorted(files):
            if not f.startswith(".") and f.lower().endswith(EXTS):
                yield os.path.join(d, f)


def samples(src, labeled):
    if not labeled:
        for p in walk(src):
            yield p, None
        return
    classes = sorted(e for e in os.listdir(src) if not e.startswith(".") and os.path.isdir(os.path.join(src, e)))
    if not classes:
        raise SystemExit(f"{src}: no class directories (use --unlabeled for a flat folder)")
    for label, c in enumerate(classes):
        for p in walk(os.path.join(src, c)):
            yield p, label


def add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(payload))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--prefix", default="train")
    ap.add_argument("--unlabeled", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tar, shard, n = None, 0, 0
    for i, (path, label) in enumerate(samples(a.src, not a.unlabeled)):
        if i % a.per_shard == 0:
            if tar:
                tar.close()
            tar = tarfile.open(os.path.join(a.out, f"{a.prefix}-{shard:06d}.tar"), "w", format=tarfile.PAX_FORMAT)
            shard += 1
        key = f"{i:09d}"
        with open(path, "rb") as f:
            add(tar, key + os.path.splitext(path)[1].lower(), f.read())
        if label is not None:
            add(tar, key + ".cls", str(label).encode())
        n += 1
    if tar:
        tar.close()
    if n == 0:
        raise SystemExit(f"{a.src}: no .jpg, .jpeg or .png files")
    print(f"{n} samples in {shard} shards under {a.out}")


if __name__ == "__main__":
    main()
