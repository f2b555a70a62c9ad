"""The centred box of the context-encoder setting: the same hole for every image."""

from __future__ import annotations

import numpy as np

from benchmark.masking import MASKS, MaskGenerator
from masks.params import fraction, pixels


@MASKS.register("center", "centre")
class CenterMask(MaskGenerator):
    """A box of ``side`` times the image's height and width, in the middle of the image.

    ``side=0.5`` is a quarter of the image: the 64x64 hole of a 128x128 image in context
    encoders. Deterministic: seed and index do not change it. Leaves at least a 1-px border.
    """

    name = "center"
    varies = False

    def __init__(self, side: float = 0.5) -> None:
        self.side = fraction("side", side)
        if self.side >= 1:
            raise ValueError(f"side must be below 1 so that some pixels stay known, got {side}")

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A ``bool (height, width)`` mask with one centred box (``True``)."""
        box_h = min(pixels(self.side, height), max(1, height - 2))
        box_w = min(pixels(self.side, width), max(1, width - 2))
        top, left = (height - box_h) // 2, (width - box_w) // 2
        mask = np.zeros((height, width), bool)
        mask[top : top + box_h, left : left + box_w] = True
        return mask
