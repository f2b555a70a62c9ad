"""Random thick lines, faithful to the seed report's irregular masks.

The seed drew ``randint(1, 10)`` lines (1 to 9) between random points anywhere in a 32x32 image,
each ``randint(1, 3)`` pixels thick (1 or 2), with ``cv2.line``. Here the thickness is a fraction
of the image's shorter side with a 1-pixel floor, so the defaults reproduce the seed at 32x32
(1-2 px) and scale with the image (4-8 px at 128x128). The thickness is ``cv2.line``'s
parameter, as in the seed: cv2 draws a line of thickness t > 1 about t + 1 pixels wide.
"""

from __future__ import annotations

import cv2
import numpy as np

from benchmark.masking import MASKS, MaskGenerator
from masks.params import fraction, integer, ordered, pixels


@MASKS.register("lines")
class LinesMask(MaskGenerator):
    """``min_lines``..``max_lines`` straight lines between uniform random points.

    Each line's thickness is drawn uniformly from the whole pixels between ``min_thickness`` and
    ``max_thickness`` times the shorter image side (at least 1 px).
    """

    name = "lines"

    def __init__(
        self,
        min_lines: int = 1,
        max_lines: int = 9,
        min_thickness: float = 0.03,
        max_thickness: float = 0.0625,
    ) -> None:
        self.min_lines = integer("min_lines", min_lines, 1)
        self.max_lines = integer("max_lines", max_lines, 1)
        ordered("min_lines", self.min_lines, "max_lines", self.max_lines)
        self.min_thickness = fraction("min_thickness", min_thickness)
        self.max_thickness = fraction("max_thickness", max_thickness)
        ordered("min_thickness", self.min_thickness, "max_thickness", self.max_thickness)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A ``bool (height, width)`` mask of lines; ``True`` marks the hole."""
        side = min(height, width)
        thin = pixels(self.min_thickness, side)
        thick = max(thin, pixels(self.max_thickness, side))
        canvas = np.zeros((height, width), np.uint8)
        for _ in range(rng.integers(self.min_lines, self.max_lines + 1)):
            x1, y1, x2, y2 = rng.integers(0, (width, height, width, height))
            thickness = int(rng.integers(thin, thick + 1))
            cv2.line(canvas, (int(x1), int(y1)), (int(x2), int(y2)), 255, thickness)
        return canvas > 0
