"""OpenCV's classical inpainting (``cv2.inpaint``): Telea's fast marching and Navier-Stokes."""

from __future__ import annotations

import cv2
import numpy as np

from benchmark.method import METHODS, PerImageMethod

#: ``cv2.inpaint`` rounds the radius to an integer and clamps it to 1..100 (OpenCV's
#: inpaint.cpp), so only these values give distinct results.
MIN_RADIUS, MAX_RADIUS = 1, 100


class _OpenCVInpaint(PerImageMethod):
    """``cv2.inpaint`` with a neighbourhood ``radius``: an integer number of pixels, 1..100.

    Values OpenCV would round or clamp are refused, so that two entries with different
    parameters never give identical results under different labels.
    """

    flag: int

    def __init__(self, radius: int = 3) -> None:
        if isinstance(radius, bool) or not isinstance(radius, int):
            raise ValueError(
                f"radius must be an integer number of pixels >= {MIN_RADIUS} and <= {MAX_RADIUS} "
                f"(cv2.inpaint rounds it), got {radius!r}"
            )
        if not MIN_RADIUS <= radius <= MAX_RADIUS:
            raise ValueError(
                f"radius must be an integer number of pixels >= {MIN_RADIUS} and <= {MAX_RADIUS} "
                f"(cv2.inpaint clamps it), got {radius!r}"
            )
        self.radius = radius

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
