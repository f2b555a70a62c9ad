"""Training learned methods: ``python -m benchmark train NAME ...``.

``NAME`` is any registered method that implements :class:`benchmark.trainable.Trainable`
(``unet``, ``unet-fill``, ``pconv`` and plug-ins alike): it supplies the network, its input
and its weights files; everything below is shared.

Like the seed: Adam, MSE between the predicted full image and the original, SSIM tracked per
step (with :func:`benchmark.metrics.ssim`, the leaderboard's code), batch 32, 10 epochs, lr 1e-3.
Three options go beyond the seed and are off by default: ``--augment`` (random flips, turns,
channel orders and inversions of the training images), ``--loss psnr`` (the negative
per-image PSNR, which the leaderboard averages, instead of MSE, which lets easy images slide)
and ``--lr-schedule cosine`` (the rate decays from ``--lr`` to 0 over the run).
The network input is the method's ``model_input(masked, mask)`` (the masked image with hole
pixels 0, plus the mask for ``unet-fill`` and ``pconv``); the output is a full image, and
validation scores the harness composite (prediction in the hole, original elsewhere), as the
leaderboard does. ``--init PATH`` starts from a weights file (the method's ``warm_start``
decides what it accepts) instead of a fresh model.

Data: the ``train`` split of the data set, shuffled once with ``--seed``; the first
``--val-fraction`` of that order is the validation slice (never the test split), the rest
(at most ``--limit`` images) is trained on. Each epoch reshuffles the training images with
``(seed, epoch)``. Masks are drawn fresh for every image from the seed stream
``seed + TRAINING_STREAM`` with a running image counter as index, so they never repeat the
evaluation masks; with several ``--masks`` the images of a batch alternate between them.
Validation masks are fixed (stream ``seed + 2 * TRAINING_STREAM``): every validation image is
scored once with each mask family. Batches are a pure function of ``(seed, epoch, batch)``, so
the worker count never changes the result and a resumed run continues exactly.

Files: ``--out`` (weights: the best epoch by validation loss, fp16, rewritten atomically when an
epoch improves on it) and beside it ``<name>.checkpoint.safetensors`` (fp32 model, Adam state,
epoch and batch position, RNG state, history; rewritten atomically after every epoch and on
Ctrl-C). ``--resume`` continues from the checkpoint.

Data-parallel: ``python -m torch.distributed.run --nproc_per_node N -m benchmark train ...``
runs N ranks with DDP (NCCL on GPUs, gloo on CPUs). Every rank builds the same global batch and
trains on its contiguous slice of it, with the loss scaled so that the averaged gradient is the
whole batch's; results depend on N only through floating-point summation order. Rank 0 alone
validates, picks the best epoch and writes files while the others wait at a barrier; a Ctrl-C
(SIGINT, or the SIGTERM torchrun passes on) is agreed on by all ranks at the next step, and
rank 0 saves the checkpoint. The weights file records each rank's weight digest.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.device import autocast, available_cores, memory_format
from benchmark.errors import DataError, UsageError

#: Options a resumed run must share with its checkpoint (the others may change).
_RESUME_FIXED = (
    "architecture",
    "dataset",
    "data_dir",
    "masks",
    "batch_size",
    "lr",
    "lr_schedule",
    "loss",
    "limit",
    "val_fraction",
    "seed",
    "size",
    "augment",
)
#: Training images handed to the model's ``warm_start`` with ``--init``.
INIT_SAMPLE = 256
#: MSE floor of the ``psnr`` loss: 60 dB, finer than 8-bit levels can show.
PSNR_LOSS_FLOOR = 1e-6


def per_image_loss(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Loss of each image, ``(N,)``: ``mse`` (the seed's) or ``psnr`` (``10 log10 MSE``, in dB).

    ``mse`` weighs images by their squared error, so easy images barely count; ``psnr`` is the
    negative per-image PSNR the leaderboard averages, so every image counts alike.
    """
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return mse if name == "mse" else 10 * torch.log10(mse + PSNR_LOSS_FLOOR)


LOSSES = ("mse", "psnr")
#: Learning-rate schedules: the seed's constant rate, or a cosine decay to 0 over the run.
LR_SCHEDULES = ("constant", "cosine")


def learning_rate(base: float, schedule: str, step: int, total_steps: int) -> float:
    """The rate of optimisation step ``step`` (from 0) of ``total_steps``.

    >>> learning_rate(1e-3, "constant", 500, 1000)
    0.001
    >>> round(learning_rate(1e-3, "cosine", 500, 1000), 12)
    0.0005
    """
    if schedule == "constant":
        return base
    return base * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


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


# -- command line -----------------------------------------------------------------------------
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


def run(args: argparse.Namespace) -> int:
    """Run the ``train`` command; 0 when done, 130 when interrupted (checkpoint saved)."""
    result = train(config_from_args(args))
    return 130 if result.interrupted else 0


# -- data ---------------------------------------------------------------------------------------
class TrainBatches(torch.utils.data.Dataset):
    """Training batch ``g`` (global number: ``epoch * per_epoch + batch``) as ``(images, masks)``.

    Images ``float32 (B, 3, H, W)`` in [0, 1], masks ``bool (B, 1, H, W)``; a pure function of
    ``(seed, g)``, so any number of loader processes gives the same batches.
    """

    def __init__(
        self,
        dataset,
        indices: np.ndarray,
        generators: Sequence,
        batch_size: int,
        seed: int,
        size: tuple[int, int],
        augment: bool = False,
    ) -> None:
        from benchmark.masking import TRAINING_STREAM

        self.augment = augment
        self.dataset = dataset
        self.indices = indices
        self.generators = list(generators)
        self.batch_size = batch_size
        self.seed = seed
        self.mask_seed = seed + TRAINING_STREAM
        self.size = size
        self.per_epoch = math.ceil(len(indices) / batch_size)
        self._order: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """Positions into ``indices`` in the order of ``epoch`` (cached per process)."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, 1, epoch])
            self._order = (epoch, rng.permutation(len(self.indices)))
        return self._order[1]

    def __getitem__(self, number: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, batch = divmod(number, self.per_epoch)
        start = batch * self.batch_size
        positions = self.order(epoch)[start : start + self.batch_size]
        images = self.dataset.images(self.indices[positions].tolist())
        if self.augment:
            images = augment(images, np.random.default_rng([self.seed, 2, number]))
        counters = epoch * len(self.indices) + start + np.arange(len(positions))
        masks = torch.empty((len(positions), 1, *self.size), dtype=torch.bool)
        for k, generator in enumerate(self.generators):
            rows = np.flatnonzero(counters % len(self.generators) == k)
            if len(rows):
                batch_masks = generator.batch(counters[rows].tolist(), *self.size, self.mask_seed)
                masks[torch.from_numpy(rows)] = batch_masks
        return images, masks


def augment(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Each image of ``(N, 3, H, W)`` flipped, turned (square images), recoloured at random.

    One of the 8 flips/turns, one of the 6 channel orders, and inversion ``1 - x`` with
    probability 1/2: inpainting looks the same under all of them, and they widen the small,
    mostly dark training photos towards other colours and orientations.
    """
    out = []
    square = images.shape[-1] == images.shape[-2]
    for image in images:
        flips, turn, invert = (int(v) for v in rng.integers(0, (4, 2, 2)))
        order = rng.permutation(3)
        image = image[torch.from_numpy(order)]
        dims = [d for bit, d in ((1, -1), (2, -2)) if flips & bit]
        if dims:
            image = image.flip(dims)
        if turn and square:
            image = image.transpose(-1, -2)
        out.append(1 - image if invert else image)
    return torch.stack(out).contiguous()


def split_indices(
    n: int, val_fraction: float, limit: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` indices of a train split of ``n`` images, fixed by ``seed``."""
    order = np.random.default_rng([seed, 0]).permutation(n)
    n_val = round(val_fraction * n)
    train, val = order[n_val:], order[:n_val]
    return (train[:limit] if limit is not None else train), val


class Validation:
    """Fixed validation images, each with one mask of every family (built once)."""

    def __init__(
        self,
        dataset,
        indices: np.ndarray,
        generators: Sequence,
        mask_names: list[str],
        seed: int,
        size: tuple[int, int],
    ) -> None:
        from benchmark.masking import TRAINING_STREAM

        self.names = mask_names
        self.images = dataset.images(indices.tolist()) if len(indices) else None
        stream = seed + 2 * TRAINING_STREAM
        count = len(indices)
        self.masks = [g.batch(range(count), *size, stream) for g in generators] if count else []

    def __bool__(self) -> bool:
        return self.images is not None

    @torch.inference_mode()
    def evaluate(
        self, model: torch.nn.Module, trainable, device: torch.device, loss: str = "mse"
    ) -> dict[str, Any]:
        """Validation loss (of the raw prediction) and composite PSNR/SSIM, also per mask.

        ``trainable`` is the model's :class:`~benchmark.trainable.Trainable` method class.
        """
        from benchmark.method import composite
        from benchmark.metrics import psnr, ssim

        model.eval()
        result: dict[str, Any] = {}
        losses, psnrs, ssims = [], [], []
        images = self.images.to(device)
        for name, masks in zip(self.names, self.masks):
            mask = masks.to(device)
            pred = trainable.predict(model, images, mask, device)
            filled = composite(images, pred.clamp(0, 1), mask)
            mask_loss, p, s = (
                v.mean().item()
                for v in (
                    per_image_loss(loss, pred, images),
                    psnr(filled, images),
                    ssim(filled, images),
                )
            )
            result[name] = {"loss": mask_loss, "psnr": p, "ssim": s}
            losses.append(mask_loss)
            psnrs.append(p)
            ssims.append(s)
        result.update(
            loss=float(np.mean(losses)), psnr=float(np.mean(psnrs)), ssim=float(np.mean(ssims))
        )
        return result


# -- checkpoints --------------------------------------------------------------------------------
def _save_checkpoint(path: Path, model, optimizer, scaler, state: dict[str, Any]) -> None:
    from benchmark.weights import save_tensors

    tensors = {f"model.{k}": v.float() for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    meta = dict(state, param_groups=optim["param_groups"], scaler=_scaler_state(scaler))
    save_tensors(path, tensors, meta)


def _scaler_state(scaler) -> dict[str, Any]:
    return {k: float(v) if torch.is_tensor(v) else v for k, v in scaler.state_dict().items()}


def _load_checkpoint(path: Path, config: TrainConfig, model, optimizer, scaler) -> dict[str, Any]:
    """Restore model, optimiser, scaler and RNG from ``path``; its metadata (the run state)."""
    from benchmark.weights import check_state, load_tensors

    tensors, meta, _ = load_tensors(path, what="checkpoint")
    _check_resumable(meta, config, path)
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state(path, weights, model.state_dict(), config.architecture, what="checkpoint")
    model.load_state_dict(weights)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError) as exc:
        raise DataError(f"checkpoint {str(path)!r}: optimiser state does not fit ({exc})") from exc
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if meta.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(meta["scaler"])
    return meta


def _check_resumable(meta: dict[str, Any], config: TrainConfig, path: Path) -> None:
    stored = meta.get("config")
    if not isinstance(stored, dict):
        raise DataError(f"checkpoint {str(path)!r}: no run configuration in its metadata")
    for key in _RESUME_FIXED:
        if stored.get(key) != getattr(config, key):
            option = "model" if key == "architecture" else "--" + key.replace("_", "-")
            raise UsageError(
                f"--resume: checkpoint {str(path)!r} was trained with {option} "
                f"{stored.get(key)!r}, not {getattr(config, key)!r}"
            )
    if config.lr_schedule == "cosine" and stored.get("epochs") != config.epochs:
        raise UsageError(
            f"--resume: checkpoint {str(path)!r} decays its rate over --epochs "
            f"{stored.get('epochs')!r}; resume with the same --epochs"
        )


# -- the loop -----------------------------------------------------------------------------------
def _validate_config(config: TrainConfig) -> None:
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
    if config.loss not in LOSSES:
        raise UsageError(f"--loss must be one of {', '.join(LOSSES)}, got {config.loss!r}")
    if config.lr_schedule not in LR_SCHEDULES:
        raise UsageError(
            f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {config.lr_schedule!r}"
        )
    if not config.lr > 0:
        raise UsageError(f"--lr must be > 0, got {config.lr}")
    if config.precision not in PRECISION_CHOICES:
        raise UsageError(
            f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got {config.precision!r}"
        )
    if config.workers is not None and config.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {config.workers}")


def _loader(batches: TrainBatches, first: int, end: int, workers: int, pin: bool):
    """Batches ``first .. end - 1`` (global numbers): one loader, and its processes, per run."""
    return torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(first, end),
        num_workers=workers,
        pin_memory=pin,
        prefetch_factor=4 if workers else None,
        worker_init_fn=_ignore_sigint if workers else None,
    )


def _quiet(text: str) -> None:
    """What ranks other than 0 print under torchrun: nothing."""


def _print(text: str) -> None:
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


class _Stop(KeyboardInterrupt):
    """A Ctrl-C taken at a step boundary: the model and optimiser are consistent."""


class _CtrlC:
    """Defers the first Ctrl-C to the next step boundary; a second one interrupts at once.

    Only the main thread can handle signals; elsewhere Ctrl-C keeps its default behaviour.
    ``also_sigterm`` treats SIGTERM alike (torchrun passes a Ctrl-C on to its ranks as SIGTERM).
    """

    def __init__(self, also_sigterm: bool = False) -> None:
        self.requested = False
        self._signals = (signal.SIGINT, signal.SIGTERM) if also_sigterm else (signal.SIGINT,)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self._signals}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signum, self._previous[signum])

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def check(self, group=None, device: torch.device | None = None) -> None:
        """Raise :class:`_Stop` if Ctrl-C was pressed since the last check (on any rank)."""
        requested = group.any(self.requested, device) if group is not None else self.requested
        if requested:
            raise _Stop


def _ignore_sigint(worker_id: int) -> None:
    """Loader processes leave Ctrl-C to the main process, which stops at a step boundary."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Trainer:
    """One training run: data, model, optimiser and the run state saved in checkpoints."""

    def __init__(self, config: TrainConfig) -> None:
        from benchmark.datasets import build_dataset
        from benchmark.device import resolve_device
        from benchmark.distributed import setup
        from benchmark.masking import build_mask
        from benchmark.registry import split_specs
        from benchmark.trainable import get_trainable

        _validate_config(config)
        self.trainable = get_trainable(config.architecture)
        if config.data_dir is not None:
            config.data_dir = str(config.data_dir)
        self.config = config
        self.group, self.device = setup(resolve_device(config.device))
        self.say = _print if self.group.main else _quiet
        self.cuda = self.device.type == "cuda"
        if self.device.type == "cpu":  # the ranks on one machine share its cores
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.group.world))
            torch.set_num_threads(max(1, available_cores() // local_world))
        self.out, self.checkpoint = config.out_path(), config.checkpoint_path()
        if config.workers is None:
            config.workers = min(4, max(1, available_cores() - 1)) if self.cuda else 1

        self.mask_names = split_specs(config.masks)
        if not self.mask_names:
            raise UsageError("--masks: give at least one mask spec")
        generators = [build_mask(name) for name in self.mask_names]
        self.dataset = build_dataset(config.dataset, "train", config.size, config.data_dir)
        size = tuple(self.dataset.image_size)
        n = len(self.dataset)
        self.train_idx, self.val_idx = split_indices(
            n, config.val_fraction, config.limit, config.seed
        )
        if len(self.train_idx) == 0:
            raise DataError(f"data set {self.dataset.name!r}: no training image after validation")
        self.batches = TrainBatches(
            self.dataset,
            self.train_idx,
            generators,
            config.batch_size,
            config.seed,
            size,
            config.augment,
        )
        self.validation = Validation(
            self.dataset, self.val_idx, generators, self.mask_names, config.seed, size
        )

        torch.manual_seed(config.seed)
        self.model = self.trainable.build_model()
        if config.init is not None and not config.resume and self.group.main:
            # rank 0 only: DDP hands rank 0's weights to the other ranks
            how = self.trainable.warm_start(self.model, config.init, self.init_sample())
            self.say(f"initialised {config.architecture} from {how}")
        self.model = self.model.to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=memory_format(self.device))
        # fused: one kernel per step on CUDA instead of several per parameter tensor
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=self.cuda)
        # fp16 needs loss scaling; bfloat16 (the CPU's mixed precision) does not
        scaled = self.cuda and config.precision != "fp32"
        self.scaler = torch.amp.GradScaler("cuda", enabled=scaled)
        self.state: dict[str, Any] = {
            "config": asdict(config) | {"resume": False, "out": None, "progress": True},
            "epoch": 0,  # epochs finished
            "batch": 0,  # batches finished in the current epoch
            "partial": _empty_partial(),  # running sums of the current epoch
            "history": [],
            "best_epoch": None,
            "best_val_loss": None,
            "train_seconds": 0.0,
            "wait_seconds": 0.0,
            "train_images": 0,
        }
        self.sums = torch.zeros(2, device=self.device)  # loss, SSIM not yet in "partial"
        self.best: dict[str, torch.Tensor] | None = None  # best epoch's weights, fp16, CPU
        self.rank_digests: list[str] | None = None  # each rank's weights, under torchrun
        if config.resume:
            if not self.checkpoint.exists():
                raise UsageError(f"--resume: no checkpoint at {str(self.checkpoint)!r}")
            stored = _load_checkpoint(
                self.checkpoint, config, self.model, self.optimizer, self.scaler
            )
            self.state.update({k: stored[k] for k in self.state if k in stored and k != "config"})
            if self.state["best_epoch"] is not None:
                if not self.out.exists():  # else the next save would mislabel current weights
                    raise UsageError(
                        f"--resume: the best-epoch weights {str(self.out)!r} are missing"
                    )
                best, _ = self.trainable.load_weights(self.out)  # fp16 values, exactly
                self.best = {k: v.to(torch.float16) for k, v in best.state_dict().items()}
            where = f"epoch {self.state['epoch'] + 1}, after batch {self.state['batch']}"
            self.say(f"resumed from {self.checkpoint}: {where}")
        self.ddp = self.model
        if self.group.active:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.cuda else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)

    def init_sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first training batches (at least :data:`INIT_SAMPLE` images) for ``--init``."""
        images, masks = [], []
        for number in range(math.ceil(INIT_SAMPLE / self.config.batch_size)):
            batch_images, batch_masks = self.batches[number % self.batches.per_epoch]
            images.append(batch_images)
            masks.append(batch_masks)
        return torch.cat(images), torch.cat(masks)

    # -- files ------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """Metadata of the weights file: the run's options and its best epoch's metrics."""
        state, config = self.state, self.config
        best = next((h for h in state["history"] if h["epoch"] == state["best_epoch"]), None)
        seconds = state["train_seconds"]
        return {
            "dataset": self.dataset.name,
            "split": "train",
            "masks": self.mask_names,
            "epochs": state["epoch"],
            "best_epoch": state["best_epoch"],
            "seed": config.seed,
            "batch_size": config.batch_size,
            "lr": config.lr,
            "lr_schedule": config.lr_schedule,
            "precision": config.precision,
            "loss": config.loss,
            "augment": config.augment,
            "train_images": len(self.train_idx),
            "val_images": len(self.val_idx),
            "validation": best.get("val") if best else None,
            "train_loss": best.get("loss") if best else None,
            "train_ssim": best.get("ssim") if best else None,
            "train_seconds": round(seconds, 1),
            "images_per_second": round(state["train_images"] / seconds, 1) if seconds else None,
            "data_wait_fraction": round(state["wait_seconds"] / seconds, 4) if seconds else None,
            "init": config.init,
            "ranks": self.group.world,
            "rank_weight_sha256": self.rank_digests,
            "device": str(self.device),
            "torch": torch.__version__,
        }

    def compare_ranks(self) -> None:
        """Under torchrun: every rank's weight digest, kept for the weights file's metadata.

        DDP keeps the ranks' weights equal; a difference is reported, never silently kept.
        """
        if not self.group.active:
            return
        from benchmark.weights import tensor_digest

        digests = self.group.gather_text(tensor_digest(self.model.state_dict()))
        self.rank_digests = digests
        if len(set(digests)) > 1:
            self.say(f"warning: the ranks' weights differ: {', '.join(d[:12] for d in digests)}")

    def save(self, improved: bool) -> None:
        """Write the checkpoint and the weights file (the best epoch's weights, fp16).

        Before the first epoch ends (Ctrl-C), the current weights stand in for the best.
        """
        from benchmark.weights import save_tensors

        if improved or self.best is None:
            self.best = {
                k: v.detach().to("cpu", torch.float16, copy=True)
                for k, v in self.model.state_dict().items()
            }
        _save_checkpoint(self.checkpoint, self.model, self.optimizer, self.scaler, self.state)
        meta = {**self.metadata(), "architecture": self.trainable.architecture}
        save_tensors(self.out, self.best, meta)

    # -- training ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Add the on-device loss/SSIM sums (of all ranks) to the epoch's running sums.

        Syncs a GPU; under torchrun every rank calls it at the same steps (a collective).
        """
        loss_total, ssim_total = self.group.sum_(self.sums).tolist()
        self.state["partial"]["loss"] += loss_total
        self.state["partial"]["ssim"] += ssim_total
        self.sums.zero_()

    def set_learning_rate(self) -> None:
        """The rate of the coming step, a function of its number (so resuming is exact)."""
        config, per_epoch = self.config, self.batches.per_epoch
        step = self.state["epoch"] * per_epoch + self.state["batch"]
        rate = learning_rate(config.lr, config.lr_schedule, step, config.epochs * per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def step(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        """One optimisation step on a batch already on the device.

        Under torchrun this rank takes its slice of the batch; its loss is its images' share
        of the whole batch's mean (times the rank count, as DDP averages the gradients).
        """
        from benchmark.metrics import ssim

        count = len(images)
        shard = self.group.shard(count)
        images, masks = images[shard], masks[shard]
        masked = images.masked_fill(masks, 0)
        x = self.trainable.model_input(masked, masks)
        with autocast(self.device, self.config.precision):
            pred = self.ddp(x.contiguous(memory_format=memory_format(self.device)))
        losses = per_image_loss(self.config.loss, pred.float(), images)
        loss = losses.mean() if not self.group.active else losses.sum() * self.group.world / count
        self.set_learning_rate()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with torch.no_grad():
            self.sums[0] += losses.detach().sum()
            if len(images):
                self.sums[1] += ssim(pred.detach().float(), images).sum()

    def epoch(self, epoch: int, batches: Iterator, ctrl_c: _CtrlC) -> None:
        """Train the rest of ``epoch`` (from the saved batch position), validate, save.

        ``batches`` yields the run's batches in order; this takes the epoch's remaining ones.
        """
        config, state = self.config, self.state
        self.model.train()
        if state["batch"] == 0:
            state["partial"] = _empty_partial()
        partial = state["partial"]
        bar = tqdm(
            total=self.batches.per_epoch,
            initial=state["batch"],
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            disable=not config.progress or not self.group.main,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
            dynamic_ncols=True,
        )
        while state["batch"] < self.batches.per_epoch:
            ctrl_c.check(self.group, self.device)
            start = time.perf_counter()
            images, masks = next(batches)
            images = images.to(self.device, non_blocking=True)
            masks = masks.to(self.device, non_blocking=True)
            waited = time.perf_counter() - start
            self.step(images, masks)
            partial["images"] += len(images)
            state["batch"] += 1
            bar.update()
            if not self.cuda or state["batch"] % 20 == 0:  # .item() syncs a GPU: not every step
                self.flush()
                seen = partial["images"]
                postfix = {"loss": f"{partial['loss'] / seen:.5g}"}
                bar.set_postfix(postfix, ssim=f"{partial['ssim'] / seen:.4f}", refresh=False)
            partial["wait"] += waited
            partial["seconds"] += time.perf_counter() - start
        self.flush()
        bar.close()
        record = _finish_epoch(state, epoch)
        self.compare_ranks()
        if not self.group.main:  # rank 0 validates, chooses the best epoch and writes
            state["history"].append(record)
            self.group.barrier()
            return
        if self.validation:
            start = time.perf_counter()
            record["val"] = self.validation.evaluate(
                self.model, self.trainable, self.device, config.loss
            )
            record["val_seconds"] = round(time.perf_counter() - start, 2)
        state["history"].append(record)
        improved = _improves(record, state)
        if improved:
            state["best_epoch"] = record["epoch"]
            state["best_val_loss"] = record["val"]["loss"] if "val" in record else None
        self.save(improved)
        self.group.barrier()
        self.say(_epoch_line(record, improved))

    def run(self) -> TrainResult:
        """Train the remaining epochs; Ctrl-C saves an exact checkpoint and returns early."""
        config, state = self.config, self.state
        ranks = f"; {self.group.world} ranks (DDP)" if self.group.active else ""
        self.say(
            f"training {config.architecture} on {self.dataset.name} (train split): "
            f"{len(self.train_idx)} images, {len(self.val_idx)} validation; masks "
            f"{', '.join(self.mask_names)}; {config.epochs} epochs of {self.batches.per_epoch} "
            f"batches of {config.batch_size}; device {self.device}"
            + (f" ({torch.get_num_threads()} threads)" if self.device.type == "cpu" else "")
            + ranks
        )
        interrupted = False
        try:
            with _CtrlC(also_sigterm=self.group.active) as ctrl_c:
                per_epoch = self.batches.per_epoch
                first = state["epoch"] * per_epoch + state["batch"]
                loader = _loader(
                    self.batches, first, config.epochs * per_epoch, config.workers, self.cuda
                )
                batches = iter(loader)
                for epoch in range(state["epoch"], config.epochs):
                    self.epoch(epoch, batches, ctrl_c)
        except _Stop:
            interrupted = True
            self.flush()
            self.compare_ranks()
            if self.group.main:
                self.save(improved=False)
            self.group.barrier()
            self.say(
                f"interrupted in epoch {state['epoch'] + 1} after batch {state['batch']}: "
                f"checkpoint saved to {self.checkpoint}; continue with --resume"
            )
        except KeyboardInterrupt:  # a second Ctrl-C: leave the last epoch's checkpoint alone
            interrupted = True
            self.say(f"stopped at once; the checkpoint {self.checkpoint} of the last epoch is kept")
        seconds = state["train_seconds"]
        result = TrainResult(
            out=self.out,
            checkpoint=self.checkpoint,
            epochs_done=state["epoch"],
            best_epoch=state["best_epoch"],
            history=state["history"],
            images_per_second=state["train_images"] / seconds if seconds else 0.0,
            data_wait_fraction=state["wait_seconds"] / seconds if seconds else 0.0,
            train_seconds=seconds,
            interrupted=interrupted,
        )
        if not interrupted:
            self.say(_summary(result, config))
        self.group.close()
        return result


def train(config: TrainConfig) -> TrainResult:
    """Train ``config.architecture`` as described in the module docstring.

    The first Ctrl-C stops at the next step boundary and saves the checkpoint with the exact
    batch position (``interrupted=True`` in the result); ``--resume`` then continues exactly.
    """
    return _Trainer(config).run()


def _empty_partial() -> dict[str, float]:
    return {"loss": 0.0, "ssim": 0.0, "images": 0, "seconds": 0.0, "wait": 0.0}


def _finish_epoch(state: dict[str, Any], epoch: int) -> dict[str, Any]:
    """Fold the finished epoch's running sums into the totals; its history record."""
    partial = state["partial"]
    seen = max(partial["images"], 1)
    state["train_seconds"] += partial["seconds"]
    state["wait_seconds"] += partial["wait"]
    state["train_images"] += partial["images"]
    state["epoch"], state["batch"] = epoch + 1, 0
    seconds = max(partial["seconds"], 1e-9)
    return {
        "epoch": epoch + 1,
        "loss": partial["loss"] / seen,
        "ssim": partial["ssim"] / seen,
        "seconds": round(partial["seconds"], 2),
        "images_per_second": round(partial["images"] / seconds, 1),
        "data_wait_fraction": round(partial["wait"] / seconds, 4),
    }


def _improves(record: dict[str, Any], state: dict[str, Any]) -> bool:
    """Is this epoch the best so far by validation loss (always, without validation)?"""
    if "val" not in record or state["best_val_loss"] is None:
        return True
    return record["val"]["loss"] < state["best_val_loss"]


def _epoch_line(record: dict[str, Any], improved: bool) -> str:
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


def _summary(result: TrainResult, config: TrainConfig) -> str:
    spec = config.architecture + f":weights={result.out}"
    return (
        f"done: {result.epochs_done} epochs in {result.train_seconds:.0f} s of training, "
        f"{result.images_per_second:.0f} img/s, data wait {result.data_wait_fraction:.1%} of "
        f"step time; best epoch {result.best_epoch} -> {result.out} (checkpoint "
        f"{result.checkpoint})\nuse it with: python -m benchmark run --methods {spec}"
    )
