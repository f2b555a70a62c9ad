"""The ``train`` command's options: :class:`TrainConfig`, the argparse options and their checks."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from benchmark.errors import UsageError
from benchmark.train.loss import LOSSES
from benchmark.train.schedule import LR_SCHEDULES

EXAMPLES = """\
examples:
  python -m benchmark train unet
  python -m benchmark train unet --epochs 1 --limit 2000
  python -m benchmark train unet --masks square --out my-unet.safetensors
  python -m benchmark train unet --out my-unet.safetensors --resume
  python -m benchmark train unet-fill --device cuda --workers 4
  python -m benchmark train pconv --init methods/weights/unet-fill.safetensors --augment
  python -m torch.distributed.run --nproc_per_node 2 -m benchmark train unet --epochs 1

Use the result with: python -m benchmark run --methods unet:weights=PATH
"""


@dataclass
class TrainConfig:
    """Everything that defines a training run (the ``train`` command's options)."""

    architecture: str = "unet"
    dataset: str = "skimage-patches"
    data_dir: str | None = None
    masks: str = "lines,square"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: str = "constant"
    loss: str = "mse"
    limit: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    size: int | None = None
    augment: bool = False
    device: str = "auto"
    workers: int | None = None  # None: 1 on the CPU, up to 4 with CUDA
    out: str | None = None
    resume: bool = False
    progress: bool = True
    init: str | None = None
    precision: str = "auto"

    def out_path(self) -> Path:
        """The weights file (default ``results/runs/train-<arch>/<arch>.safetensors``)."""
        if self.out:
            return Path(self.out)
        return Path(
            "results", "runs", f"train-{self.architecture}", f"{self.architecture}.safetensors"
        )

    def checkpoint_path(self) -> Path:
        """The checkpoint beside the weights file: ``<name>.checkpoint.safetensors``."""
        out = self.out_path()
        stem = out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name
        return out.with_name(stem + ".checkpoint.safetensors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options (all but the positional model name) to ``parser``."""
    from benchmark.device import DEVICE_CHOICES, PRECISION_CHOICES

    d = TrainConfig()
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--dataset", default=d.dataset, help="data set spec (default: %(default)s)")
    add("--data-dir", default=None, help="where the data set's files live")
    add("--masks", default=d.masks, help="mask specs, mixed per batch (default: %(default)s)")
    add("--epochs", type=int, default=d.epochs, help="epochs (default: %(default)s)")
    add("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    add("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    add(
        "--lr-schedule",
        default=d.lr_schedule,
        choices=LR_SCHEDULES,
        help="constant (the seed's) or cosine (decays to 0 over --epochs; not in the seed)",
    )
    add(
        "--loss",
        default=d.loss,
        choices=LOSSES,
        help="mse (the seed's) or psnr (-PSNR per image, the leaderboard's mean; not in the seed)",
    )
    add("--limit", type=int, default=None, help="train on at most N images")
    add(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="validation slice of the train split (default: %(default)s)",
    )
    add("--seed", type=int, default=d.seed, help="shuffling and mask seed (default: %(default)s)")
    add("--size", type=int, default=None, help="image side, where the data set can resize")
    add(
        "--augment",
        action="store_true",
        help="random flips, 90-degree turns, channel orders and inversions (not in the seed)",
    )
    add("--device", default=d.device, choices=DEVICE_CHOICES, help="default: %(default)s")
    add(
        "--workers",
        type=int,
        default=None,
        help="data-loading processes, 0 = in the main process (default: 1 on CPU, 4 on CUDA)",
    )
    add(
        "--precision",
        default=d.precision,
        choices=PRECISION_CHOICES,
        help="auto: fp16 mixed precision on CUDA, float32 on the CPU; mixed: also bfloat16 "
        "autocast on the CPU (about 1.5x faster where the CPU has AMX or AVX-512 BF16); "
        "fp32: float32 everywhere (default: %(default)s)",
    )
    add("--out", default=None, help="weights file (default: results/runs/train-<model>/<model>...)")
    add("--resume", action="store_true", help="continue from the checkpoint beside --out")
    add(
        "--init",
        default=None,
        metavar="PATH",
        help="start from this weights file instead of a fresh model (the model decides what it "
        "accepts, e.g. pconv takes unet-fill weights)",
    )
    add("--no-progress", dest="progress", action="store_false", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``train`` arguments (``args.method`` is the model)."""
    names = {f.name for f in fields(TrainConfig)} - {"architecture"}
    values = {k: v for k, v in vars(args).items() if k in names}
    return TrainConfig(architecture=args.method, **values)


def validate_config(config: TrainConfig) -> None:
    """Raise a one-line :class:`UsageError` for the first option out of range."""
    from benchmark.device import PRECISION_CHOICES
    from benchmark.trainable import get_trainable

    get_trainable(config.architecture)  # one-line UsageError naming the trainable methods
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise UsageError(
                f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}"
            )
    if config.limit is not None and config.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {config.limit}")
    if not 0 <= config.val_fraction < 1:
        raise UsageError(f"--val-fraction must lie in [0, 1), got {config.val_fraction}")
    for option, value, choices in (
        ("--loss", config.loss, LOSSES),
        ("--lr-schedule", config.lr_schedule, LR_SCHEDULES),
        ("--precision", config.precision, PRECISION_CHOICES),
    ):
        if value not in choices:
            raise UsageError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    if not config.lr > 0:
        raise UsageError(f"--lr must be > 0, got {config.lr}")
    if config.workers is not None and config.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {config.workers}")
