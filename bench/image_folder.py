# Python's side of bench/image_folder_bench.cpp: torch.utils.data.DataLoader over
# torchvision's ImageFolder with the same transforms (grey images, ToTensor, Normalize),
# batches of 64, shuffled. Prints images/s of one full epoch (after a warm-up batch).
#   python bench/image_folder.py <root> <num_workers>
import sys
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms as T


def gray(path):
    with open(path, "rb") as f:
        return Image.open(f).convert("L")


root, workers = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)  # as the C++ side's workers: decoding is single-threaded work
ds = datasets.ImageFolder(root, T.Compose([T.ToTensor(), T.Normalize([0.2860], [0.3530])]),
                          loader=gray)
dl = DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers,
                generator=torch.Generator().manual_seed(0))
start = time.perf_counter()
n = 0
for x, y in dl:
    n += x.shape[0]
elapsed = time.perf_counter() - start
print(f"{n / elapsed:.1f} images/s ({n} images in {elapsed:.2f} s)")
