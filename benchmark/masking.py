"""Mask generators: the protocol, the registry and the per-image random stream.

A generator maps ``(index, height, width)`` plus its own parameters and a global ``seed`` to one
``bool (H, W)`` mask (``True`` = hole). The mask of image ``i`` depends only on the generator's
name, parameters, seed and ``i``: never on batch size, workers, ``--limit`` or evaluation order.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from benchmark.registry import Registry

#: Offset added to the seed stream used for training masks, so they never repeat evaluation masks.
TRAINING_STREAM = 1_000_003


class MaskGenerator(ABC):
    """Base class of mask generators; subclasses implement :meth:`draw`."""

    #: Registered name, set by the registry decorator's caller through ``MASKS.build``.
    name: str = ""

    @abstractmethod
    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """Draw one ``bool (height, width)`` mask from ``rng``; ``True`` marks the hole."""

    def rng(self, seed: int, index: int) -> np.random.Generator:
        """The private random stream of image ``index`` for this generator and ``seed``."""
        generator_id = zlib.crc32(self.name.encode())
        return np.random.default_rng([seed, generator_id, index])

    def mask(self, index: int, height: int, width: int, seed: int = 0) -> np.ndarray:
        """The mask of image ``index``: at least one hole pixel and one known pixel."""
        drawn = np.asarray(self.draw(self.rng(seed, index), height, width), dtype=bool)
        if drawn.shape != (height, width):
            raise ValueError(
                f"mask generator {self.name!r} drew shape {drawn.shape}, expected {(height, width)}"
            )
        if not drawn.any():  # degenerate draw: make the centre pixel a hole
            drawn[height // 2, width // 2] = True
        if drawn.all():  # keep one known pixel so the image is not wholly unknown
            drawn[0, 0] = False
        return drawn

    def batch(self, indices: Sequence[int], height: int, width: int, seed: int = 0) -> torch.Tensor:
        """Masks of several images as a ``bool (N, 1, H, W)`` tensor."""
        masks = np.stack([self.mask(int(i), height, width, seed) for i in indices])
        return torch.from_numpy(masks).unsqueeze(1)


MASKS: Registry[MaskGenerator] = Registry(
    "mask", group="benchmark.masks", builtin_modules=["masks"]
)


def build_mask(spec) -> MaskGenerator:
    """Build the generator of ``spec`` (text or Spec); its random stream is keyed by its name."""
    from benchmark.registry import parse_spec

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    generator = MASKS.build(spec)
    generator.name = MASKS.canonical(spec.name)
    return generator
