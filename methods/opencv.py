"""OpenCV's classical inpainting (``cv2.inpaint``): Telea's fast marching and Navier-Stokes."""

from __future__ import annotations

import cv2
import numpy as np

from benchmark.method import METHODS, PerImageMethod


class _OpenCVInpaint(PerImageMethod):
    """``cv2.inpaint`` with a neighbourhood ``radius`` in pixels (>= 1)."""

    flag: int

    def __init__(self, radius: float = 3) -> None:
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius >= 1:
            raise ValueError(f"radius must be a number of pixels >= 1, got {radius!r}")
        self.radius = float(radius)

    def inpaint_image(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Fill ``image`` (uint8 (H, W, 3)) where ``hole`` (uint8 (H, W)) is 255."""
        return cv2.inpaint(image, hole, self.radius, self.flag)

    def fingerprint(self) -> str:
        return f"opencv {cv2.__version__}"


@METHODS.register("telea")
class Telea(_OpenCVInpaint):
    """Telea (2004): fast marching from the hole boundary, weighted first-order extrapolation."""

    flag = cv2.INPAINT_TELEA


@METHODS.register("ns")
class NavierStokes(_OpenCVInpaint):
    """Bertalmio et al. (2001): isophote transport by Navier-Stokes fluid dynamics."""

    flag = cv2.INPAINT_NS
