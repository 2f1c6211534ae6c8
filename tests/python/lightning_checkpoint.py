"""Load lightning-cpp checkpoints with Python's torch and real PyTorch Lightning.

The C++ checkpoint tests write checkpoints with lightning-cpp and run this script on
them, to check that Python users can open them the standard ways: torch's safe
loader (torch.load(weights_only=True)) and Lightning's own
LightningModule.load_from_checkpoint. Nothing here works around a file that these
refuse: a refusal is a bug of the C++ writer.

Usage:
    python tests/python/lightning_checkpoint.py load-weights-only <ckpt>...
    python tests/python/lightning_checkpoint.py predict <ckpt> <inputs.pt> <outputs>

load-weights-only: for each path, torch.load(path, map_location="cpu",
    weights_only=True). stdout, one line per file that loads:
        ok <path> <its sorted top-level keys, joined by ",">
    A file that fails (or whose content is not a dict) is reported on stderr as
    "FAILED <path>: <exception type>: <message>"; every file is tried, and the exit
    status is 1 if any failed, 0 otherwise.

predict: SeedModel.load_from_checkpoint(<ckpt>, map_location="cpu"), Lightning's own
    classmethod with its defaults (in torch >= 2.6 it loads with weights_only=True,
    strict state-dict loading). SeedModel is the module the C++ tests train: one
    torch.nn.Linear(10, 1) registered as "linear", forward(x) = linear(x) (plus an
    MSE training_step and Adam(lr=1e-3), which loading does not use). The model is put
    in eval mode, the input tensor is read from <inputs.pt>, and the predictions
    model(inputs), computed under torch.no_grad(), are written to <outputs> (any
    name; the format below is text whatever the extension, e.g. outputs.pt).
    stdout on success, one line:  ok <outputs>

<inputs.pt> may be written by LibTorch in either of its two ways:
  * torch::save(tensor, path): a TorchScript archive (a zip with a constants.pkl
    record) holding a module with the tensor as its parameter "0" (LibTorch's
    torch/serialize/tensor.h writes it with archive.write("0", tensor)). torch.load
    refuses these with weights_only=True, so it is read with torch.jit.load(path,
    map_location="cpu") and the module's attribute "0" is taken.
  * torch::pickle_save(tensor) written to a file: the torch.save zip format holding
    the pickled tensor, read with torch.load(path, map_location="cpu",
    weights_only=True). (A bare tensor pickles with no restore_type_tag global, so the
    safe loader accepts it.)
  A file written by Python's torch.save(tensor) reads the second way as well.

<outputs> is plain text, chosen because LibTorch's torch::load cannot read
Python's torch.save files: the first line is the shape, the sizes separated by single
spaces (e.g. "8 1"; an empty line for a 0-d tensor); then one value per line, numel
lines in row-major (C) order, each written with Python's repr(float(value)): the
shortest decimal that reads back (strtod / std::stod) as exactly the same double, so
the float32 predictions round-trip exactly; non-finite values are "nan", "inf",
"-inf". The file ends with a newline.

Lightning's info logging is silenced, warnings go to stderr, and anything printed by
Lightning or torch goes to stderr, so stdout holds only the lines above. On any
failure the script prints the error to stderr and exits with status 1 (argument
errors: status 2, from argparse).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
import warnings
import zipfile

import torch

import pytorch_lightning as pl

SCRIPT = "lightning_checkpoint.py"


class SeedModel(pl.LightningModule):
    """The module the C++ tests train (a Linear(10, 1) registered as "linear")."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


# --- load-weights-only --------------------------------------------------------------


def load_weights_only(paths: list[str]) -> tuple[list[str], int]:
    """The stdout lines for the files that load, and how many failed."""
    lines: list[str] = []
    failures = 0
    for path in paths:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(checkpoint, dict):
                raise TypeError(f"the file holds a {type(checkpoint).__name__}, not a dict")
        except Exception as error:
            failures += 1
            print(f"FAILED {path}: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        lines.append(f"ok {path} {','.join(sorted(str(key) for key in checkpoint))}")
    return lines, failures


# --- predict ------------------------------------------------------------------------


def is_torchscript_archive(path: str) -> bool:
    """Whether `path` is a TorchScript zip (what LibTorch's torch::save writes)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def load_input_tensor(path: str) -> torch.Tensor:
    if is_torchscript_archive(path):
        holder = torch.jit.load(path, map_location="cpu")
        if not hasattr(holder, "0"):
            raise ValueError(f"{path}: TorchScript archive without the tensor \"0\" "
                             "that torch::save(tensor, path) writes")
        tensor = getattr(holder, "0")
    else:
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{path} holds a {type(tensor).__name__}, not a tensor")
    return tensor.detach()


def write_tensor_text(tensor: torch.Tensor, path: str) -> None:
    lines = [" ".join(str(size) for size in tensor.shape)]
    lines += [repr(float(value)) for value in tensor.reshape(-1).tolist()]
    with open(path, "w", encoding="ascii") as out:
        out.write("\n".join(lines) + "\n")


def predict(checkpoint: str, inputs: str, outputs: str) -> list[str]:
    model = SeedModel.load_from_checkpoint(checkpoint, map_location="cpu")
    model.eval()
    x = load_input_tensor(inputs)
    with torch.no_grad():
        predictions = model(x)
    write_tensor_text(predictions, outputs)
    return [f"ok {outputs}"]


# --- main ---------------------------------------------------------------------------


def quiet_lightning() -> None:
    """Lightning's info messages off; warnings stay on stderr, each shown once."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.simplefilter("once")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load-weights-only",
                               help="torch.load(weights_only=True) each checkpoint")
    load.add_argument("checkpoints", nargs="+", metavar="ckpt")
    run = commands.add_parser("predict",
                              help="load with SeedModel.load_from_checkpoint and predict")
    run.add_argument("checkpoint", metavar="ckpt")
    run.add_argument("inputs", metavar="inputs.pt")
    run.add_argument("outputs", metavar="outputs")
    options = parser.parse_args()
    quiet_lightning()
    failures = 0
    try:
        # Anything Lightning or torch prints goes to stderr; stdout is the contract.
        with contextlib.redirect_stdout(sys.stderr):
            if options.command == "load-weights-only":
                lines, failures = load_weights_only(options.checkpoints)
            else:
                lines = predict(options.checkpoint, options.inputs, options.outputs)
    except Exception:
        traceback.print_exc()
        print(f"{SCRIPT}: error: {options.command} failed (traceback above)", file=sys.stderr)
        return 1
    sys.stdout.write("".join(line + "\n" for line in lines))
    if failures:
        print(f"{SCRIPT}: error: {failures} of {len(options.checkpoints)} checkpoint(s) "
              "failed to load with torch.load(weights_only=True)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
