"""The data-set protocol and registry.

A data set is built from ``(split, size, data_dir)`` plus its own parameters and yields images in
the data contract: ``float32 (N, 3, H, W)`` RGB in ``[0, 1]``, exact 8-bit values (``k / 255``),
with a stable index per image. Splits are ``train`` and ``test``.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.errors import UsageError
from benchmark.fingerprint import source_hash
from benchmark.images import from_uint8_hwc
from benchmark.lazy import lazy_module
from benchmark.registry import Registry, Spec, parse_spec

if TYPE_CHECKING:
    import numpy as np
    import torch
else:  # imported on first use: ``list`` and ``--help`` never need them
    np = lazy_module("numpy")
    torch = lazy_module("torch")

SPLITS = ("train", "test")
#: Smallest image side: the SSIM window (11 px) must fit inside every image.
MIN_SIZE = 11
#: Largest image side: one 4096² image is 200 MB as float32, before any method's own memory.
MAX_SIZE = 4096


def resolve_size(size: int | None, default: int | None, who: str) -> int | None:
    """``size`` (or ``default`` when None) checked to be an integer in MIN_SIZE..MAX_SIZE."""
    side = default if size is None else size
    if side is None:
        return None
    if isinstance(side, bool) or not isinstance(side, int) or not MIN_SIZE <= side <= MAX_SIZE:
        raise UsageError(
            f"{who}: expected size to be an integer from {MIN_SIZE} to {MAX_SIZE}, got {size!r}"
        )
    return side


class Dataset(ABC):
    """A fixed, indexed list of images of one split."""

    #: Full spec text (name and parameters), set by :func:`build_dataset`.
    name: str = ""
    split: str = "test"

    @abstractmethod
    def __len__(self) -> int:
        """Number of images."""

    @abstractmethod
    def images(self, indices: Sequence[int]) -> torch.Tensor:
        """Images at ``indices`` as ``float32 (len(indices), 3, H, W)`` in [0, 1]."""

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` shared by every image."""
        return tuple(self.images([0]).shape[-2:])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """Text that changes when any image could change: stored with every record.

        The default hashes the defining source file only; data sets read from files must add
        what identifies those files (resolved paths, names, sizes, modification times or a
        content hash), as ``folder`` and ``cifar10`` do.
        """
        return f"code {source_hash(self)}"


class TensorDataset(Dataset):
    """A data set held in memory as ``uint8 (N, H, W, 3)`` (compact: a quarter of float32)."""

    def __init__(self, pixels: np.ndarray, split: str) -> None:
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 (N, H, W, 3) pixels, got {pixels.dtype} {pixels.shape}"
            )
        self.pixels = pixels
        self.split = split

    def __len__(self) -> int:
        return len(self.pixels)

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        return from_uint8_hwc(self.pixels[np.asarray(indices, dtype=np.int64)])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])

    def fingerprint(self) -> str:
        """Code hash plus a content hash of every pixel (BLAKE2b, about 1 GB/s)."""
        if getattr(self, "_content_hash", None) is None:
            digest = hashlib.blake2b(digest_size=8)
            digest.update(str(self.pixels.shape).encode())
            digest.update(np.ascontiguousarray(self.pixels).data)
            self._content_hash = digest.hexdigest()
        return f"code {source_hash(self)}; pixels {self._content_hash}"


DATASETS: Registry[Dataset] = Registry(
    "dataset", group="benchmark.datasets", builtin_modules=["benchmark.datasets.builtin"]
)


def dataset_spec(spec: str | Spec) -> Spec:
    """The normalized spec of a data set (``folder:PATH`` shorthand, aliases, defaults)."""
    if isinstance(spec, str):
        name, _, rest = spec.partition(":")
        if name == "folder" and rest and not re.match(r"^[A-Za-z_]\w*=", rest):
            spec = Spec("folder", (("path", rest),))  # folder:PATH shorthand, any characters
        else:
            spec = parse_spec(spec)
    return DATASETS.normalize(spec)


def build_dataset(
    spec: str | Spec,
    split: str = "test",
    size: int | None = None,
    data_dir: str | Path | None = None,
) -> Dataset:
    """Build data set ``spec`` (``name`` or ``name:key=value``; ``folder:PATH`` is a shorthand).

    ``size`` is the square side images are brought to where the data set supports resizing
    (``None`` keeps its native size); ``data_dir`` is where files live or are downloaded to.
    """
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    spec = dataset_spec(spec)
    dataset = DATASETS.build(spec, split=split, size=size, data_dir=data_dir)
    dataset.name = str(spec)
    dataset.split = split
    return dataset
