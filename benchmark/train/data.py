"""Training data: the train/validation split, pure training batches with fresh masks, the loader.

Batches are a pure function of ``(seed, global batch number)``: any number of loader processes,
ranks or a resumed run see the same images and masks.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from benchmark.errors import DataError, UsageError
from benchmark.train.validation import Validation

if TYPE_CHECKING:
    from benchmark.datasets.base import Dataset
    from benchmark.masking import MaskGenerator
    from benchmark.train.options import TrainConfig


class TrainBatches(torch.utils.data.Dataset):
    """Training batch ``g`` (global number: ``epoch * per_epoch + batch``) as ``(images, masks)``.

    Images ``float32 (B, 3, H, W)`` in [0, 1], masks ``bool (B, 1, H, W)``; a pure function of
    ``(seed, g)``, so any number of loader processes gives the same batches.
    """

    def __init__(
        self,
        dataset: Dataset,
        indices: np.ndarray,
        generators: Sequence[MaskGenerator],
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


@dataclass
class TrainData:
    """A run's data: the train split, its training and validation slices, batches and masks."""

    dataset: Dataset
    mask_names: list[str]
    train_idx: np.ndarray
    val_idx: np.ndarray
    batches: TrainBatches
    validation: Validation

    @classmethod
    def build(cls, config: TrainConfig) -> TrainData:
        """The data of ``config`` (a one-line error for no masks or no training image)."""
        from benchmark.datasets import build_dataset
        from benchmark.masking import build_mask
        from benchmark.registry import split_specs

        mask_names = split_specs(config.masks)
        if not mask_names:
            raise UsageError("--masks: give at least one mask spec")
        generators = [build_mask(name) for name in mask_names]
        dataset = build_dataset(config.dataset, "train", config.size, config.data_dir)
        from benchmark.protocols import refuse_evaluation_data

        refuse_evaluation_data(dataset, config.data_dir)  # never train on evaluation images
        size = tuple(dataset.image_size)
        train_idx, val_idx = split_indices(
            len(dataset), config.val_fraction, config.limit, config.seed
        )
        if len(train_idx) == 0:
            raise DataError(f"data set {dataset.name!r}: no training image after validation")
        batches = TrainBatches(
            dataset, train_idx, generators, config.batch_size, config.seed, size, config.augment
        )
        validation = Validation(dataset, val_idx, generators, mask_names, config.seed, size)
        return cls(dataset, mask_names, train_idx, val_idx, batches, validation)


def make_loader(
    batches: TrainBatches, first: int, end: int, workers: int, pin: bool
) -> torch.utils.data.DataLoader:
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


def _ignore_sigint(worker_id: int) -> None:
    """Loader processes leave Ctrl-C to the main process, which stops at a step boundary."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
