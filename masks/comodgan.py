"""``comodgan`` masks: CoModGAN's free-form large holes (boxes and brush strokes), with MAT's
presets, at any image size.

A mask is the union of three parts, each drawn a random number of times ``0 .. n - 1`` (the
reference's ``randint(n)``): boxes with sides below half the image, boxes with sides below the
whole image (a box may hang over the border by half its side), and brush strokes. A stroke is a
polyline of 4..17 vertices from a uniform start, turning around 2*pi/5 +- up to 2*pi/15
(mirrored on every other vertex), with steps drawn from a normal of mean and deviation an eighth
and a sixteenth of the image diagonal (clipped to 0..a quarter), ``min_width``..``max_width``
thick with round vertices. The mask is then flipped up-down and left-right, each with
probability 1/2. A draw without any hole is drawn again (the reference's open range (0, 1)).

Presets give the three counts: ``comodgan`` 10 / 5 / 20 (co-mod-gan, training/mask_generator.py),
``mat`` 5 / 3 / 9 (MAT's large masks, datasets/mask_generator_512.py) and ``mat-small`` 3 / 2 / 4
(datasets/mask_generator_512_small.py). Stroke widths are 12..47 px at 512 x 512 in the
reference; here they are fractions of the shorter side (12/512 .. 48/512), so the reference's
picture holds at any size. Strokes are rasterised with Pillow, as the reference draws them.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from benchmark.errors import UsageError
from benchmark.masking import MASKS, MaskGenerator
from masks.params import fraction, integer, ordered

#: (boxes below half the side, boxes below the side, brush strokes): ``randint`` upper bounds.
PRESETS: dict[str, tuple[int, int, int]] = {
    "comodgan": (10, 5, 20),
    "mat": (5, 3, 9),
    "mat-small": (3, 2, 4),
}
#: Stroke width range of the reference at 512 x 512, as fractions of the side.
MIN_WIDTH, MAX_WIDTH = 12 / 512, 48 / 512
#: Draws of one image before it is declared out of reach (a draw is empty with p < 1e-4).
MAX_REDRAWS = 100


@MASKS.register("comodgan")
class CoModGANMask(MaskGenerator):
    """Large free-form holes: boxes plus brush strokes (CoModGAN; MAT's presets).

    ``preset`` supplies ``half_boxes``, ``full_boxes`` and ``brushes`` where not given.
    """

    name = "comodgan"

    def __init__(
        self,
        preset: str = "comodgan",
        half_boxes: int | None = None,
        full_boxes: int | None = None,
        brushes: int | None = None,
        min_width: float = MIN_WIDTH,
        max_width: float = MAX_WIDTH,
    ) -> None:
        if preset not in PRESETS:
            raise UsageError(
                f"comodgan: unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}"
            )
        half, full, strokes = PRESETS[preset]
        self.half_boxes = integer("half_boxes", half if half_boxes is None else half_boxes, 1)
        self.full_boxes = integer("full_boxes", full if full_boxes is None else full_boxes, 1)
        self.brushes = integer("brushes", strokes if brushes is None else brushes, 1)
        self.min_width = fraction("min_width", min_width)
        self.max_width = fraction("max_width", max_width)
        ordered("min_width", self.min_width, "max_width", self.max_width)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A ``bool (height, width)`` mask with at least one hole pixel."""
        for _ in range(MAX_REDRAWS):
            hole = np.zeros((height, width), bool)
            for count, divisor in ((self.half_boxes, 2), (self.full_boxes, 1)):
                for _ in range(int(rng.integers(count))):
                    _box(rng, hole, height // divisor, width // divisor)
            hole |= self._strokes(rng, height, width)
            if rng.random() > 0.5:
                hole = hole[::-1]
            if rng.random() > 0.5:
                hole = hole[:, ::-1]
            if hole.any():
                return np.ascontiguousarray(hole)
        raise UsageError(f"mask 'comodgan': no hole in {MAX_REDRAWS} draws at {height}x{width}")

    def _strokes(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        radius = math.hypot(height, width) / 8
        side = min(height, width)
        for _ in range(int(rng.integers(self.brushes))):
            vertices = int(rng.integers(4, 18))
            spread = 2 * math.pi / 15
            low = 2 * math.pi / 5 - rng.uniform(0, spread)
            high = 2 * math.pi / 5 + rng.uniform(0, spread)
            angles = [rng.uniform(low, high) for _ in range(vertices)]
            angles = [2 * math.pi - a if i % 2 == 0 else a for i, a in enumerate(angles)]
            points = [(int(rng.integers(0, width)), int(rng.integers(0, height)))]
            for angle in angles:
                step = float(np.clip(rng.normal(radius, radius // 2), 0, 2 * radius))
                x = np.clip(points[-1][0] + step * math.cos(angle), 0, width)
                y = np.clip(points[-1][1] + step * math.sin(angle), 0, height)
                points.append((int(x), int(y)))
            thickness = max(1, int(rng.uniform(self.min_width * side, self.max_width * side)))
            draw.line(points, fill=1, width=thickness)
            half = thickness // 2
            for x, y in points:
                draw.ellipse((x - half, y - half, x + half, y + half), fill=1)
        return np.asarray(canvas, dtype=np.uint8) > 0


def _box(rng: np.random.Generator, hole: np.ndarray, max_h: int, max_w: int) -> None:
    """One box of sides ``0 .. max - 1`` that may hang over the border by half its side."""
    height, width = hole.shape
    box_w, box_h = int(rng.integers(max(1, max_w))), int(rng.integers(max(1, max_h)))
    left = int(rng.integers(-(box_w // 2), width - box_w + box_w // 2))
    top = int(rng.integers(-(box_h // 2), height - box_h + box_h // 2))
    hole[max(top, 0) : min(top + box_h, height), max(left, 0) : min(left + box_w, width)] = True
