"""The run state kept in checkpoints (:class:`TrainState`) and a run's :class:`TrainResult`.

The model, optimiser, GradScaler and torch RNG states live in their own objects and are saved
beside this state by :mod:`benchmark.train.checkpoint`; the learning-rate scheduler needs no
state of its own, as its rate is a function of :meth:`TrainState.steps_done`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class EpochSums:
    """Running sums of the current epoch (kept in checkpoints, so a resumed epoch adds on)."""

    loss: float = 0.0
    ssim: float = 0.0
    images: int = 0
    seconds: float = 0.0
    wait: float = 0.0


@dataclass
class TrainState:
    """Where a run stands; its fields are the checkpoint's metadata keys."""

    config: dict[str, Any] = field(default_factory=dict)  # the run's options, for --resume checks
    epoch: int = 0  # epochs finished
    batch: int = 0  # batches finished in the current epoch
    partial: EpochSums = field(default_factory=EpochSums)
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch
    best_epoch: int | None = None
    best_val_loss: float | None = None
    train_seconds: float = 0.0
    wait_seconds: float = 0.0
    train_images: int = 0

    def steps_done(self, per_epoch: int) -> int:
        """Optimisation steps finished so far (the learning-rate schedule's position)."""
        return self.epoch * per_epoch + self.batch

    def to_meta(self) -> dict[str, Any]:
        """The state as JSON-ready checkpoint metadata."""
        return asdict(self)

    def restore(self, meta: dict[str, Any]) -> None:
        """Take the run state from a checkpoint's metadata (``config`` stays this run's)."""
        for name in (f.name for f in fields(self)):
            if name in meta and name != "config":
                setattr(self, name, meta[name])
        if isinstance(self.partial, dict):
            self.partial = EpochSums(**self.partial)

    def finish_epoch(self, epoch: int) -> dict[str, Any]:
        """Fold the finished epoch's running sums into the totals; its history record."""
        partial = self.partial
        seen = max(partial.images, 1)
        self.train_seconds += partial.seconds
        self.wait_seconds += partial.wait
        self.train_images += partial.images
        self.epoch, self.batch = epoch + 1, 0
        seconds = max(partial.seconds, 1e-9)
        return {
            "epoch": epoch + 1,
            "loss": partial.loss / seen,
            "ssim": partial.ssim / seen,
            "seconds": round(partial.seconds, 2),
            "images_per_second": round(partial.images / seconds, 1),
            "data_wait_fraction": round(partial.wait / seconds, 4),
        }

    def record_epoch(self, record: dict[str, Any]) -> bool:
        """Add ``record`` to the history; is it the best epoch so far (by validation loss)?

        Without validation every epoch is the best: the last one's weights are kept.
        """
        self.history.append(record)
        val_loss = record["val"]["loss"] if "val" in record else None
        improved = val_loss is None or self.best_val_loss is None or val_loss < self.best_val_loss
        if improved:
            self.best_epoch, self.best_val_loss = record["epoch"], val_loss
        return improved

    def best_record(self) -> dict[str, Any] | None:
        """The history record of the best epoch (None before one)."""
        return next((h for h in self.history if h["epoch"] == self.best_epoch), None)


@dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    out: Path
    checkpoint: Path
    epochs_done: int
    best_epoch: int | None
    history: list[dict[str, Any]] = field(default_factory=list)
    images_per_second: float = 0.0
    data_wait_fraction: float = 0.0
    train_seconds: float = 0.0
    interrupted: bool = False
