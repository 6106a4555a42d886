#!/usr/bin/python3
"""make_photo_folder.py - an ImageNet-like JPEG ImageFolder for `simclr bench loader`.

The photographs shipped in Debian's python3-skimage package (astronaut, chelsea, coffee,
rocket, motorcycle, retina, hubble ...) are cut into random crops, resized to about 400x350
(ImageNet's typical size: sides drawn from 300..500), flipped at random and saved as baseline
JPEGs of quality 90..96 with Pillow, spread over 10 class folders. Deterministic for a seed.

    /usr/bin/python3 tools/make_photo_folder.py OUT_DIR [--count 1000] [--seed 0]
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


if __name__ == "__main__":
    main()
