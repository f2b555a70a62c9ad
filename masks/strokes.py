"""Free-form brush strokes with LaMa's thin / medium / thick presets, at any image size.

A mask is either strokes or boxes, never both (LaMa's mixed generator picks one kind per mask):
boxes with probability ``box_probability``, else strokes. Masks whose hole ratio exceeds
``max_ratio`` are redrawn from the same random stream, as LaMa's data generator discards them.

Strokes: ``min_strokes``..``max_strokes`` random walks, each from a uniform start point through
1..``max_segments`` straight segments. A segment turns by ``0.01 + k`` radians, ``k`` uniform in
0..``max_angle - 1`` (mirrored to ``2*pi - angle`` on every other stroke), runs
``min_length``..``max_length`` and is ``min_width``..``max_width`` thick; its end is clipped to
the image and starts the next segment. ``cv2.line`` draws thick segments with round caps, so
the joints of a walk are round. Boxes: ``min_boxes``..``max_boxes`` rectangles whose sides are
drawn independently in ``min_box``..``max_box``, at least ``box_margin`` from the border.

Lengths, widths, box sides and the margin are fractions of the image's shorter side, so a preset
gives the same picture at 32, 256 or 512. The presets are LaMa's
``configs/data_gen/random_{thin,medium,thick}_256.yaml`` divided by 256, as LaMa's code
actually draws them: a length ``10 + randint(max_len)`` px is the range 10..max_len + 9, a width
``5 + randint(max_width)`` the range 5..max_width + 4, and its irregular generator (ramp off)
draws ``randint(min_times, max_times + 2)`` strokes, i.e. up to ``max_times + 1``. Its box
probability 0.3 beside the strokes' 1 is the share 0.3 / 1.3 of box masks.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from benchmark.errors import UsageError
from benchmark.masking import MASKS, MaskGenerator, RatioRange
from masks.params import fraction, integer, ordered, pixels

#: LaMa's three data_gen configurations at 256x256, with pixel values as fractions of 256.
PRESETS: dict[str, dict[str, float | int]] = {
    "thin": dict(
        min_strokes=4, max_strokes=51, max_segments=5, max_angle=4,
        min_length=10 / 256, max_length=49 / 256, min_width=5 / 256, max_width=14 / 256,
        box_probability=0.0, min_boxes=1, max_boxes=5, min_box=10 / 256, max_box=50 / 256,
        box_margin=0.0, max_ratio=0.5,
    ),
    "medium": dict(
        min_strokes=4, max_strokes=6, max_segments=5, max_angle=4,
        min_length=10 / 256, max_length=109 / 256, min_width=5 / 256, max_width=54 / 256,
        box_probability=0.3 / 1.3, min_boxes=1, max_boxes=5, min_box=10 / 256, max_box=50 / 256,
        box_margin=0.0, max_ratio=0.5,
    ),
    "thick": dict(
        min_strokes=1, max_strokes=6, max_segments=5, max_angle=4,
        min_length=10 / 256, max_length=209 / 256, min_width=5 / 256, max_width=104 / 256,
        box_probability=0.3 / 1.3, min_boxes=1, max_boxes=3, min_box=30 / 256, max_box=150 / 256,
        box_margin=10 / 256, max_ratio=0.5,
    ),
}  # fmt: skip

#: Draws of one image before ``max_ratio`` is declared out of reach of the parameters.
MAX_REDRAWS = 100


@MASKS.register("strokes")
class StrokesMask(MaskGenerator):
    """Brush strokes or boxes; ``preset`` supplies every parameter not given explicitly.

    The preset itself is not kept as an attribute: the resolved values are, so
    ``strokes:preset=thick`` and the same values spelt out draw the same masks and share one
    fingerprint.
    """

    name = "strokes"

    def __init__(
        self,
        preset: str = "medium",
        min_strokes: int | None = None,
        max_strokes: int | None = None,
        max_segments: int | None = None,
        max_angle: int | None = None,
        min_length: float | None = None,
        max_length: float | None = None,
        min_width: float | None = None,
        max_width: float | None = None,
        box_probability: float | None = None,
        min_boxes: int | None = None,
        max_boxes: int | None = None,
        min_box: float | None = None,
        max_box: float | None = None,
        box_margin: float | None = None,
        max_ratio: float | None = None,
    ) -> None:
        if preset not in PRESETS:
            raise UsageError(
                f"strokes: unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}"
            )
        # parameters given explicitly (not None) override the preset's values
        given = {k: v for k, v in locals().items() if k in PRESETS[preset] and v is not None}
        value = {**PRESETS[preset], **given}
        self.min_strokes = integer("min_strokes", value["min_strokes"], 1)
        self.max_strokes = integer("max_strokes", value["max_strokes"], 1)
        ordered("min_strokes", self.min_strokes, "max_strokes", self.max_strokes)
        self.max_segments = integer("max_segments", value["max_segments"], 1)
        self.max_angle = integer("max_angle", value["max_angle"], 1)
        self.min_length = fraction("min_length", value["min_length"])
        self.max_length = fraction("max_length", value["max_length"])
        ordered("min_length", self.min_length, "max_length", self.max_length)
        self.min_width = fraction("min_width", value["min_width"])
        self.max_width = fraction("max_width", value["max_width"])
        ordered("min_width", self.min_width, "max_width", self.max_width)
        self.box_probability = fraction("box_probability", value["box_probability"], True)
        self.min_boxes = integer("min_boxes", value["min_boxes"], 1)
        self.max_boxes = integer("max_boxes", value["max_boxes"], 1)
        ordered("min_boxes", self.min_boxes, "max_boxes", self.max_boxes)
        self.min_box = fraction("min_box", value["min_box"])
        self.max_box = fraction("max_box", value["max_box"])
        ordered("min_box", self.min_box, "max_box", self.max_box)
        self.box_margin = fraction("box_margin", value["box_margin"], allow_zero=True)
        if self.box_margin >= 0.5:
            raise ValueError(f"box_margin must be below 0.5, got {self.box_margin}")
        self.max_ratio = fraction("max_ratio", value["max_ratio"])

    def mask(
        self, index: int, height: int, width: int, seed: int = 0, ratio: RatioRange | None = None
    ) -> np.ndarray:
        """As :meth:`MaskGenerator.mask`; a range above ``max_ratio`` fails at once."""
        if ratio is not None and ratio[0] > self.max_ratio:
            raise UsageError(
                f"mask {self.name!r} cannot reach hole ratio {ratio[0]:g}-{ratio[1]:g}: it "
                f"redraws masks above max_ratio={self.max_ratio:g} (set a higher max_ratio)"
            )
        return super().mask(index, height, width, seed, ratio)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A ``bool (height, width)`` mask of strokes or boxes with hole ratio <= max_ratio."""
        for _ in range(MAX_REDRAWS):
            canvas = np.zeros((height, width), np.uint8)
            if rng.random() < self.box_probability:
                self._boxes(rng, canvas)
            else:
                self._strokes(rng, canvas)
            if canvas.mean() <= self.max_ratio:
                return canvas > 0
        raise UsageError(
            f"mask {self.name!r}: no mask with hole ratio <= max_ratio={self.max_ratio:g} in "
            f"{MAX_REDRAWS} draws at {height}x{width}; raise max_ratio or narrow the strokes"
        )

    def _strokes(self, rng: np.random.Generator, canvas: np.ndarray) -> None:
        height, width = canvas.shape
        side = min(height, width)
        shortest, longest = pixels(self.min_length, side), pixels(self.max_length, side)
        thinnest, thickest = pixels(self.min_width, side), pixels(self.max_width, side)
        for stroke in range(int(rng.integers(self.min_strokes, self.max_strokes + 1))):
            x, y = int(rng.integers(width)), int(rng.integers(height))
            for _ in range(int(rng.integers(1, self.max_segments + 1))):
                angle = 0.01 + int(rng.integers(self.max_angle))
                if stroke % 2 == 0:
                    angle = 2 * math.pi - angle
                length = int(rng.integers(shortest, longest + 1))
                brush = int(rng.integers(thinnest, thickest + 1))
                # truncate toward zero and clip to [0, side] inclusive, as LaMa does
                end_x = min(max(int(x + length * math.sin(angle)), 0), width)
                end_y = min(max(int(y + length * math.cos(angle)), 0), height)
                cv2.line(canvas, (x, y), (end_x, end_y), 1, brush)
                x, y = end_x, end_y

    def _boxes(self, rng: np.random.Generator, canvas: np.ndarray) -> None:
        height, width = canvas.shape
        side = min(height, width)
        margin = pixels(self.box_margin, side, floor=0)
        largest = min(pixels(self.max_box, side), height - 2 * margin - 1, width - 2 * margin - 1)
        if largest < 1:
            raise UsageError(
                f"mask {self.name!r}: box_margin={self.box_margin:g} leaves no room for a box "
                f"at {height}x{width}"
            )
        smallest = min(pixels(self.min_box, side), largest)
        for _ in range(int(rng.integers(self.min_boxes, self.max_boxes + 1))):
            box_w = int(rng.integers(smallest, largest + 1))
            box_h = int(rng.integers(smallest, largest + 1))
            left = int(rng.integers(margin, width - margin - box_w + 1))
            top = int(rng.integers(margin, height - margin - box_h + 1))
            canvas[top : top + box_h, left : left + box_w] = 1
