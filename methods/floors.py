"""Two floors: the known-pixel mean and the nearest known pixel.

They show what no modelling at all scores. They are not a bar every method clears: at 32x32
`nearest` ties `telea` in PSNR on lines and beats the seed's `unet`, and patch-copying
`shiftmap` scores below `mean` by PSNR (see the README's full-split tables).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from benchmark.method import METHODS, Method


@METHODS.register("mean")
class MeanFill(Method):
    """Each hole pixel gets its image's per-channel mean of the known pixels (batched torch)."""

    device = "auto"

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``masked`` float (N, 3, H, W), ``mask`` bool (N, 1, H, W) -> float (N, 3, H, W)."""
        mask = mask.to(masked.device)
        known = (~mask).to(masked.dtype)
        values = torch.where(mask, 0.0, masked)  # never read hole pixels, whatever they hold
        mean = values.sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        return torch.where(mask, mean, masked)


def nearest_known(hole: np.ndarray) -> np.ndarray:
    """Flat index (into ``H * W``) of the nearest known pixel (Euclidean) for each pixel.

    ``hole`` is bool (H, W), ``True`` = hole; known pixels map to themselves. Shape (H * W,).
    """
    rows, cols = distance_transform_edt(hole, return_distances=False, return_indices=True)
    return (rows * hole.shape[1] + cols).ravel()


@METHODS.register("nearest")
class NearestFill(Method):
    """Each hole pixel copies the value of its nearest known pixel (Euclidean distance, scipy)."""

    device = "cpu"

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``masked`` float (N, 3, H, W), ``mask`` bool (N, 1, H, W) -> float (N, 3, H, W)."""
        holes = mask[:, 0].detach().to("cpu").numpy()
        index = torch.from_numpy(np.stack([nearest_known(hole) for hole in holes]))
        values = masked.detach().to("cpu").flatten(2)  # (N, 3, H * W)
        filled = values.gather(2, index.unsqueeze(1).expand(-1, values.shape[1], -1))
        return filled.view_as(masked)
