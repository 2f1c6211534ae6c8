"""Train, save and resume runs with real PyTorch Lightning, as the peer of lightning-cpp.

tests/trainer/connectors/checkpoint_layout_test.cpp runs the same workloads in C++ and
here, and resumes each language's checkpoints in the other: a run started in Lightning
continues in lightning-cpp, one started in lightning-cpp continues in Lightning's
Trainer.fit(ckpt_path=...), and both must match the other language's uninterrupted run.

Usage:
    python tests/python/lightning_resume.py --model seed|cnn --data DATA --ckpt-dir DIR
        --max-epochs N --out OUT [--resume CKPT] [--save CKPT] [--min-delta X]
        [--scaled-fp16]

--model seed: the seed workload, torch.nn.Linear(10, 1) registered as "linear", MSE
    loss, Adam(lr=0.01) with StepLR(step_size=1, gamma=0.7) stepped per epoch.
--model cnn: the Fashion-MNIST CNN of the C++ examples (conv1 1->32 3x3, conv2 32->64
    3x3, each ReLU and 2x2 max-pool, fc1 1600->128 ReLU, fc2 128->10), cross-entropy,
    SGD(lr=0.05, momentum=0.9) with CosineAnnealingLR(T_max=5) stepped per epoch.
DATA: a file torch.load(weights_only=True) reads as a dict with tensors "train_x",
    "train_y", "val_x", "val_y" (the C++ test writes it). Loaders are unshuffled, batch
    size 16, so both languages see the same batches in the same order.
Callbacks: ModelCheckpoint(dirpath=DIR, monitor="val_loss", save_top_k=2) and
    EarlyStopping(monitor="val_loss", patience=1, min_delta=X (default 0)). No logger,
    progress bar or model summary. The module and its parameters are created after
    pl.seed_everything(0), so every run starts from the same weights.
--resume CKPT: Trainer.fit(ckpt_path=CKPT). --save CKPT: trainer.save_checkpoint(CKPT)
    after fit. --scaled-fp16: Lightning's MixedPrecision("16-mixed", "cpu") plugin with
    torch.amp.GradScaler("cpu", init_scale=1024, growth_interval=3).

OUT (text), one item per line:
    loss <value>            each training step's loss, in order (repr of the float)
    scaler_start <scale> <growth_tracker>   with --scaled-fp16: after the restore
    scaler_end <scale> <growth_tracker>     with --scaled-fp16: after fit
    current_epoch <n>, global_step <n>, stopped_epoch <n> (EarlyStopping's), lr <value>
    kept <name>             each file left in DIR, sorted
Exit status 0 on success; on failure the traceback goes to stderr and the status is 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import warnings

import torch

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.plugins.precision import MixedPrecision


class Seed(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(10, 1)
        self.losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x).float(), y)

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.losses.append(loss.item())
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=0.01)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)]


class Cnn(Seed):
    def __init__(self) -> None:
        pl.LightningModule.__init__(self)
        self.conv1 = torch.nn.Conv2d(1, 32, 3)
        self.conv2 = torch.nn.Conv2d(32, 64, 3)
        self.fc1 = torch.nn.Linear(64 * 5 * 5, 128)
        self.fc2 = torch.nn.Linear(128, 10)
        self.losses = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x).float(), y)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)]


class ScalerProbe(Callback):
    def __init__(self) -> None:
        self.start = None

    def on_train_start(self, trainer, pl_module) -> None:
        s = getattr(trainer.precision_plugin, "scaler", None)
        if s is not None:
            self.start = (s.get_scale(), s._get_growth_tracker())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["seed", "cnn"], required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--ckpt-dir", required=True)
    parser.add_argument("--max-epochs", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume")
    parser.add_argument("--save")
    parser.add_argument("--min-delta", type=float, default=0.0)
    parser.add_argument("--scaled-fp16", action="store_true")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    try:
        data = torch.load(args.data, map_location="cpu", weights_only=True)

        def loader(x, y):
            return torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=False
            )

        pl.seed_everything(0, verbose=False)
        model = Seed() if args.model == "seed" else Cnn()
        early = EarlyStopping(monitor="val_loss", patience=1, min_delta=args.min_delta)
        probe = ScalerProbe()
        plugins = []
        if args.scaled_fp16:
            scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
            plugins.append(MixedPrecision("16-mixed", "cpu", scaler=scaler))
        trainer = pl.Trainer(
            max_epochs=args.max_epochs,
            accelerator="cpu",
            devices=1,
            callbacks=[
                ModelCheckpoint(dirpath=args.ckpt_dir, monitor="val_loss", save_top_k=2),
                early,
                probe,
            ],
            plugins=plugins,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            deterministic=True,
        )
        trainer.fit(
            model,
            loader(data["train_x"], data["train_y"]),
            loader(data["val_x"], data["val_y"]),
            ckpt_path=args.resume,
        )
        if args.save:
            trainer.save_checkpoint(args.save)
        with open(args.out, "w") as out:
            for v in model.losses:
                out.write(f"loss {v!r}\n")
            if args.scaled_fp16:
                s = trainer.precision_plugin.scaler
                out.write(f"scaler_start {probe.start[0]!r} {probe.start[1]}\n")
                out.write(f"scaler_end {s.get_scale()!r} {s._get_growth_tracker()}\n")
            out.write(f"current_epoch {trainer.current_epoch}\n")
            out.write(f"global_step {trainer.global_step}\n")
            out.write(f"stopped_epoch {early.stopped_epoch}\n")
            out.write(f"lr {trainer.optimizers[0].param_groups[0]['lr']!r}\n")
            for name in sorted(os.listdir(args.ckpt_dir)):
                out.write(f"kept {name}\n")
        return 0
    except Exception:  # noqa: BLE001 - reported to the C++ test
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
