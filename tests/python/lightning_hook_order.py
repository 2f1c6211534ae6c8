"""Record every hook call real PyTorch Lightning makes, in order.

The C++ hook-order tests run this script and compare lightning-cpp's hook sequence
with the one printed here, so the reference is what the installed PyTorch Lightning
really does rather than a list copied by hand.

Usage:
    python tests/python/lightning_hook_order.py            # the recorded calls
    python tests/python/lightning_hook_order.py --list-hooks

What runs: torch.manual_seed(0); X = torch.randn(64, 10), y = torch.randn(64); one
DataLoader(TensorDataset(X, y), batch_size=8) (no shuffle, num_workers=0) each for
train, val, test and predict; a LightningModule with Linear(10, 1), MSE loss against
y.unsqueeze(1) and SGD(lr=0.01) (training/validation/test_step return the loss,
predict_step the output); Trainer(max_epochs=2, limit_{train,val,test,predict}_batches=2,
num_sanity_val_steps=2, no progress bar, no model summary, logger=False, checkpointing
on, CPU, 1 device) with one recording Callback. On that trainer and model: fit (with
validation and the sanity check), then validate, test and predict. Files (the
checkpoints) go to a temporary directory, removed at exit.

stdout contract, one line per hook call in the order Lightning made them, nothing else:
    <prefix><hook>            e.g. on_fit_start, Callback.on_train_epoch_end
    <prefix><hook>(<arg>)     e.g. setup(fit), Callback.teardown(test), training_step(1)
<prefix> is "Callback." for a call on the callback and empty for one on the module.
<arg> is the stage ("fit", "validate", "test", "predict") for hooks that take a
`stage` (setup, teardown) and the batch index for hooks that take a `batch_idx`
(on_*_batch_start/end, *_step, and also optimizer_step and optimizer_zero_grad,
whose signatures have a batch_idx too); every other hook is printed without
parentheses. Arguments are matched by parameter name (inspect.signature), whether
Lightning passes them by position or by keyword.

With --list-hooks it prints instead every hook name the script wraps, sorted, as
"module <name>" and "callback <name>" lines (the C++ side diffs this against the
hooks lightning-cpp has).

Which hooks are wrapped (introspection, not a hand-written list):
  * module: every public function defined in pytorch_lightning.core.hooks.ModelHooks,
    DataHooks and CheckpointHooks (all of them are hooks), plus the public functions
    defined on LightningModule itself that Lightning lists in its own hook registry,
    _FxValidator.functions (trainer/connectors/logger_connector/fx_validator.py: every
    function Lightning calls on user code, with the logging it allows there). That
    picks training/validation/test/predict_step, configure_optimizers,
    configure_callbacks, configure_gradient_clipping, clip_gradients, optimizer_step,
    optimizer_zero_grad, lr_scheduler_step and backward, and leaves out the utilities
    the user calls (log, print, freeze, to_onnx, optimizers, ...) and forward.
  * callback: every public function defined on pytorch_lightning.Callback.

How a call is recorded: each hook is replaced, on the instance only, by a
functools.wraps wrapper that appends the line and then calls the original bound
method with the same arguments, returning its result, so the module's own step
implementations and Lightning's defaults run unchanged. functools.wraps sets
__wrapped__, which Lightning's is_overridden() follows, so Lightning still sees the
same hooks as overridden or not (the script checks this and fails otherwise).
Only calls made by Lightning are recorded: a call whose direct caller is the body of
one of the object's own hook implementations (e.g. the default
configure_gradient_clipping calling self.clip_gradients) is a nested call the hook
makes itself and is not printed. Everything else is a call by Lightning and is
printed, wherever in Lightning it comes from: training_step called from the
optimizer closure that the default optimizer_step hands to optimizer.step is still
printed, as is backward called by the precision plugin.

Lightning's info logging is silenced, warnings go to stderr, and anything Lightning
prints to stdout is sent to stderr, so stdout holds only the contract lines. Any
failure prints a message to stderr and exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import functools
import inspect
import logging
import sys
import tempfile
import traceback
import types
import warnings
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, TensorDataset

import pytorch_lightning as pl
from pytorch_lightning.core import hooks as pl_hooks
from pytorch_lightning.trainer.connectors.logger_connector.fx_validator import _FxValidator
from pytorch_lightning.utilities.model_helpers import is_overridden

SCRIPT = "lightning_hook_order.py"
CALLBACK_PREFIX = "Callback."


# --- Which hooks exist --------------------------------------------------------------


def public_functions(cls: type) -> set[str]:
    """Names of the public plain functions defined in the body of `cls` itself."""
    return {
        name
        for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }


def module_hook_names() -> set[str]:
    names: set[str] = set()
    for cls in (pl_hooks.ModelHooks, pl_hooks.DataHooks, pl_hooks.CheckpointHooks):
        names |= public_functions(cls)
    names |= public_functions(pl.LightningModule) & set(_FxValidator.functions)
    return names


def callback_hook_names() -> set[str]:
    return public_functions(pl.Callback)


# --- Recording ----------------------------------------------------------------------


def call_argument(signature: inspect.Signature, args: tuple, kwargs: dict) -> str:
    """The "(<stage>)" or "(<batch_idx>)" suffix of a call's line, or "" for neither."""
    bound = signature.bind_partial(*args, **kwargs).arguments
    if "stage" in bound:
        stage = bound["stage"]
        return f"({stage.value if isinstance(stage, enum.Enum) else stage})"
    if "batch_idx" in bound:
        return f"({bound['batch_idx']})"
    return ""


def hook_codes(owner: object, names: set[str]) -> set[types.CodeType]:
    """The code objects of every implementation of the hooks along the owner's MRO."""
    codes = set()
    for cls in type(owner).__mro__:
        for name in names:
            function = vars(cls).get(name)
            if inspect.isfunction(function):
                codes.add(function.__code__)
    return codes


def instrument(owner: object, names: set[str], prefix: str, calls: list[str]) -> None:
    """Replaces each hook of `owner` (on the instance) with a recording wrapper."""
    nested_callers = hook_codes(owner, names)

    def recording(name: str, original: Callable) -> Callable:
        signature = inspect.signature(original)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if sys._getframe(1).f_code not in nested_callers:
                calls.append(prefix + name + call_argument(signature, args, kwargs))
            return original(*args, **kwargs)

        return wrapper

    overridden_before = {name: is_overridden(name, owner) for name in names}
    for name in sorted(names):
        setattr(owner, name, recording(name, getattr(owner, name)))
    overridden_after = {name: is_overridden(name, owner) for name in names}
    if overridden_before != overridden_after:
        changed = sorted(n for n in names if overridden_before[n] != overridden_after[n])
        raise RuntimeError(f"wrapping changed is_overridden() for {changed}")


# --- The run ------------------------------------------------------------------------


class Model(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y.unsqueeze(1))

    def training_step(self, batch, batch_idx):
        return self.loss(batch)

    def validation_step(self, batch, batch_idx):
        return self.loss(batch)

    def test_step(self, batch, batch_idx):
        return self.loss(batch)

    def predict_step(self, batch, batch_idx):
        x, _ = batch
        return self(x)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Recorder(pl.Callback):
    """A callback that overrides nothing: its hooks are wrapped on the instance."""


def record_hook_calls() -> list[str]:
    calls: list[str] = []
    torch.manual_seed(0)
    X = torch.randn(64, 10)
    y = torch.randn(64)

    def loader() -> DataLoader:
        return DataLoader(TensorDataset(X, y), batch_size=8, shuffle=False, num_workers=0)

    model = Model()
    recorder = Recorder()
    instrument(model, module_hook_names(), "", calls)
    instrument(recorder, callback_hook_names(), CALLBACK_PREFIX, calls)

    with tempfile.TemporaryDirectory(prefix="lightning_hook_order_") as root:
        trainer = pl.Trainer(
            max_epochs=2,
            limit_train_batches=2,
            limit_val_batches=2,
            limit_test_batches=2,
            limit_predict_batches=2,
            num_sanity_val_steps=2,
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
            enable_checkpointing=True,
            default_root_dir=root,
            accelerator="cpu",
            devices=1,
            callbacks=[recorder],
        )
        trainer.fit(model, train_dataloaders=loader(), val_dataloaders=loader())
        trainer.validate(model, dataloaders=loader())
        trainer.test(model, dataloaders=loader())
        trainer.predict(model, dataloaders=loader())
    return calls


def list_hooks() -> list[str]:
    lines = [f"module {name}" for name in module_hook_names()]
    lines += [f"callback {name}" for name in callback_hook_names()]
    return sorted(lines)


def quiet_lightning() -> None:
    """Lightning's info messages off; warnings stay on stderr, each shown once."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.simplefilter("once")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list-hooks", action="store_true",
                        help="print the wrapped hook names instead of running")
    options = parser.parse_args()
    quiet_lightning()
    try:
        # Whatever Lightning or torch might print goes to stderr; stdout is the contract.
        with contextlib.redirect_stdout(sys.stderr):
            lines = list_hooks() if options.list_hooks else record_hook_calls()
    except Exception:
        traceback.print_exc()
        print(f"{SCRIPT}: error: the Lightning run failed (traceback above)", file=sys.stderr)
        return 1
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
