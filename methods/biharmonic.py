"""Biharmonic inpainting (scikit-image): the smooth fill minimising the squared Laplacian."""

from __future__ import annotations

import numpy as np
import skimage
from skimage.restoration import inpaint_biharmonic

from benchmark.method import METHODS, PerImageMethod


@METHODS.register("biharmonic")
class Biharmonic(PerImageMethod):
    """``skimage.restoration.inpaint_biharmonic`` on each RGB image (channels solved alike)."""

    slow_note = (
        "about 2 images/s at 512x512 on 2 CPU cores (11 at 256x256): telea/ns for large images"
    )

    def inpaint_image(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Fill ``image`` (uint8 (H, W, 3)) where ``hole`` (uint8 (H, W)) is 255; uint8 out."""
        filled = inpaint_biharmonic(image.astype(np.float32) / 255, hole > 0, channel_axis=-1)
        # the biharmonic fill may overshoot [0, 1] slightly; back to 8-bit levels
        return np.clip(np.rint(filled * 255), 0, 255).astype(np.uint8)

    def fingerprint(self) -> str:
        return f"scikit-image {skimage.__version__}"
