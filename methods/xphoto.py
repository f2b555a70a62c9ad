"""Patch-based and sparse-model inpainting from OpenCV contrib's ``cv2.xphoto.inpaint``.

``xphoto``'s mask is the opposite of ``cv2.inpaint``'s: non-zero = known, 0 = missing; and its
shift-map must get exactly 255 for known pixels (it blanks everything where ``255 - mask`` is
non-zero).
"""

from __future__ import annotations

import cv2
import numpy as np

from benchmark.method import METHODS, PerImageMethod

#: Shift-map reads outside images smaller than this (its patches are 8 pixels wide: memory
#: errors and run-to-run differences on 1-pixel-high images), so smaller ones are padded by
#: reflection, mask included.
SHIFTMAP_MIN_SIDE = 32
#: FSR processes whole 16x16 blocks only (a partial block at the right or bottom edge is never
#: filled), so images are padded to a multiple of this by reflection, mask included.
FSR_BLOCK = 16


class _XPhotoInpaint(PerImageMethod):
    """``cv2.xphoto.inpaint`` with one algorithm flag, on 8-bit images."""

    flag: int

    def fingerprint(self) -> str:
        return f"opencv {cv2.__version__}"


@METHODS.register("shiftmap")
class ShiftMap(_XPhotoInpaint):
    """He & Sun (2012) shift-map: graph-cut stitching of the image's dominant patch offsets.

    Copies whole regions of the image into the hole, so it keeps texture and sharp edges where
    the image repeats itself; by pixel error it is weak (a copied patch that is slightly off
    costs more than a blur). Colour (run in CIELab, as OpenCV's documentation asks), any size
    (images above 800x600 are solved at that size and refined). Cost: one graph cut over the
    hole per image: tens of images/s at 32x32, about 1 image/s at 256x256 on 2 cores.

    Hole pixels that no offset maps onto a known pixel (tiny or almost fully masked images) are
    copied from the hole itself by OpenCV; they are refilled by
    OpenCV's Navier-Stokes method from the rest.

    Not exactly repeatable: OpenCV returns one of a few slightly different results depending on
    the thread that runs it (re-seeding its random generator does not change that), so runs
    differ by about 0.05 dB; it is left out of the CI gate's configuration for that reason.
    """

    flag = cv2.xphoto.INPAINT_SHIFTMAP
    slow_note = "about 1 image/s at 256x256 on 2 CPU cores; telea or ns for quick large images"

    def inpaint_image(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Fill ``image`` (uint8 (H, W, 3) RGB) where ``hole`` (uint8 (H, W)) is 255."""
        height, width = hole.shape
        bottom, right = max(0, SHIFTMAP_MIN_SIDE - height), max(0, SHIFTMAP_MIN_SIDE - width)
        image = cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_REFLECT)
        hole = cv2.copyMakeBorder(hole, 0, bottom, 0, right, cv2.BORDER_REFLECT)
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)
        missing = hole > 0
        lab[missing] = 0  # 8-bit Lab (0, 0, 0) is no colour: it marks pixels copied from a hole
        filled = np.empty_like(lab)
        cv2.xphoto.inpaint(lab, np.where(missing, 0, 255).astype(np.uint8), filled, self.flag)
        # shift-map also re-stitches a band of known pixels around the hole, where it may copy
        # hole pixels too: known pixels keep their given values, unfilled hole pixels are refilled
        unfilled = missing & ~filled.any(axis=2)
        out = np.where(missing[:, :, None], cv2.cvtColor(filled, cv2.COLOR_Lab2RGB), image)
        if unfilled.any():
            out[unfilled] = 0  # cv2.inpaint reads the hole pixels it is given
            out = cv2.inpaint(out, unfilled.astype(np.uint8) * 255, 3, cv2.INPAINT_NS)
        return np.ascontiguousarray(out[:height, :width])


class _FrequencySelective(_XPhotoInpaint):
    """Frequency-selective reconstruction: blockwise sparse Fourier models of the known pixels."""

    def inpaint_image(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Fill ``image`` (uint8 (H, W, 3) RGB) where ``hole`` (uint8 (H, W)) is 255."""
        height, width = hole.shape
        bottom, right = -height % FSR_BLOCK, -width % FSR_BLOCK
        valid = np.where(hole > 0, 0, 255).astype(np.uint8)
        # FSR reads BGR (it converts to YCrCb itself)
        bgr = cv2.copyMakeBorder(image[:, :, ::-1], 0, bottom, 0, right, cv2.BORDER_REFLECT)
        valid = cv2.copyMakeBorder(valid, 0, bottom, 0, right, cv2.BORDER_REFLECT)
        filled = np.empty_like(bgr)
        cv2.xphoto.inpaint(bgr, valid, filled, self.flag)
        return np.ascontiguousarray(filled[:height, :width, ::-1])


@METHODS.register("fsr")
class FrequencySelectiveBest(_FrequencySelective):
    """Seiler et al. (2015) / Genser et al. (2018) FSR, best quality (OpenCV ``FSR_BEST``).

    Good for thin and mid-size holes in smooth or regular content (it models each block as a
    few 2-D frequencies); blurs large holes in irregular texture. Colour (Y, Cr, Cb channels
    solved apart) and any size (padded to 16-pixel blocks). Cost: up to 400 model iterations
    per block and channel: about 1 image/s at 32x32 and 50 s per image at 256x256 on 2 cores.
    """

    flag = cv2.xphoto.INPAINT_FSR_BEST
    slow_note = (
        "about 50 s per image at 256x256 on 2 CPU cores; fsr-fast is the same model, 50x faster"
    )


@METHODS.register("fsr-fast")
class FrequencySelectiveFast(_FrequencySelective):
    """Seiler et al. (2015) / Genser et al. (2018) FSR, fast profile (OpenCV ``FSR_FAST``).

    The same model as ``fsr`` with smaller FFT windows, fewer iterations and no 2x2 blocks.
    Colour and any size (padded to 16-pixel blocks). Cost: about 30 images/s at 32x32 and 1
    image/s at 256x256 on 2 cores.
    """

    flag = cv2.xphoto.INPAINT_FSR_FAST
    slow_note = "about 1 image/s at 256x256 on 2 CPU cores; telea or ns for quick large images"
