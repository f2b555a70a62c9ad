"""Harmonic (heat-equation) fill: hole pixels solve the discrete Laplace equation.

Known pixels are fixed boundary values; every hole pixel converges to the average of its 4
neighbours inside the image (replicate, i.e. Neumann, image borders): the steady state of heat
diffusion from the hole's boundary. Batched over the whole ``(N, 3, H, W)`` tensor, on whatever
device it lives on (CPU or CUDA).

The solver is hand-written (no library solves a batch of masked Laplace problems on the GPU):
red-black successive over-relaxation (SOR) on the hole pixels only, started from the solution of
the same problem at half resolution (recursively, down to a few pixels). Both only speed up
convergence: the fixed point is the discrete harmonic interpolant whatever the start and the
relaxation factor in (0, 2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from benchmark.method import METHODS, Method

#: Coarse levels only provide a start, so they stop at a looser tolerance.
COARSE_TOL_FACTOR = 10
#: Most sweeps per image: a bound on the time of one call, far above what convergence needs.
MAX_ITERATIONS = 1_000_000
#: Smallest stopping tolerance: below the float32 resolution of [0, 1] values (6e-8) every
#: tolerance stops at the same sweep, so smaller values would be different labels for one
#: result. A tolerance of 1 or more stops after the first sweep whatever its value.
MIN_TOL = 1e-7
#: Images smaller than this (shorter side) start from the known-pixel mean, not a coarser level.
COARSEST_SIDE = 8


class _Stencil:
    """The 5-point Laplace stencil of the hole pixels of a ``bool (N, 1, H, W)`` mask.

    Pixel values live in a ``(N * H * W + 1, C)`` table (one row per pixel); the last row is a
    stand-in for neighbours outside the image, which are left out of the average (weight
    ``1 / count``, that is a replicate border). Hole pixels are split in a red and a black
    chequerboard colour: a red pixel's neighbours are all black or known, so every pixel of one
    colour can be updated at once and the sweep is exactly a Gauss-Seidel sweep.
    """

    def __init__(self, mask: torch.Tensor, omega: torch.Tensor) -> None:
        n, _, height, width = mask.shape
        outside = mask.numel()
        index = mask.reshape(-1).nonzero().squeeze(1)
        y, x = index // width % height, index % width
        neighbours = torch.stack(
            [
                torch.where(y > 0, index - width, outside),
                torch.where(y < height - 1, index + width, outside),
                torch.where(x > 0, index - 1, outside),
                torch.where(x < width - 1, index + 1, outside),
            ]
        )
        inverse_count = 1.0 / (neighbours != outside).sum(0).unsqueeze(1)
        image = index // (height * width)
        red = (y + x) % 2 == 0
        self.images = n
        self.colours = [
            (
                index[part],
                neighbours[:, part].reshape(-1),
                inverse_count[part],
                image[part],
                omega[image[part]].unsqueeze(1),
            )
            for part in (red, ~red)
            if bool(part.any())
        ]

    def sweep(self, table: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """One red-black SOR sweep over ``table`` in place, for the ``active`` images only.

        Returns each image's largest |update| of the sweep, shape (N,).
        """
        # per-pixel |update| in a dense (N, H*W) buffer: its row maxima are the per-image maxima
        # (much faster on the CPU than scatter_reduce with "amax")
        changes = table.new_zeros(table.shape[0])
        for index, neighbours, inverse_count, image, omega in self.colours:
            current = table.index_select(0, index)
            total = table.index_select(0, neighbours).view(4, -1, table.shape[1]).sum(0)
            update = (total * inverse_count - current) * omega * active[image].unsqueeze(1)
            table.index_put_((index,), current + update)
            changes.index_put_((index,), update.abs().amax(1))
        return changes[:-1].view(self.images, -1).amax(1)


def _relaxation(mask: torch.Tensor) -> torch.Tensor:
    """The optimal SOR factor of each image, shape (N,), from its widest hole.

    The widest hole is measured by its reach ``r``, the chessboard distance from its farthest
    pixel to a known pixel; a hole ``2r + 1`` wide has Jacobi spectral radius ``cos(pi/(2r+1))``,
    whose optimal SOR factor is ``2 / (1 + sin(pi / (2r + 1)))``. A hole against the image border
    reaches across it (replicate border), which the distance counts on the image side only: its
    mirror image doubles the width, and ``2r + 1`` covers that. Per image, so that an image's
    result never depends on the other images of its batch.
    """
    known = ~mask[:, 0]
    reach = torch.zeros(len(mask), device=mask.device)
    while not bool(known.all()):  # grow the known pixels by one 3x3 dilation per step
        reach += (~known).flatten(1).any(1)
        rows = known.clone()
        rows[:, 1:] |= known[:, :-1]
        rows[:, :-1] |= known[:, 1:]
        known = rows.clone()
        known[:, :, 1:] |= rows[:, :, :-1]
        known[:, :, :-1] |= rows[:, :, 1:]
    return 2 / (1 + torch.sin(math.pi / (2 * reach.clamp_min(1) + 1)))


def _start(values: torch.Tensor, mask: torch.Tensor, iterations: int, tol: float) -> torch.Tensor:
    """Starting values for the holes: the harmonic fill at half resolution, upsampled."""
    known = (~mask).to(values.dtype)
    if min(values.shape[-2:]) < COARSEST_SIDE:
        mean = (values * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        return mean.expand_as(values)
    # masked average pooling: a coarse pixel is known (the mean of its known fine pixels) if any
    # of its 2x2 fine pixels is; the pooling divisor cancels in the ratio
    weight = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse = F.avg_pool2d(values * known, 2, ceil_mode=True) / weight.clamp_min(1e-12)
    coarse_mask = weight == 0
    if bool(coarse_mask.any()):
        coarse = harmonic_fill(coarse, coarse_mask, iterations, tol * COARSE_TOL_FACTOR)
    return F.interpolate(coarse, size=values.shape[-2:], mode="bilinear")


def harmonic_fill(
    values: torch.Tensor, mask: torch.Tensor, iterations: int = 2000, tol: float = 1e-4
) -> torch.Tensor:
    """Solve the discrete Laplace equation in the holes of a batch.

    ``values`` is float (N, C, H, W) with hole pixels set to anything finite, ``mask`` bool
    (N, 1, H, W) with ``True`` = hole (each image needs a known pixel). Returns (N, C, H, W):
    known pixels unchanged, hole pixels the 4-neighbour average of their in-image neighbours.
    Each image stops on its own, when the largest update of its last sweep is below ``tol`` (or
    after ``iterations`` sweeps), so its result does not depend on the rest of the batch.
    """
    n, c, h, w = values.shape
    values = torch.where(mask, _start(values, mask, iterations, tol), values)
    table = torch.cat([values.permute(0, 2, 3, 1).reshape(-1, c), values.new_zeros(1, c)])
    stencil = _Stencil(mask, _relaxation(mask).to(values.dtype))
    active = values.new_ones(n)
    for _ in range(iterations):
        active = active * (stencil.sweep(table, active) >= tol)
        if not bool(active.any()):
            break
    return table[:-1].view(n, h, w, c).permute(0, 3, 1, 2)


@METHODS.register("diffusion")
class Diffusion(Method):
    """Harmonic fill (4-neighbour Laplace, replicate borders), batched torch, any device.

    Each image stops after ``iterations`` sweeps (1..1,000,000) or when its largest absolute
    update falls below ``tol`` (on the [0, 1] scale; from 1e-7 to below 1).
    """

    slow_note = (
        "seconds per image at 256x256 on 2 CPU cores (large holes): use --device cuda, or telea/ns"
    )
    device = "auto"

    def __init__(self, iterations: int = 2000, tol: float = 1e-4) -> None:
        if (
            isinstance(iterations, bool)
            or not isinstance(iterations, int)
            or not 1 <= iterations <= MAX_ITERATIONS
        ):
            raise ValueError(
                f"iterations must be an integer from 1 to {MAX_ITERATIONS:,}, got {iterations!r}"
            )
        if (
            isinstance(tol, bool)
            or not isinstance(tol, (int, float))
            or not MIN_TOL <= tol < 1  # also refuses NaN and infinities
        ):
            raise ValueError(f"tol must be a number >= {MIN_TOL:g} and < 1, got {tol!r}")
        self.iterations = iterations
        self.tol = float(tol)

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``masked`` float (N, 3, H, W), ``mask`` bool (N, 1, H, W) -> float (N, 3, H, W)."""
        mask = mask.to(masked.device)
        values = torch.where(mask, 0.0, masked.float())  # never read hole pixels
        return harmonic_fill(values, mask, self.iterations, self.tol).clamp(0, 1)
