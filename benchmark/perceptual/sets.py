"""Set metric values of one (method, mask) table entry from paired feature matrices.

Row ``i`` of the fake features is the composite of real image ``i``: FID, KID and U-IDS use the
two sets as distributions, P-IDS uses the pairs. KID takes subsets of ``min(1000, n)`` images
(torch-fidelity's size, or the whole set when it is smaller; torch-fidelity refuses those), 100
of them, seed 2020, and reports their mean and standard deviation.

FID is biased upward at small ``n`` (the covariance of 2,048 features from few images): below
:data:`FID_COMPARABLE_N` images a value is not comparable with published ones, and the tables
say so. KID is unbiased and the better guide for small sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmark.perceptual.fid import KID_SEED, KID_SUBSET_SIZE, KID_SUBSETS, fid, ids, kid
from benchmark.perceptual.selection import FEATURE_MODES

#: Images below which FID is not comparable with published figures (the field's 10k sets).
FID_COMPARABLE_N = 10_000
#: Fewest images a set metric is computed on (a covariance needs two).
MIN_IMAGES = 2


def set_values(
    names: Sequence[str], real: dict[str, np.ndarray], fake: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """``{name: {"value", "n", ...}}`` for each set metric of ``names``; ``real`` and ``fake``
    map each feature mode to ``(n, 2048)`` matrices of the same images in the same order.

    Fewer than :data:`MIN_IMAGES` images: ``value`` is None with a ``note``.
    """
    out: dict[str, dict[str, Any]] = {}
    paired: tuple[float, float] | None = None
    for name in names:
        mode = FEATURE_MODES[name]
        r, f = real[mode], fake[mode]
        n = len(f)
        if len(r) != n:
            raise ValueError(f"{name}: {len(r)} real and {n} fake feature rows")
        entry: dict[str, Any] = {"value": None, "n": n}
        if n < MIN_IMAGES:
            entry["note"] = f"needs at least {MIN_IMAGES} images"
        elif name in ("fid", "fid-clean"):
            entry["value"] = fid(r, f)
        elif name == "kid":
            size = min(KID_SUBSET_SIZE, n)
            mean, std = kid(f, r, KID_SUBSETS, size, KID_SEED)
            entry.update(value=mean, std=std, subset_size=size, subsets=KID_SUBSETS)
        else:  # p-ids, u-ids: one SVM for both
            paired = paired or ids(r, f)
            entry["value"] = paired[0] if name == "p-ids" else paired[1]
        out[name] = entry
    return out
