"""``example-hole-rmse``: root mean squared error over the hole pixels (lower is better)."""

from __future__ import annotations

import torch

from benchmark.metrics import Metric


def _hole_rmse(result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image: the RMSE over the hole pixels (all channels), on the [0, 1] scale.

    ``result`` and ``target`` are ``(N, 3, H, W)`` floats in ``[0, 1]``, ``mask`` is
    ``(N, 1, H, W)`` bool with at least one hole pixel per image. Each image is reduced on its
    own, in float64, so its value does not depend on the batch it is measured in.
    """
    hole = mask.expand_as(result).to(torch.float64)
    squared = (result.to(torch.float64) - target.to(torch.float64)).square() * hole
    return (squared.flatten(1).sum(1) / hole.flatten(1).sum(1)).sqrt().to(torch.float32)


def hole_rmse() -> Metric:
    """The metric: its name (the record key and the ``--metrics`` name), how to compute it, a
    table label, its direction (False: lower is better) and the decimals tables show."""
    return Metric("example-hole-rmse", _hole_rmse, "hole RMSE", False, 4)
