"""``skimage-patches``: the offline default data set.

Square RGB patches cut with stride ``side // 2`` from the colour photographs that ship inside
scikit-image. Patches are listed in one fixed pseudo-random order (a permutation with a fixed
seed), so that every prefix taken by ``--limit`` samples all photos of the split, not only the
first one. The split is by photo, so no
patch (nor an overlapping neighbour of one) appears in both splits; the motorcycle stereo pair
is on the train side only. Near-flat patches (std < ``min_std`` on the [0, 1] scale, over all
pixels and channels) are dropped: they are trivial to inpaint and inflate every score.
The same arguments always give the same patches in the same order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmark.datasets.base import DATASETS, SPLITS, TensorDataset, resolve_size
from benchmark.errors import DataError, UsageError

#: Default patch side.
DEFAULT_SIZE = 32
#: Seed of the fixed order of patches (changing it changes every index, hence every baseline).
ORDER_SEED = 20261125

#: Photo names of each split, in the order patches are cut.
TEST_PHOTOS = ("astronaut", "coffee", "immunohistochemistry", "rocket")
TRAIN_PHOTOS = ("chelsea", "hubble_deep_field", "retina", "motorcycle_left", "motorcycle_right")
PHOTOS = {"test": TEST_PHOTOS, "train": TRAIN_PHOTOS}

#: A patch's provenance: (photo name, top row y, left column x) in the photo.
Source = tuple[str, int, int]


def load_photo(name: str) -> np.ndarray:
    """The scikit-image photograph ``name`` as ``uint8 (H, W, 3)`` RGB."""
    from skimage import data  # imported here: listing data sets should not load scikit-image

    loaders: dict[str, Callable[[], np.ndarray]] = {
        "astronaut": data.astronaut,
        "coffee": data.coffee,
        "immunohistochemistry": data.immunohistochemistry,
        "rocket": data.rocket,
        "chelsea": data.chelsea,
        "hubble_deep_field": data.hubble_deep_field,
        "retina": data.retina,
        "motorcycle_left": lambda: data.stereo_motorcycle()[0],
        "motorcycle_right": lambda: data.stereo_motorcycle()[1],
    }
    try:
        photo = np.asarray(loaders[name]())
    except Exception as exc:  # a broken scikit-image install: say which photo
        raise DataError(f"cannot load scikit-image photo {name!r}: {exc}") from exc
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise DataError(
            f"scikit-image photo {name!r}: expected uint8 (H, W, 3), "
            f"got {photo.dtype} {photo.shape}"
        )
    return photo


def _cut(photo: np.ndarray, side: int, min_std: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Patches of ``photo`` (row-major, stride ``side // 2``) whose std is at least ``min_std``."""
    from skimage.util import view_as_windows

    stride = side // 2
    if photo.shape[0] < side or photo.shape[1] < side:
        return np.empty((0, side, side, 3), np.uint8), []
    windows = view_as_windows(photo, (side, side, 3), step=stride)[:, :, 0]  # (rows, cols, s, s, 3)
    n = side * side * 3
    # Exact integer variance (n² · 255² · var), so the filter cannot depend on float rounding.
    threshold = (min_std * 255 * n) ** 2
    kept, origins = [], []
    for row, row_windows in enumerate(windows):
        flat = row_windows.reshape(len(row_windows), n).astype(np.int64)
        scaled_var = n * (flat * flat).sum(axis=1) - flat.sum(axis=1) ** 2
        keep = np.flatnonzero(scaled_var >= threshold)
        kept.append(row_windows[keep])
        origins.extend((row * stride, int(col) * stride) for col in keep)
    return np.concatenate(kept), origins


@functools.lru_cache(maxsize=8)
def _build(split: str, side: int, min_std: float) -> tuple[np.ndarray, tuple[Source, ...]]:
    """The (read-only) patches and their sources of one split, cached per process."""
    patches: list[np.ndarray] = []
    sources: list[Source] = []
    for name in PHOTOS[split]:
        cut, origins = _cut(load_photo(name), side, min_std)
        patches.append(cut)
        sources.extend((name, y, x) for y, x in origins)
    order = np.random.default_rng(ORDER_SEED).permutation(len(sources))
    pixels = np.ascontiguousarray(np.concatenate(patches)[order])
    pixels.setflags(write=False)  # shared by every data set built from the cache
    return pixels, tuple(sources[i] for i in order)


class PatchDataset(TensorDataset):
    """In-memory patches with their provenance: ``sources[i] = (photo, y, x)`` of patch ``i``."""

    def __init__(self, pixels: np.ndarray, split: str, sources: list[Source]) -> None:
        super().__init__(pixels, split)
        self.sources = sources


@DATASETS.register("skimage-patches")
def skimage_patches(
    *,
    split: str = "test",
    size: int | None = None,
    data_dir: str | Path | None = None,
    min_std: float = 0.04,
) -> PatchDataset:
    """Patches of side ``size`` (default 32) from the scikit-image photos of ``split``.

    ``data_dir`` is unused: the photos ship with scikit-image. ``min_std`` is the smallest
    per-patch standard deviation (on the [0, 1] scale) kept; 0 keeps every patch.
    """
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    side = resolve_size(size, DEFAULT_SIZE, "skimage-patches")
    if isinstance(min_std, bool) or not isinstance(min_std, (int, float)) or not min_std >= 0:
        raise UsageError(f"skimage-patches: expected min_std to be a number >= 0, got {min_std!r}")
    pixels, sources = _build(split, side, float(min_std))
    if len(pixels) == 0:
        raise DataError(
            f"skimage-patches: no {split} patch of side {side} has std >= {min_std} "
            f"(photos: {', '.join(PHOTOS[split])})"
        )
    return PatchDataset(pixels, split, list(sources))
