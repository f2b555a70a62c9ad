"""What training prints: the per-epoch line and the closing summary (rank 0 only)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

from benchmark.train.options import TrainConfig
from benchmark.train.state import TrainResult


def say(text: str) -> None:
    """Print a line without breaking a progress bar."""
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


def quiet(text: str) -> None:
    """What ranks other than 0 print under torchrun: nothing."""


def epoch_line(record: dict[str, Any], improved: bool) -> str:
    """One line per epoch: training loss and SSIM, speed, and the validation scores."""
    line = (
        f"epoch {record['epoch']}: loss {record['loss']:.5g} ssim {record['ssim']:.4f} "
        f"({record['images_per_second']:.0f} img/s, data wait {record['data_wait_fraction']:.1%})"
    )
    if "val" in record:
        val = record["val"]
        per_mask = ", ".join(
            f"{name} {v['psnr']:.2f} dB / {v['ssim']:.4f}"
            for name, v in val.items()
            if isinstance(v, dict)
        )
        line += f"; validation loss {val['loss']:.5g} (composite PSNR/SSIM: {per_mask})"
    return line + (" *best" if improved and "val" in record else "")


def summary(result: TrainResult, config: TrainConfig) -> str:
    """The closing lines: speed, the best epoch, and how to use the weights."""
    spec = config.architecture + f":weights={result.out}"
    return (
        f"done: {result.epochs_done} epochs in {result.train_seconds:.0f} s of training, "
        f"{result.images_per_second:.0f} img/s, data wait {result.data_wait_fraction:.1%} of "
        f"step time; best epoch {result.best_epoch} -> {result.out} (checkpoint "
        f"{result.checkpoint})\nuse it with: python -m benchmark run --methods {spec}"
    )
