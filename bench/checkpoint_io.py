"""torch.save / torch.load of a checkpoint's content: the baseline of checkpoint_io_bench.

Usage: python bench/checkpoint_io.py <checkpoint> <scratch file> <repeats>
Loads <checkpoint> (written by lightning-cpp) with torch.load(weights_only=True), then
times torch.save(content, <scratch file>) <repeats> times, then torch.load(<scratch file>,
weights_only=True, map_location="cpu") <repeats> times, and prints the
median seconds of each: "save <s> load <s> durable <s> mmap <s>", where durable is
torch.save followed by what lightning-cpp's save adds to survive a power loss (fsync of
the file and of its directory) and mmap is torch.load(..., mmap=True). Only the calls are
timed; each save is followed by os.sync() outside the timing, so every save starts from
the same state.
"""

import os
import statistics
import sys
import time

import torch

path, scratch, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
content = torch.load(path, map_location="cpu", weights_only=True)
saves, loads, durable, mmaps = [], [], [], []


def fsync(path, flags=os.O_RDONLY):
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


for _ in range(repeats):
    start = time.perf_counter()
    torch.save(content, scratch)
    saves.append(time.perf_counter() - start)
    os.sync()
    start = time.perf_counter()
    torch.save(content, scratch)
    fsync(scratch)
    fsync(os.path.dirname(os.path.abspath(scratch)), os.O_RDONLY | os.O_DIRECTORY)
    durable.append(time.perf_counter() - start)
    os.sync()
# Loads back to back, as the C++ side times its own: the first ones after the saves pay for
# growing the heap again, and would make torch.load look slower than it is.
for timings, mmap in ((loads, False), (mmaps, True)):
    for _ in range(repeats):
        start = time.perf_counter()
        loaded = torch.load(scratch, map_location="cpu", weights_only=True, mmap=mmap)
        timings.append(time.perf_counter() - start)
        del loaded
print(
    f"save {statistics.median(saves)!r} load {statistics.median(loads)!r} "
    f"durable {statistics.median(durable)!r} mmap {statistics.median(mmaps)!r}"
)
