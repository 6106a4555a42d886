#!/usr/bin/python3
"""make_photo_folder.py - an ImageNet-like JPEG ImageFolder for `simclr bench loader`.

The photographs shipped in Debian's python3-skimage package (astronaut, chelsea, coffee,
rocket, motorcycle, retina, hubble ...) are cut into random crops, resized to about 400x350
(ImageNet's typical size: sides drawn from 300..500), flipped at random and saved as baseline
JPEGs of quality 90..96 with Pillow, spread over 10 class folders. Deterministic for a seed.
With --cifar DIR it also writes CIFAR-size data in the CIFAR-10 binary format (DIR/
data_batch_1..5.bin and test_batch.bin, 32x32 crops of the same photographs, --cifar-count
images per file) for the loader benchmark's resident case.

    /usr/bin/python3 tools/make_photo_folder.py OUT_DIR [--count 1000] [--seed 0]
                                                [--cifar DIR [--cifar-count 2000]]
"""
import argparse
import os
import random

import numpy as np
from PIL import Image
from skimage import data

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
          "retina", "hubble_deep_field", "immunohistochemistry", "colorwheel"]


def load_photos():
    out = []
    for name in PHOTOS:
        try:
            img = getattr(data, name)()
        except Exception:  # not shipped in this skimage version or needs a download
            continue
        if isinstance(img, tuple):
            img = img[0]
        img = np.asarray(img)
        if img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256:
            out.append(Image.fromarray(img.astype(np.uint8)))
    if not out:
        raise SystemExit("no colour photographs found in skimage.data (install python3-skimage)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cifar", help="also write CIFAR-10 binary files of 32x32 crops here")
    ap.add_argument("--cifar-count", type=int, default=2000, help="records per CIFAR file")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    photos = load_photos()
    for c in range(a.classes):
        os.makedirs(os.path.join(a.out, f"class{c:02d}"), exist_ok=True)
    for i in range(a.count):
        src = photos[i % len(photos)]
        w, h = src.size
        cw = rng.randint(int(w * 0.5), w)
        ch = rng.randint(int(h * 0.5), h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        tw, th = rng.randint(350, 450), rng.randint(300, 400)
        img = src.crop((x, y, x + cw, y + ch)).resize((tw, th), Image.BICUBIC)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        path = os.path.join(a.out, f"class{i % a.classes:02d}", f"img{i:06d}.jpg")
        img.save(path, "JPEG", quality=rng.randint(90, 96))
    print(f"{a.count} JPEGs from {len(photos)} photographs in {a.out}")
    if a.cifar:
        write_cifar(a.cifar, photos, a.cifar_count, rng)


def write_cifar(out, photos, count, rng):
    """CIFAR-10 binary: per record a label byte, then the 1024 R, 1024 G and 1024 B bytes."""
    os.makedirs(out, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        records = bytearray()
        for i in range(count):
            src = photos[rng.randrange(len(photos))]
            w, h = src.size
            side = rng.randint(min(w, h) // 4, min(w, h))
            x, y = rng.randint(0, w - side), rng.randint(0, h - side)
            img = np.asarray(src.crop((x, y, x + side, y + side)).resize((32, 32), Image.BICUBIC))
            records.append(i % 10)
            records += img.transpose(2, 0, 1).tobytes()
        with open(os.path.join(out, name), "wb") as f:
            f.write(records)
    print(f"{len(names)} CIFAR-10 binary files of {count} 32x32 images in {out}")


if __name__ == "__main__":
    main()
