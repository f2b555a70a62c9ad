"""MS-SSIM (Wang, Simoncelli and Bovik 2003) per image, equal to torchmetrics 1.9.0's
``multiscale_structural_similarity_index_measure`` with its defaults and ``data_range=1``.

Five scales with the standard weights ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``. At each
scale, SSIM's terms come from an 11x11 Gaussian window (sigma 1.5, K1 = 0.01, K2 = 0.03) over
the image reflect-padded by 5 pixels; the contrast-structure term ``cs`` is averaged over the
unpadded positions, the full SSIM (last scale only) over all positions, as torchmetrics does.
Both are clamped at 0 (``normalize="relu"``); between scales a 2x2 average pool halves the image::

    MS-SSIM = SSIM_5^b5 * prod_{j<5} cs_j^bj

Higher is better (1 for identical images).

Smaller images: torchmetrics refuses any side with ``side // 16 <= 10``, i.e. below **176 px**
(its message says "larger than 160"); the 161 px of pytorch-msssim (valid windows at the
fifth scale) does not apply to this variant. :func:`ms_ssim` refuses them the same way, with a
``ValueError`` naming the minimum: no silent fall-back to fewer scales.

>>> x = torch.linspace(0, 1, 176 * 176).reshape(1, 1, 176, 176).expand(1, 3, 176, 176)
>>> ms_ssim(x, x)
tensor([1.])
>>> ms_ssim(x[..., :175, :], x[..., :175, :])  # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: ms_ssim: images must be at least 176x176 for 5 scales ... got 175x176
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SIGMA = 1.5
WINDOW = 11  # int(3.5 * sigma + 0.5) * 2 + 1, torchmetrics' Gaussian size
K1, K2 = 0.01, 0.03
#: the smallest side torchmetrics accepts for 5 scales and an 11-pixel window
MIN_SIDE = WINDOW * (len(BETAS) - 1) ** 2  # side // 16 must exceed WINDOW - 1: 176


def _window(channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torchmetrics' separable Gaussian window, ``(channels, 1, 11, 11)``."""
    dist = torch.arange((1 - WINDOW) / 2, (1 + WINDOW) / 2, 1, dtype=dtype, device=device)
    gauss = torch.exp(-torch.pow(dist / SIGMA, 2) / 2)
    gauss = (gauss / gauss.sum()).unsqueeze(0)
    return torch.matmul(gauss.t(), gauss).expand(channels, 1, WINDOW, WINDOW)


def _ssim_and_cs(
    x: torch.Tensor, y: torch.Tensor, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM (all positions) and mean cs (unpadded positions) at one scale."""
    pad = (WINDOW - 1) // 2
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    n, channels = x.shape[:2]
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    window = _window(channels, x.dtype, x.device)
    out = F.conv2d(torch.cat((x, y, x * x, y * y, x * y)), window, groups=channels).split(n)
    mu_x_sq, mu_y_sq, mu_xy = out[0].pow(2), out[1].pow(2), out[0] * out[1]
    sigma_x_sq = torch.clamp(out[2] - mu_x_sq, min=0.0)
    sigma_y_sq = torch.clamp(out[3] - mu_y_sq, min=0.0)
    sigma_xy = out[4] - mu_xy
    upper = 2 * sigma_xy + c2
    lower = sigma_x_sq + sigma_y_sq + c2
    ssim_map = ((2 * mu_xy + c1) * upper) / ((mu_x_sq + mu_y_sq + c1) * lower)
    cs_map = (upper / lower)[..., pad:-pad, pad:-pad]
    return ssim_map.reshape(n, -1).mean(-1), cs_map.reshape(n, -1).mean(-1)


def ms_ssim(result: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """MS-SSIM per image, ``(N,)``, of ``(N, C, H, W)`` float images; both sides >= 176 px."""
    if result.shape != target.shape or result.ndim != 4:
        raise ValueError(
            f"ms_ssim: expected two (N, C, H, W) tensors of one shape, got {tuple(result.shape)} "
            f"and {tuple(target.shape)}"
        )
    height, width = result.shape[-2:]
    if min(height, width) < MIN_SIDE:
        raise ValueError(
            f"ms_ssim: images must be at least {MIN_SIDE}x{MIN_SIDE} for 5 scales of an "
            f"{WINDOW}-pixel window (torchmetrics' rule), got {height}x{width}"
        )
    x, y = result.detach().float(), target.detach().float()
    factors = []
    for scale in range(len(BETAS)):
        sim, cs = _ssim_and_cs(x, y, data_range)
        factors.append(torch.relu(cs) if scale < len(BETAS) - 1 else torch.relu(sim))
        x, y = F.avg_pool2d(x, (2, 2)), F.avg_pool2d(y, (2, 2))
    stack = torch.stack(factors)
    betas = torch.tensor(BETAS, device=stack.device).view(-1, 1)
    return torch.prod(stack**betas, dim=0)
