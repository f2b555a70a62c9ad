"""Image helpers shared by data sets, methods and the run: 8-bit <-> float conversions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmark.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import torch
else:  # imported on first use: ``list`` and ``--help`` never need them
    np = lazy_module("numpy")
    torch = lazy_module("torch")


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """``float (N, 3, H, W)`` in [0, 1] -> contiguous ``uint8 (N, H, W, 3)``, rounded."""
    scaled = images.detach().to("cpu").mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(scaled.permute(0, 2, 3, 1).numpy())


def from_uint8_hwc(images: np.ndarray) -> torch.Tensor:
    """``uint8 (N, H, W, 3)`` -> ``float32 (N, 3, H, W)`` in [0, 1]."""
    n, h, w, c = images.shape
    planes = torch.empty((n, c, h, w), dtype=torch.float32)  # contiguous: what metrics read
    planes.copy_(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))
    return planes.div_(255)
