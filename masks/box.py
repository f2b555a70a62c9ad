"""One to several axis-aligned rectangles of random size and aspect, fully inside the image."""

from __future__ import annotations

import numpy as np

from benchmark.masking import MASKS, MaskGenerator
from masks.params import fraction, integer, ordered, pixels


@MASKS.register("box")
class BoxMask(MaskGenerator):
    """``min_boxes``..``max_boxes`` filled rectangles (they may overlap).

    Each rectangle's height and width are drawn independently (so its aspect is random) from the
    whole pixels between ``min_size`` and ``max_size`` times the image's height and width
    (at least 1 px); its position uniformly among those that fit.
    """

    name = "box"

    def __init__(
        self, min_boxes: int = 1, max_boxes: int = 3, min_size: float = 0.1, max_size: float = 0.5
    ) -> None:
        self.min_boxes = integer("min_boxes", min_boxes, 1)
        self.max_boxes = integer("max_boxes", max_boxes, 1)
        ordered("min_boxes", self.min_boxes, "max_boxes", self.max_boxes)
        self.min_size = fraction("min_size", min_size)
        self.max_size = fraction("max_size", max_size)
        ordered("min_size", self.min_size, "max_size", self.max_size)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A ``bool (height, width)`` mask of rectangles; ``True`` marks the hole."""
        mask = np.zeros((height, width), bool)
        rows = pixels(self.min_size, height), pixels(self.max_size, height) + 1
        cols = pixels(self.min_size, width), pixels(self.max_size, width) + 1
        for _ in range(int(rng.integers(self.min_boxes, self.max_boxes + 1))):
            box_h, box_w = int(rng.integers(*rows)), int(rng.integers(*cols))
            top = int(rng.integers(0, height - box_h + 1))
            left = int(rng.integers(0, width - box_w + 1))
            mask[top : top + box_h, left : left + box_w] = True
        return mask
