"""``example-row-fill``: each hole pixel gets the mean of the known pixels of its row."""

from __future__ import annotations

import torch

from benchmark.method import Method


class RowFill(Method):
    """Fills each hole pixel with the mean known colour of its row (image mean if none)."""

    device = "auto"  # plain torch: runs on whatever device the harness picks

    def __init__(self, blend: float = 0.0) -> None:
        if isinstance(blend, bool) or not isinstance(blend, (int, float)) or not 0 <= blend <= 1:
            raise ValueError(f"blend must be a number in [0, 1], got {blend!r}")
        self.blend = float(blend)  # weight of the image mean mixed into the row mean

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``masked`` float (N, 3, H, W), holes 0; ``mask`` bool (N, 1, H, W) -> (N, 3, H, W)."""
        known = (~mask).to(masked.dtype)
        values = masked * known  # never read hole pixels, whatever they hold
        image_mean = values.sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        row_count = known.sum(3, keepdim=True)
        row_mean = values.sum(3, keepdim=True) / row_count.clamp_min(1)
        row_mean = torch.where(row_count > 0, row_mean, image_mean)
        fill = (1 - self.blend) * row_mean + self.blend * image_mean
        return torch.where(mask, fill.expand_as(masked), masked).clamp(0, 1)
