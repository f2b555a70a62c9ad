"""``example-stripes``: horizontal stripes at random rows."""

from __future__ import annotations

import numpy as np

from benchmark.masking import MaskGenerator


class Stripes(MaskGenerator):
    """Horizontal stripes at random rows, each a fraction of the image height (at least 1 px).

    ``stripes`` is their number, ``thickness`` their height as a fraction of the image height.
    """

    def __init__(self, stripes: int = 3, thickness: float = 0.05) -> None:
        if isinstance(stripes, bool) or not isinstance(stripes, int) or stripes < 1:
            raise ValueError(f"stripes must be an integer >= 1, got {stripes!r}")
        if isinstance(thickness, bool) or not isinstance(thickness, (int, float)):
            raise ValueError(f"thickness must be a fraction in (0, 0.5], got {thickness!r}")
        if not 0 < thickness <= 0.5:
            raise ValueError(f"thickness must be a fraction in (0, 0.5], got {thickness!r}")
        self.stripes = stripes
        self.thickness = float(thickness)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """Only ``rng`` decides the mask, so image ``i`` always gets the same stripes."""
        rows = max(1, round(self.thickness * height))
        mask = np.zeros((height, width), bool)
        for top in rng.integers(0, height - rows + 1, size=self.stripes):
            mask[top : top + rows] = True
        return mask
