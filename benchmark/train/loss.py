"""The training losses: ``mse`` (the seed's) and ``psnr`` (the negative per-image PSNR)."""

from __future__ import annotations

import torch

#: The ``--loss`` choices.
LOSSES = ("mse", "psnr")
#: MSE floor of the ``psnr`` loss: 60 dB, finer than 8-bit levels can show.
PSNR_LOSS_FLOOR = 1e-6


def per_image_loss(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Loss of each image, ``(N,)``: ``mse`` (the seed's) or ``psnr`` (``10 log10 MSE``, in dB).

    ``mse`` weighs images by their squared error, so easy images barely count; ``psnr`` is the
    negative per-image PSNR the leaderboard averages, so every image counts alike.

    >>> pred, target = torch.full((2, 3, 4, 4), 0.5), torch.zeros(2, 3, 4, 4)
    >>> per_image_loss("mse", pred, target)
    tensor([0.2500, 0.2500])
    >>> per_image_loss("psnr", pred, target)
    tensor([-6.0206, -6.0206])
    """
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return mse if name == "mse" else 10 * torch.log10(mse + PSNR_LOSS_FLOOR)
