# Test peer of tests/data/image_folder_test.cpp: writes an ImageFolder tree of PNG and
# JPEG files (gray, RGB, RGBA, palette), lists it with torchvision's ImageFolder, and
# writes torchvision's output of each pipeline for each sample (float32, raw) for the
# C++ side to compare with. Random pipelines run after torch.manual_seed(100 + index).
import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms as T

root = sys.argv[1]
rng = np.random.default_rng(0)


def save(rel, mode, size, fmt):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h, w = size
    channels = {"L": 1, "RGB": 3, "RGBA": 4}.get(mode, 3)
    # Smooth structure plus noise, so that resampling has something to get wrong.
    yy, xx = np.mgrid[0:h, 0:w]
    base = (np.sin(xx / 3.0) * 60 + np.cos(yy / 4.0) * 60 + 128)[..., None]
    pixels = np.clip(base + rng.integers(-40, 40, (h, w, channels)), 0, 255).astype(np.uint8)
    if mode == "P":
        img = Image.fromarray(pixels, "RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    else:
        img = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    img.save(path, **({"quality": 90} if fmt == "JPEG" else {}))


save("cat/rgb.png", "RGB", (24, 31), "PNG")
save("cat/gray.png", "L", (27, 19), "PNG")
save("cat/nested/deeper/photo.jpg", "RGB", (30, 22), "JPEG")
save("cat/nested/alpha.PNG", "RGBA", (16, 20), "PNG")
save("dog/palette.png", "P", (21, 21), "PNG")
save("dog/gray.jpeg", "L", (25, 33), "JPEG")
save("bird/a.png", "RGB", (12, 40), "PNG")
with open(os.path.join(root, "bird", "notes.txt"), "w") as f:
    f.write("not an image")

norm = T.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
pipelines = {
    "rgb": T.ToTensor(),
    "resize20": T.Compose([T.Resize(20), T.ToTensor()]),
    "resize13x17": T.Compose([T.Resize((13, 17)), T.ToTensor()]),
    "resize45": T.Compose([T.Resize(45), T.ToTensor()]),
    "center10": T.Compose([T.CenterCrop(10), T.ToTensor()]),
    "center40x15": T.Compose([T.CenterCrop((40, 15)), T.ToTensor()]),
    "norm": T.Compose([T.ToTensor(), norm]),
    "rcrop": T.Compose([T.RandomCrop(16, padding=4), T.ToTensor()]),
    "flip": T.Compose([T.RandomHorizontalFlip(), T.ToTensor()]),
    "rrc": T.Compose([T.RandomResizedCrop(12), T.ToTensor()]),
    "compose": T.Compose([T.RandomResizedCrop(12, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
                          T.ToTensor(), norm]),
}
rgb = datasets.ImageFolder(root)
gray = datasets.ImageFolder(root, loader=lambda p: Image.open(p).convert("L"))
print("classes", " ".join(rgb.classes))
for i, (path, target) in enumerate(rgb.samples):
    print("sample", os.path.relpath(path, root), target)
for name, pipeline in list(pipelines.items()) + [("gray", T.ToTensor())]:
    ds = gray if name == "gray" else rgb
    for i in range(len(ds.samples)):
        torch.manual_seed(100 + i)
        image = ds.loader(ds.samples[i][0])
        out = pipeline(image)
        out.numpy().astype(np.float32).tofile(f"out_{name}_{i}.bin")
        print("out", name, i, " ".join(str(s) for s in out.shape))
