#!/usr/bin/env python3
"""Side-by-side benchmark: lightning-cpp beside PyTorch Lightning and plain loops.

What it measures
----------------
Two workloads, each trained under six variants, on the same LibTorch (the C++ program
links against the libtorch of the project's virtual environment, the torch that the
Python variants import):

- ``seed``: Linear(10, 1), Adam 1e-3, X = randn(1000, 10), y = randn(1000), batch 32, no
  shuffle, 30 epochs (960 optimizer steps), MSE against y.unsqueeze(1), ``train_loss``
  logged every step with prog_bar=True. No validation.
- ``cnn``: one epoch of Fashion-MNIST (Debian's files under
  /usr/share/datasets/fashion-mnist: 60k training images shuffled with batch 64, then
  validation on the 10k test images, batch 64, in order), inputs normalised per batch as
  (x/255 - 0.2860)/0.3530 to float32 [b, 1, 28, 28]; conv 3x3 32 -> ReLU -> pool ->
  conv 3x3 64 -> ReLU -> pool -> Linear(3136, 128) -> ReLU -> Linear(128, 10),
  cross-entropy, Adam 1e-3; logs train_loss, val_loss and val_acc (prog_bar).

Variants (each run in its own fresh subprocess and its own temporary working directory,
one after the other, never in parallel; every variant uses 2 intra-op threads):

1. ``lightning``: PyTorch Lightning's Trainer with its defaults (progress bar, model
   summary, checkpointing, TensorBoardLogger, sanity check), accelerator="cpu".
2. ``lightning-lean``: the same with logger=False, enable_checkpointing=False,
   enable_progress_bar=False, enable_model_summary=False.
3. ``pytorch``: the loop written by hand in PyTorch over the same DataLoader.
4. ``trainer``, 5. ``trainer-lean``, 6. ``hand``: the same three in C++ (lightning-cpp's
   Trainer with defaults, lean, and a hand-written LibTorch loop), run by the program
   ``<build>/bench/side_by_side`` (bench/side_by_side.cpp).

The Python variants mirror bench/side_by_side.cpp: torch.manual_seed(0) before the data
(seed) or the model (cnn) is created; DataLoader(TensorDataset(...), num_workers=0); the
cnn images stay uint8 in the dataset and are normalised per batch by the DataLoader's
collate_fn, as the C++ TensorLoader normalises per batch (so that work is timed in both).
Python's one-time import costs stay outside the timed region: the Lightning variants pay
them at ``import pytorch_lightning``, the pytorch variant by building a throwaway Adam
first (the first torch.optim optimizer of a process imports torch._dynamo: about 2 s).

Each variant reports, for the fit only (data parsing and model construction are outside
the timed region, as in the C++ program): the wall time (time.perf_counter around
trainer.fit / the hand loop including validation), the optimizer steps, the minor page
faults of the timed region (getrusage ru_minflt difference), the torch version and the
final metrics (Lightning's trainer.callback_metrics). The report is a Markdown table per
workload (ms per step, ratios to ``hand`` and to ``pytorch``, faults per step, final
metrics) on stdout, ready to paste into docs/performance.md; progress goes to stderr.
Final metrics agree between the three C++ variants; the Python ones differ from them (a
different random stream), and slightly between each other (Lightning draws from the
global generator when it builds data-loader iterators, e.g. for the sanity check).

How to run it
-------------
Build the C++ program first (``cmake --build --preset default --target side_by_side``),
then from the repository root::

    .venv/bin/python bench/side_by_side.py                       # both workloads, all six
    .venv/bin/python bench/side_by_side.py --workloads cnn --repeat 3 --json /tmp/sbs.json
    .venv/bin/python bench/side_by_side.py --workloads seed --variants lightning,pytorch

Options: ``--workloads seed,cnn`` (default both), ``--variants`` (comma-separated, default
all six), ``--repeat N`` (run every variant N times, interleaved, and report the median
seconds with min and max), ``--build DIR`` (default /work/main/build, i.e. the repository's
``build``), ``--json PATH`` (dump every raw result), ``--limit-steps N`` (quick checks
only, see below), ``--verbose`` (echo each child's output to stderr).

How long it takes: on 2 cores, seed takes a few seconds per variant (Lightning's Python
loop is the slowest) and cnn roughly one minute per variant, so a full run of both
workloads with all six variants is about 6-7 minutes (times --repeat).

``--limit-steps N`` limits every variant to N training batches per epoch (so N optimizer
steps for cnn, 30 * N for seed's 30 epochs) and, for cnn, N validation batches: Lightning
gets limit_train_batches=N (and limit_val_batches=N for cnn), the PyTorch loop breaks
after N batches of each epoch (and of the validation), and the C++ program gets the
environment variable ``LIGHTNING_SIDE_BY_SIDE_LIMIT=N``, which it reads with the same
meaning (its Trainer variants pass it as limit_train_batches / limit_val_batches). When a
C++ variant reports more steps than that (a binary built before it honoured the
variable), the report says so. Numbers from limited runs are for checking the script,
not for publishing.

This is a benchmark, not a test: it is never run by CTest, and timing never decides a
test. Run it on a quiet machine and say which machine in docs/performance.md (the header
of the report says it).
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

WORKLOADS = ("seed", "cnn")
PYTHON_VARIANTS = ("lightning", "lightning-lean", "pytorch")
CPP_VARIANTS = ("trainer", "trainer-lean", "hand")
VARIANTS = PYTHON_VARIANTS + CPP_VARIANTS
THREADS = 2
SEED_EPOCHS = 30
LR = 1e-3
FASHION = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530
LIMIT_ENV = "LIGHTNING_SIDE_BY_SIDE_LIMIT"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_RATIOS = (("trainer", "hand"), ("trainer-lean", "hand"), ("lightning", "pytorch"),
              ("lightning-lean", "pytorch"), ("trainer", "lightning"),
              ("trainer-lean", "lightning-lean"))


# ----------------------------------------------------------------------------------------
# Child: one variant of one workload, in this process (python side_by_side.py --run ...).
# ----------------------------------------------------------------------------------------

def _read_idx(path: str, magic: int, header: int):
    """A gzip IDX file as a uint8 tensor: images [n, rows, cols] or labels [n]."""
    import torch

    with gzip.open(path, "rb") as f:
        data = f.read()
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise SystemExit(f"{path}: IDX magic {found:#010x}, expected {magic:#010x}")
    dims = struct.unpack(">" + "I" * ((header - 4) // 4), data[4:header])
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header)
    return t.reshape(dims)


def _normalizing_collate(samples):
    """default_collate, then the inputs to float32 (x/255 - mean)/std, once per batch."""
    from torch.utils.data import default_collate

    x, y = default_collate(samples)
    return x.float().div_(255).sub_(MEAN).div_(STD), y


def _seed_data():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    X = torch.randn(1000, 10)
    y = torch.randn(1000)
    return DataLoader(TensorDataset(X, y), batch_size=32, shuffle=False, num_workers=0), None


def _cnn_data():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def split(prefix):
        x = _read_idx(f"{FASHION}/{prefix}-images-idx3-ubyte.gz", 0x00000803, 16)
        y = _read_idx(f"{FASHION}/{prefix}-labels-idx1-ubyte.gz", 0x00000801, 8)
        return TensorDataset(x.unsqueeze(1).contiguous(), y.to(torch.long))

    train, val = split("train"), split("t10k")
    torch.manual_seed(0)  # after parsing, before the model, as in the C++ program
    return (DataLoader(train, batch_size=64, shuffle=True, num_workers=0,
                       collate_fn=_normalizing_collate),
            DataLoader(val, batch_size=64, shuffle=False, num_workers=0,
                       collate_fn=_normalizing_collate))


def _modules(base):
    """The two models on top of `base` (torch.nn.Module or a LightningModule)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SeedModel(base):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(10, 1)

        def forward(self, x):
            return self.linear(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.mse_loss(self(x), y.unsqueeze(1))
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    class FashionCNN(base):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
            self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
            self.fc1 = nn.Linear(64 * 7 * 7, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 32 x 14 x 14
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 64 x 7 x 7
            return self.fc2(F.relu(self.fc1(x.flatten(1))))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self(x)
            self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
            self.log("val_acc", logits.argmax(1).eq(y).float().mean(), prog_bar=True)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    return {"seed": SeedModel, "cnn": FashionCNN}


def _minor_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _fit_lightning(workload, lean, limit, model, train, val):
    import pytorch_lightning as pl

    kwargs = dict(max_epochs=SEED_EPOCHS if workload == "seed" else 1, accelerator="cpu",
                  devices=1, default_root_dir=os.getcwd())
    if lean:
        kwargs.update(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    if limit is not None:
        kwargs.update(limit_train_batches=limit)
        if val is not None:
            kwargs.update(limit_val_batches=limit)
    trainer = pl.Trainer(**kwargs)
    loaders = (train,) if val is None else (train, val)
    faults = _minor_faults()
    start = time.perf_counter()
    trainer.fit(model, *loaders)
    seconds = time.perf_counter() - start
    faults = _minor_faults() - faults
    metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items())}
    return seconds, trainer.global_step, faults, metrics


def _fit_pytorch(workload, limit, model, train, val):
    import torch
    import torch.nn.functional as F

    epochs = SEED_EPOCHS if workload == "seed" else 1
    if workload == "seed":
        def criterion(out, target):
            return F.mse_loss(out, target.unsqueeze(1))
    else:
        criterion = F.cross_entropy
    faults = _minor_faults()
    start = time.perf_counter()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    steps, loss = 0, None
    for _ in range(epochs):
        for i, (x, target) in enumerate(train):
            if limit is not None and i == limit:
                break
            optimizer.zero_grad()
            loss = criterion(model(x), target)
            loss.backward()
            optimizer.step()
            steps += 1
    metrics = {"train_loss": loss.item()}
    if val is not None:
        # Epoch means weighted by batch size, as Lightning's log() reduces.
        model.eval()
        with torch.inference_mode():
            loss_sum = torch.zeros((), dtype=torch.float64)
            correct = torch.zeros((), dtype=torch.float64)
            n = 0
            for i, (x, target) in enumerate(val):
                if limit is not None and i == limit:
                    break
                logits = model(x)
                b = x.size(0)
                loss_sum += F.cross_entropy(logits, target) * b
                correct += logits.argmax(1).eq(target).float().mean() * b
                n += b
        model.train()
        metrics["val_acc"] = correct.item() / n
        metrics["val_loss"] = loss_sum.item() / n
    seconds = time.perf_counter() - start
    faults = _minor_faults() - faults
    return seconds, steps, faults, metrics


def child(workload: str, variant: str, limit: int | None) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(THREADS)
    train, val = _seed_data() if workload == "seed" else _cnn_data()
    if variant == "pytorch":
        model = _modules(torch.nn.Module)[workload]()
        # The first torch.optim optimizer of a process imports torch._dynamo (and sympy):
        # about 2 s, once. `import pytorch_lightning` pays it before the Lightning
        # variants' timed region; pay it here too, outside the timed region.
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=LR)
        seconds, steps, faults, metrics = _fit_pytorch(workload, limit, model, train, val)
    else:
        import logging

        import pytorch_lightning as pl

        logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
        model = _modules(pl.LightningModule)[workload]()
        seconds, steps, faults, metrics = _fit_lightning(
            workload, variant == "lightning-lean", limit, model, train, val)
    result = {"workload": workload, "variant": variant, "torch": torch.__version__,
              "seconds": seconds, "steps": steps, "minor_faults": faults,
              "threads": torch.get_num_threads(), **metrics}
    sys.stdout.flush()
    print("result " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------
# Parent: run every variant in its own process and report.
# ----------------------------------------------------------------------------------------

def _binary(build: str) -> str:
    return os.path.join(build, "bench", "side_by_side")


def _run_one(workload, variant, args) -> dict:
    work = tempfile.mkdtemp(prefix=f"side_by_side-{workload}-{variant}-")
    env = dict(os.environ)
    env.pop(LIMIT_ENV, None)
    if variant in CPP_VARIANTS:
        command = [_binary(args.build), workload, variant, work]
        if args.limit_steps is not None:
            env[LIMIT_ENV] = str(args.limit_steps)
    else:
        command = [sys.executable, os.path.abspath(__file__), "--run", workload, variant]
        if args.limit_steps is not None:
            command += ["--limit-steps", str(args.limit_steps)]
        env["PYTHONWARNINGS"] = "ignore"
    try:
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=work, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace")
        process_seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.verbose:
        sys.stderr.write(proc.stdout + proc.stderr)
    result = None
    for line in proc.stdout.splitlines():
        line = line.rsplit("\r", 1)[-1]
        m = re.search(r"result (\{.*\})\s*$", line)
        if m:
            result = json.loads(m.group(1))
    if proc.returncode != 0 or result is None:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-40:])
        raise SystemExit(f"side_by_side.py: {workload}/{variant} failed "
                         f"(exit {proc.returncode}): {shlex.join(command)}\n{tail}")
    result["process_seconds"] = process_seconds
    result["command"] = shlex.join(command)
    return result


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _fmt(value, digits=3):
    return "–" if value is None else f"{value:.{digits}f}"


def _summarise(runs: list[dict]) -> dict:
    seconds = [r["seconds"] for r in runs]
    first = runs[0]
    median = statistics.median(seconds)
    steps = first["steps"]
    return {"seconds": median, "min": min(seconds), "max": max(seconds), "steps": steps,
            "ms_per_step": 1000 * median / steps if steps else None,
            "faults_per_step": (statistics.median(r["minor_faults"] for r in runs) / steps
                                if steps else None),
            "train_loss": first.get("train_loss"), "val_acc": first.get("val_acc"),
            "val_loss": first.get("val_loss"), "torch": first["torch"], "n": len(runs)}


def _ratio(table, a, b):
    if a in table and b in table and table[a]["ms_per_step"] and table[b]["ms_per_step"]:
        return table[a]["ms_per_step"] / table[b]["ms_per_step"]
    return None


def report(results: dict, args, started: str) -> tuple[str, dict]:
    out = []
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv))
    torch_py = _version("torch")
    cpp_torch = sorted({r["torch"] for runs in results.values() for r in runs
                        if r["variant"] in CPP_VARIANTS})
    out.append("### Side by side: lightning-cpp and PyTorch Lightning (bench/side_by_side.py)")
    out.append("")
    out.append(f"- command: `{command}`")
    out.append(f"- date: {started}")
    out.append(f"- torch (Python): {torch_py}; LibTorch of the C++ program: "
               f"{', '.join(cpp_torch) if cpp_torch else 'not run'}; "
               f"pytorch_lightning {_version('pytorch_lightning')}; "
               f"Python {platform.python_version()}")
    base = lambda v: v.split("+", 1)[0]  # noqa: E731
    if cpp_torch and any(base(v) != base(torch_py) for v in cpp_torch):
        out.append("- **warning: the C++ program and the Python variants use different "
                   "torch versions**")
    out.append(f"- intra-op threads: {THREADS} (torch.set_num_threads / "
               f"torch::set_num_threads in every variant)")
    out.append(f"- CPU: {_cpu_model()} (platform.processor(): "
               f"{platform.processor() or 'n/a'}; {os.cpu_count()} logical CPUs); "
               f"{platform.system()} {platform.release()}")
    out.append(f"- repeat: {args.repeat} (each variant in a fresh process"
               + (", interleaved; seconds are medians" if args.repeat > 1 else "") + ")")
    if args.limit_steps is not None:
        out.append(f"- **--limit-steps {args.limit_steps}: a quick check, not a "
                   f"measurement** (C++ via {LIMIT_ENV}={args.limit_steps})")
    summary = {}
    for workload in args.workloads:
        table = {v: _summarise(results[(workload, v)]) for v in VARIANTS
                 if (workload, v) in results}
        summary[workload] = table
        out.append("")
        out.append(f"#### {workload}")
        out.append("")
        cols = ["variant", "total s"]
        if args.repeat > 1:
            cols += ["min s", "max s"]
        cols += ["steps", "ms/step", "/ hand", "/ pytorch", "minor faults/step",
                 "train_loss"]
        if workload == "cnn":
            cols += ["val_acc"]
        out.append("| " + " | ".join(cols) + " |")
        out.append("| " + " | ".join("---" for _ in cols) + " |")
        for variant, row in table.items():
            cells = [variant, _fmt(row["seconds"])]
            if args.repeat > 1:
                cells += [_fmt(row["min"]), _fmt(row["max"])]
            cells += [str(row["steps"]), _fmt(row["ms_per_step"], 4),
                      _fmt(_ratio(table, variant, "hand")),
                      _fmt(_ratio(table, variant, "pytorch")),
                      _fmt(row["faults_per_step"], 1), _fmt(row["train_loss"], 4)]
            if workload == "cnn":
                cells += [_fmt(row["val_acc"], 4)]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        ratios = ", ".join(f"`{a} / {b}` = {_fmt(_ratio(table, a, b))}" for a, b in KEY_RATIOS)
        out.append(f"Key ratios (ms/step): {ratios}")
        if args.limit_steps is not None:
            most = args.limit_steps * (SEED_EPOCHS if workload == "seed" else 1)
            ignored = [v for v, row in table.items()
                       if v in CPP_VARIANTS and row["steps"] > most]
            if ignored:
                out.append("")
                out.append(f"Note: {', '.join(ignored)} ran {table[ignored[0]]['steps']} "
                           f"steps: the C++ program ignored {LIMIT_ENV}, so its rows are "
                           f"not comparable with the limited Python rows.")
    return "\n".join(out), summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Side-by-side benchmark of lightning-cpp, PyTorch Lightning and plain "
                    "loops (a benchmark, not a test; see the module docstring).")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated subset of: seed,cnn (default: both)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of: " + ",".join(VARIANTS) +
                             " (default: all six)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per variant, interleaved; report median (and min/max)")
    parser.add_argument("--build", default=os.path.join(REPO, "build"),
                        help="CMake build directory holding bench/side_by_side "
                             "(default: %(default)s)")
    parser.add_argument("--json", metavar="PATH", help="write every raw result to PATH")
    parser.add_argument("--limit-steps", type=int, metavar="N",
                        help=f"quick checks only: at most N training batches per epoch (and "
                             f"N validation batches) in every variant; the C++ program gets "
                             f"{LIMIT_ENV}=N")
    parser.add_argument("--verbose", action="store_true",
                        help="echo each variant's own output to stderr")
    parser.add_argument("--run", nargs=2, metavar=("WORKLOAD", "VARIANT"),
                        help=argparse.SUPPRESS)  # internal: one Python variant, in-process
    args = parser.parse_args()

    if args.limit_steps is not None and args.limit_steps < 1:
        parser.error("--limit-steps must be at least 1")
    if args.run:
        workload, variant = args.run
        if workload not in WORKLOADS or variant not in PYTHON_VARIANTS:
            parser.error(f"--run: unknown workload or Python variant: {workload} {variant}")
        child(workload, variant, args.limit_steps)
        return

    args.workloads = [w for w in args.workloads.split(",") if w]
    args.variants = [v for v in args.variants.split(",") if v]
    for w in args.workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r} (choose from {', '.join(WORKLOADS)})")
    for v in args.variants:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r} (choose from {', '.join(VARIANTS)})")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.build = os.path.abspath(args.build)
    if any(v in CPP_VARIANTS for v in args.variants) and not os.access(
            _binary(args.build), os.X_OK):
        raise SystemExit(
            f"side_by_side.py: the C++ program {_binary(args.build)} is missing; build it "
            f"first:\n    cmake --build --preset default --target side_by_side\n"
            f"(or pass --build DIR, or leave the C++ variants out with --variants)")

    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    results: dict[tuple[str, str], list[dict]] = {}
    for workload in args.workloads:
        for rep in range(args.repeat):
            for variant in args.variants:
                label = f"{workload}/{variant}" + (f" #{rep + 1}" if args.repeat > 1 else "")
                print(f"running {label} ...", end="", file=sys.stderr, flush=True)
                result = _run_one(workload, variant, args)
                result["repetition"] = rep
                results.setdefault((workload, variant), []).append(result)
                print(f" {result['seconds']:.3f} s, {result['steps']} steps "
                      f"(process {result['process_seconds']:.1f} s)",
                      file=sys.stderr, flush=True)

    text, summary = report(results, args, started)
    print(text)
    if args.json:
        dump = {"command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
                "date": started,
                "machine": {"cpu": _cpu_model(), "processor": platform.processor(),
                            "logical_cpus": os.cpu_count(), "platform": platform.platform()},
                "torch": _version("torch"),
                "pytorch_lightning": _version("pytorch_lightning"),
                "threads": THREADS, "repeat": args.repeat, "limit_steps": args.limit_steps,
                "build": args.build,
                "results": [r for runs in results.values() for r in runs],
                "summary": summary}
        with open(args.json, "w") as f:
            json.dump(dump, f, indent=2)
            f.write("\n")
        print(f"raw results written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
