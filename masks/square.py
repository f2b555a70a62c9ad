"""One axis-aligned square hole of random size at a random position (the seed's block mask)."""

from __future__ import annotations

import numpy as np

from benchmark.masking import MASKS, MaskGenerator
from masks.params import fraction, ordered


@MASKS.register("square")
class SquareMask(MaskGenerator):
    """One filled square, fully inside the image.

    Its side is drawn uniformly from the whole pixels between ``min_size`` and ``max_size`` times
    the shorter image side (at least 1 px); its position uniformly among those that fit.
    """

    name = "square"

    def __init__(self, min_size: float = 0.125, max_size: float = 0.5) -> None:
        self.min_size = fraction("min_size", min_size)
        self.max_size = fraction("max_size", max_size)
        ordered("min_size", self.min_size, "max_size", self.max_size)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A ``bool (height, width)`` mask with one square hole (``True``)."""
        shorter = min(height, width)
        low = max(1, round(self.min_size * shorter))
        high = max(low, round(self.max_size * shorter))
        side = int(rng.integers(low, high + 1))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        mask = np.zeros((height, width), bool)
        mask[top : top + side, left : left + side] = True
        return mask
