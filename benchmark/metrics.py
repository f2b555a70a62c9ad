"""Per-image quality metrics, defined once for the whole project (see docs/design.md).

All functions take ``(N, 3, H, W)`` float tensors in ``[0, 1]`` and return one value per image,
shape ``(N,)``. Hole metrics also take the ``(N, 1, H, W)`` bool mask (``True`` = hole).

>>> target = torch.zeros(1, 3, 16, 16)
>>> result = target.clone(); result[..., :8, :] = 0.1
>>> psnr(result, target)
tensor([23.0103])
>>> mask = torch.zeros(1, 1, 16, 16, dtype=torch.bool); mask[..., :8, :] = True
>>> hole_psnr(result, target, mask)
tensor([20.])
>>> hole_l1(result, target, mask)
tensor([0.1000])
>>> mask_ratio(result, target, mask)
tensor([0.5000])
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.lazy import lazy_module
from benchmark.registry import Registry

if TYPE_CHECKING:
    import cv2
    import kornia
    import numpy as np
    import torch
else:  # imported on first use: ``list`` and ``--help`` never need them
    cv2 = lazy_module("cv2")
    kornia = lazy_module("kornia")
    np = lazy_module("numpy")
    torch = lazy_module("torch")

#: MSE floor: caps PSNR at 100 dB so identical images give a finite number.
MSE_FLOOR = 1e-10
#: SSIM window (docs/design.md): 11x11 Gaussian, sigma 1.5 (kornia's fixed sigma), valid positions.
SSIM_WINDOW = 11
#: Values per chunk of the CPU SSIM (about 1 MB of float32): measured fastest on 32 to 512 px.
SSIM_CHUNK_VALUES = 2**18
#: Width the CPU SSIM lays narrow planes side by side to, before filtering (pixels).
SSIM_MOSAIC_WIDTH = 256
#: The CPU SSIM computes an image on its own crop when the crop is at most this share of it,
SSIM_CROP_SHARE = 0.8
#: and the image has at least this many pixels (smaller ones are cheaper batched than cropped).
SSIM_CROP_MIN_PIXELS = 96 * 96


def _psnr_from_mse(mse: torch.Tensor, data_range: float) -> torch.Tensor:
    return (10 * torch.log10(data_range**2 / mse.clamp_min(MSE_FLOOR))).to(torch.float32)


@dataclass(frozen=True)
class Errors:
    """Per-image sums of the error ``result - target``, float64, shared by the error metrics.

    ``hole_*`` are ``None`` when no mask was given. ``hole_values`` counts hole pixels times
    channels (the denominator of the hole metrics).
    """

    squared: torch.Tensor  # sum of squared errors over every value of the image
    values: int  # values per image, C * H * W
    hole_squared: torch.Tensor | None = None  # sum of squared errors over the hole
    hole_absolute: torch.Tensor | None = None  # sum of absolute errors over the hole
    hole_values: torch.Tensor | None = None


def errors(result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> Errors:
    """The error sums of each image (see :class:`Errors`), in one pass over the pair.

    On the CPU with NumPy, each image's sums reduced on its own (float64 accumulators): the
    values do not depend on the batch an image is measured in nor on the thread count, which
    torch's multi-threaded reductions do not promise (they differ in the last bit). On other
    devices with torch, where the tensors live.
    """
    if result.device.type != "cpu" or target.device.type != "cpu":
        return _errors_torch(result, target, mask)
    n, c = result.shape[:2]
    x = result.detach().to(torch.float32).contiguous().numpy().reshape(n, c, -1)
    y = target.detach().to(torch.float32).contiguous().numpy().reshape(n, c, -1)
    error = x - y
    squared = error * error
    total = squared.reshape(n, -1).sum(1, dtype=np.float64)
    values = error[0].size if n else 0
    if mask is None:
        return Errors(torch.from_numpy(total), values)
    holes = mask.detach().to("cpu").contiguous().numpy().reshape(n, -1)
    per_pixel = squared.sum(1)  # channels summed first: the hole mask is per pixel
    per_pixel *= holes
    hole_squared = per_pixel.sum(1, dtype=np.float64)
    per_pixel = np.abs(error, out=error).sum(1)
    per_pixel *= holes
    hole_absolute = per_pixel.sum(1, dtype=np.float64)
    counts = holes.sum(1, dtype=np.float64) * c
    return Errors(
        torch.from_numpy(total),
        values,
        torch.from_numpy(hole_squared),
        torch.from_numpy(hole_absolute),
        torch.from_numpy(counts),
    )


def _errors_torch(
    result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> Errors:
    """:func:`errors` with torch ops, on the tensors' own device (a GPU's)."""
    n, c = result.shape[:2]
    error = (result.float() - target.float()).flatten(2)  # (N, C, H*W)
    squared = error.square()
    total = squared.flatten(1).sum(1, dtype=torch.float64)
    values = error[0].numel() if n else 0
    if mask is None:
        return Errors(total, values)
    holes = mask.flatten(1).to(error.dtype)  # (N, H*W)
    hole_squared = (squared.sum(1) * holes).sum(1, dtype=torch.float64)
    hole_absolute = (error.abs_().sum(1) * holes).sum(1, dtype=torch.float64)
    counts = holes.sum(1, dtype=torch.float64) * c
    return Errors(total, values, hole_squared, hole_absolute, counts)


def psnr(result: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR per image: ``10 log10(data_range^2 / MSE)`` over all pixels and channels (dB)."""
    return _psnr(errors(result, target), data_range)


def _psnr(sums: Errors, data_range: float = 1.0) -> torch.Tensor:
    return _psnr_from_mse(sums.squared / max(1, sums.values), data_range)


def ssim(result: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image: Gaussian 11x11 window, sigma 1.5, K1=0.01, K2=0.03, valid positions.

    Equal to scikit-image ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=0)`` and to ``tf.image.ssim``.
    Images must be at least 11 pixels on each side. Computed with kornia on the tensors' own
    device (CUDA when they live there); on the CPU with OpenCV's separable Gaussian filter,
    which gives the same numbers (within 1e-6) about twice as fast as kornia's CPU path.
    """
    if min(result.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(result.shape)}"
        )
    if result.device.type == "cpu" and target.device.type == "cpu":
        return _ssim_cpu(result.detach(), target.detach(), data_range)
    ssim_map = kornia.metrics.ssim(result, target, SSIM_WINDOW, max_val=data_range, padding="valid")
    return ssim_map.flatten(1).mean(1)


def _ssim_cpu(result: torch.Tensor, target: torch.Tensor, data_range: float) -> torch.Tensor:
    """:func:`ssim` on the CPU, computed only where ``result`` and ``target`` differ.

    Where the two images are equal over a whole 11x11 window, both filtered moment maps are
    equal to the bit, so SSIM there is exactly 1. An inpainted result differs from its target
    only in the hole, so each image whose differing pixels sit in a small part of it is
    computed on the bounding box of those pixels grown by two window radii (one for the SSIM
    positions the hole touches, one for their windows); every valid position outside that box
    counts as 1. The result is bit-identical to filtering the whole image (tested). Images
    whose box would cover most of the frame, and small images, are computed whole, batched.
    """
    n, _, h, w = result.shape
    if not n:
        return torch.zeros(0)
    result = result.to(torch.float32).contiguous()
    target = target.to(torch.float32).contiguous()
    if h * w < SSIM_CROP_MIN_PIXELS:
        total, count = _ssim_sums_chunked(result, target, data_range)
        return torch.from_numpy(total / count).to(torch.float32)
    # (N, H, W): NumPy's comparison is 5x faster than torch's single-threaded one
    differs = torch.from_numpy(np.not_equal(result.numpy(), target.numpy()).any(1))
    boxes = _difference_boxes(differs, 2 * (SSIM_WINDOW // 2))
    pad = SSIM_WINDOW // 2
    valid = result.shape[1] * (h - 2 * pad) * (w - 2 * pad)  # valid positions of one image
    per_image = torch.ones(n, dtype=torch.float64)  # identical images: SSIM 1 everywhere
    whole: list[int] = []
    for k, (top, bottom, left, right) in enumerate(boxes):
        if bottom <= top:
            continue
        if (bottom - top) * (right - left) > SSIM_CROP_SHARE * h * w:
            whole.append(k)
            continue
        box = (slice(k, k + 1), slice(None), slice(top, bottom), slice(left, right))
        total, count = _ssim_sums(result[box], target[box], data_range)
        per_image[k] = (total[0] + (valid - count)) / valid
    if whole:
        total, count = _ssim_sums_chunked(result[whole], target[whole], data_range)
        per_image[whole] = torch.from_numpy(total / count)
    return per_image.to(torch.float32)


def _ssim_sums_chunked(
    result: torch.Tensor, target: torch.Tensor, data_range: float
) -> tuple[np.ndarray, int]:
    """:func:`_ssim_sums` in chunks of about 2^18 values, so that the twenty passes over the
    moment maps stay in the cache."""
    step = max(1, SSIM_CHUNK_VALUES // max(1, result[0].numel()))
    parts = [
        _ssim_sums(result[k : k + step], target[k : k + step], data_range)
        for k in range(0, len(result), step)
    ]
    return np.concatenate([total for total, _ in parts]), parts[0][1]


def _difference_boxes(differs: torch.Tensor, margin: int) -> list[tuple[int, int, int, int]]:
    """``(top, bottom, left, right)`` of each image's differing pixels, grown by ``margin`` and
    clipped to the image (end exclusive); ``bottom <= top`` for an image with none."""
    n, h, w = differs.shape
    rows, cols = differs.any(2).to(torch.uint8), differs.any(1).to(torch.uint8)
    top = rows.argmax(1) - margin
    bottom = h - rows.flip(1).argmax(1) + margin
    left = cols.argmax(1) - margin
    right = w - cols.flip(1).argmax(1) + margin
    top, left = top.clamp_min(0), left.clamp_min(0)
    bottom, right = bottom.clamp_max(h), right.clamp_max(w)
    bottom = torch.where(rows.any(1).bool(), bottom, top)
    return list(zip(top.tolist(), bottom.tolist(), left.tolist(), right.tolist()))


def _ssim_sums(
    result: torch.Tensor, target: torch.Tensor, data_range: float
) -> tuple[np.ndarray, int]:
    """Sum of the SSIM map over each image's valid window positions (float64) and their count.

    Five Gaussian-filtered moment maps with OpenCV. Every channel plane of the batch is laid
    into one float32 mosaic (planes side by side, rows of planes below each other) filtered in a
    single ``cv2.sepFilter2D`` call per moment: the pixels where neighbouring planes mix through
    the filter are exactly the 5-pixel borders the valid window crops away. Narrow planes are
    set side by side until a row is :data:`SSIM_MOSAIC_WIDTH` pixels wide, since OpenCV filters a
    32-pixel-wide image 1.8x slower per pixel than a 256-pixel-wide one.
    """
    n, c, h, w = result.shape
    planes = n * c
    across = max(1, min(planes, SSIM_MOSAIC_WIDTH // w))  # planes side by side
    rows = -(-planes // across)

    def mosaic(image: torch.Tensor) -> np.ndarray:
        stack = image.contiguous().numpy().reshape(planes, h, w)
        if rows * across > planes:  # fill the last row with blank planes
            stack = np.concatenate([stack, np.zeros((rows * across - planes, h, w), np.float32)])
        if across == 1:
            return stack.reshape(rows * h, w)
        return np.ascontiguousarray(
            stack.reshape(rows, across, h, w).transpose(0, 2, 1, 3).reshape(rows * h, across * w)
        )

    x, y = mosaic(result), mosaic(target)
    kernel = cv2.getGaussianKernel(SSIM_WINDOW, 1.5, cv2.CV_32F)

    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(image, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REFLECT)

    pad = SSIM_WINDOW // 2

    def valid(image: np.ndarray) -> np.ndarray:  # the valid window positions of every plane
        return image.reshape(rows, h, across, w)[:, pad:-pad, :, pad:-pad]

    mu_x, mu_y = blur(x), blur(y)
    xx, yy, xy = blur(x * x), blur(y * y), blur(x * y)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    # in place, on the whole contiguous arrays (these are the batch's largest): 1.6x faster
    # than on strided views of the valid region, which is cropped afterwards (each value is
    # computed alone, so the crop's values do not depend on it)
    mu_xy = mu_x * mu_y
    xy -= mu_xy  # covariance
    mu_x *= mu_x
    mu_y *= mu_y
    xx -= mu_x  # variances
    yy -= mu_y
    mu_xy *= 2
    mu_xy += c1
    xy *= 2
    xy += c2
    mu_xy *= xy  # numerator
    mu_x += mu_y
    mu_x += c1
    xx += yy
    xx += c2
    mu_x *= xx  # denominator
    mu_xy /= mu_x
    mu_xy = valid(mu_xy)
    # back to plane order (plane, row, column): each image's values summed in the same order
    per_plane = mu_xy.transpose(0, 2, 1, 3).reshape(rows * across, -1)[:planes]
    per_image = per_plane.reshape(n, -1)
    return per_image.sum(1, dtype=np.float64), per_image.shape[1]


def hole_psnr(result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR per image over hole pixels only (all channels), data range 1 (dB)."""
    return _hole_psnr(errors(result, target, mask))


def _hole_psnr(sums: Errors) -> torch.Tensor:
    return _psnr_from_mse(sums.hole_squared / sums.hole_values, 1.0)


def hole_l1(result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image over hole pixels only (all channels), on the [0, 1] scale."""
    return _hole_l1(errors(result, target, mask))


def _hole_l1(sums: Errors) -> torch.Tensor:
    return (sums.hole_absolute / sums.hole_values).to(torch.float32)


def mask_ratio(result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of hole pixels per image.

    The exact hole count over the pixel count, one float32 division: what ``mean`` of the
    mask as floats gives (its sum of ones is exact), without a float copy of the masks; the
    count by NumPy on the CPU (10x faster than torch's).
    """
    n, pixels = len(mask), mask[0].numel() if len(mask) else 0
    if mask.device.type == "cpu" and n:
        holes = np.count_nonzero(mask.detach().numpy().reshape(n, pixels), axis=1)
        counts = torch.from_numpy(np.asarray(holes, dtype=np.int64))
    else:
        counts = torch.count_nonzero(mask.reshape(n, pixels), dim=1)
    return counts.to(torch.float32) / pixels


@dataclass(frozen=True)
class Metric:
    """A per-image metric with what the leaderboard needs to show it."""

    name: str
    compute: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    label: str
    higher_is_better: bool | None  # None: descriptive only (mask ratio)
    decimals: int
    #: the same value from a batch's shared :func:`errors` (built-in error metrics only)
    from_errors: Callable[[Errors], torch.Tensor] | None = None


METRICS: Registry[Metric] = Registry("metric", group="benchmark.metrics")


def _register(
    name: str, compute, label: str, higher_is_better: bool | None, decimals: int, from_errors=None
) -> None:
    metric = Metric(name, compute, label, higher_is_better, decimals, from_errors)
    METRICS.add(name, lambda: metric)


_register("psnr", lambda r, t, m: psnr(r, t), "PSNR (dB)", True, 2, _psnr)
_register("ssim", lambda r, t, m: ssim(r, t), "SSIM", True, 4)
_register("hole_psnr", hole_psnr, "hole PSNR (dB)", True, 2, _hole_psnr)
_register("hole_l1", hole_l1, "hole L1", False, 4, _hole_l1)
_register("mask_ratio", mask_ratio, "mask ratio", None, 3)


#: The metrics every run computes for every record. Plug-in metrics are opt-in
#: (``run --metrics NAME``): installing one changes no run and no record.
BUILTIN_METRICS = ("hole_l1", "hole_psnr", "mask_ratio", "psnr", "ssim")


def all_metrics() -> list[Metric]:
    """Every registered metric (plug-in metrics included), by name."""
    return [METRICS.get(name)() for name in METRICS.names()]


def builtin_metrics() -> list[Metric]:
    """The built-in metrics (:data:`BUILTIN_METRICS`), by name."""
    return [METRICS.get(name)() for name in BUILTIN_METRICS]


def metrics_fingerprint() -> str:
    """Hash of each built-in metric's name and the source file of its code.

    Part of each record's provenance: records measured by other metric code (a fix) are
    measured again rather than mixed with new ones. Plug-in metrics are not part of it: each
    asked-for plug-in's own hash goes with the records that have its value
    (``metric_provenance``), so installing or changing one never recomputes other metrics.
    """
    digest = hashlib.sha256()
    for metric in builtin_metrics():
        try:
            source = Path(inspect.getsourcefile(metric.compute) or "").read_bytes()
        except (OSError, TypeError):
            source = b"unknown"
        digest.update(f"{metric.name}|{hashlib.sha256(source).hexdigest()}|".encode())
    return digest.hexdigest()[:16]


def compute_all(
    result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Every built-in metric for a batch: ``{name: (N,) tensor}`` (plug-in metrics are computed
    when a run asks for them, see :mod:`benchmark.perceptual.selection`).

    The error metrics (PSNR, hole PSNR, hole L1) share one :func:`errors` pass; each value is
    the same as its function's alone.
    """
    shared: Errors | None = None
    values = {}
    for metric in builtin_metrics():
        if metric.from_errors is not None:
            shared = shared or errors(result, target, mask)
            values[metric.name] = metric.from_errors(shared)
        else:
            values[metric.name] = metric.compute(result, target, mask)
    return values
