"""OpenCV contrib's xphoto methods: mask convention, any size, quality on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from benchmark.masking import build_mask
from benchmark.method import METHODS
from benchmark.run.pipeline import measure

XPHOTO = ("shiftmap", "fsr", "fsr-fast")


def predict(name: str, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return METHODS.build(name).inpaint(torch.where(mask, 0.0, images), mask)


@pytest.mark.parametrize("name", XPHOTO)
@pytest.mark.parametrize(("height", "width"), [(5, 7), (17, 33), (40, 23)])
@pytest.mark.parametrize("known", ["one pixel", "one hole pixel", "left half"])
def test_a_flat_colour_is_refilled_at_any_size(name: str, height: int, width: int, known: str):
    # FSR leaves partial 16-pixel blocks unfilled and shift-map copies hole pixels when no
    # offset reaches a known one: both would show here as far-off values
    colour = torch.tensor([100, 200, 60]).view(1, 3, 1, 1) / 255
    images = colour.expand(1, 3, height, width)
    mask = torch.zeros(1, 1, height, width, dtype=torch.bool)
    if known == "one pixel":
        mask[:] = True
        mask[..., height - 1, 0] = False
    elif known == "one hole pixel":
        mask[..., height - 1, width - 1] = True
    else:
        mask[..., :, width // 2 :] = True
    prediction = predict(name, images, mask)
    hole = mask.expand_as(images)
    assert (prediction - images).abs()[hole].max() <= 3 / 255  # 8-bit colour-space round trips


def test_shiftmap_continues_a_periodic_pattern_exactly() -> None:
    # a patch method copies the pattern one period away; a smooth fill would blur it
    x = np.arange(64)
    stripes = np.where((x[None, :] // 4 + x[:, None] // 8) % 2 == 0, 40, 220).astype(np.uint8)
    images = torch.from_numpy(np.stack([stripes] * 3)).float().div(255)[None]
    mask = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    mask[..., 24:36, 20:34] = True
    prediction = predict("shiftmap", images, mask)
    hole = mask.expand_as(images)
    assert (prediction - images).abs()[hole].max() <= 3 / 255


def photo_patches(count: int, side: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    patches = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - side + 1)
        left = rng.integers(0, photo.shape[1] - side + 1)
        patches.append(photo[top : top + side, left : left + side])
    return torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float().div(255)


@pytest.mark.parametrize(
    ("name", "count"), [("fsr-fast", 12), pytest.param("fsr", 4, marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("mask_spec", ["lines", "square"])
def test_fsr_beats_the_mean_floor_on_photos(name: str, count: int, mask_spec: str) -> None:
    images = photo_patches(count, 32)
    mask = build_mask(mask_spec).batch(range(count), 32, 32, seed=0)
    scores = {}
    for method in (name, "mean"):
        values, _ = measure(images, predict(method, images, mask), mask)
        scores[method] = float(np.mean(values["psnr"]))
    assert scores[name] > scores["mean"] + 3.0, scores


def test_fingerprints_name_the_opencv_version() -> None:
    import cv2

    for name in XPHOTO:
        assert cv2.__version__ in METHODS.build(name).fingerprint()
