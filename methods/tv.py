"""Total-variation inpainting: hole pixels minimise the isotropic TV with known pixels fixed.

Chan & Shen (2001), "Mathematical models for local non-texture inpaintings", solved with the
primal-dual algorithm of Chambolle & Pock (2011), "A first-order primal-dual algorithm for convex
problems with applications to imaging". Each channel of each image is its own problem:

    minimise  sum_pixels sqrt(dx(u)^2 + dy(u)^2)   over u,  subject to  u = f  on known pixels,

with forward differences and Neumann (replicate) image borders, so the term of a difference
leaving the image is 0. The known pixels are a hard constraint (no fidelity weight to tune): the
primal step projects onto them, i.e. resets them to their given values.

TV keeps edges that cross a thin hole sharp (where harmonic and biharmonic fills blur them) and
fills piecewise-constant regions exactly; it is poor for large textured holes (it draws flat
regions bounded by straight level lines, never texture). Cost: about 20 elementwise passes over
the batch per iteration and hundreds to thousands of iterations, so it is a GPU method at large
sizes (see ``slow_note``).

The solver is hand-written: no library solves a batch of masked TV problems on the GPU
(scikit-image's ``denoise_tv_chambolle`` denoises, it does not inpaint).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.method import METHODS, Method

#: Coarse levels only provide a start, so they stop at a looser tolerance.
COARSE_TOL_FACTOR = 10
#: Images smaller than this (shorter side) start from the known-pixel mean, not a coarser level.
COARSEST_SIDE = 8
#: The convergence test runs every this many iterations (a fixed schedule, the same for every
#: problem, so it never couples the problems of a batch).
CHECK_EVERY = 10


def _gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences of ``u`` (M, H, W), 0 on the last column / row (Neumann border)."""
    gx = F.pad(u[:, :, 1:] - u[:, :, :-1], (0, 1))
    gy = F.pad(u[:, 1:, :] - u[:, :-1, :], (0, 0, 0, 1))
    return gx, gy


def _divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Minus the adjoint of ``_gradient``: backward differences of the dual field."""
    px = px[:, :, :-1]  # the last column / row of a gradient field is always 0
    py = py[:, :-1, :]
    return F.pad(px, (0, 1)) - F.pad(px, (1, 0)) + F.pad(py, (0, 0, 0, 1)) - F.pad(py, (0, 0, 1, 0))


def chambolle_pock(
    known: torch.Tensor,
    hole: torch.Tensor,
    start: torch.Tensor,
    iterations: int,
    tol: float,
    tau: float,
    sigma: float,
) -> torch.Tensor:
    """Constrained TV minimisation of a batch of single-channel problems.

    ``known`` float (M, H, W) holds the fixed values (anything finite in holes), ``hole`` bool
    (M, H, W) marks the free pixels, ``start`` float (M, H, W) the starting values of the free
    pixels. Problem ``m`` stops after ``iterations`` iterations or at the first check (every
    ``CHECK_EVERY`` iterations) where its largest |change| of a free pixel in the last iteration
    is below ``tol``; it is then taken out of the batch, so its result depends on nothing else
    in the batch. Needs ``tau * sigma * 8 <= 1`` (the squared norm of the gradient is <= 8).
    """
    u = torch.where(hole, start, known)
    result = u.clone()
    u_bar = u.clone()
    px, py = torch.zeros_like(u), torch.zeros_like(u)
    alive = torch.arange(len(u), device=u.device)
    for step in range(1, iterations + 1):
        gx, gy = _gradient(u_bar)
        px.add_(gx, alpha=sigma)
        py.add_(gy, alpha=sigma)
        scale = torch.hypot(px, py).clamp_min_(1)  # project onto the unit ball, per pixel
        px.div_(scale)
        py.div_(scale)
        u_new = torch.where(hole, u + tau * _divergence(px, py), known)
        torch.sub(u_new.mul(2), u, out=u_bar)
        if step % CHECK_EVERY == 0 or step == iterations:
            change = (u_new - u).abs().flatten(1).amax(1)
            done = change < tol if step < iterations else torch.ones_like(change, dtype=torch.bool)
            if bool(done.any()):
                result[alive[done]] = u_new[done]
                keep = ~done
                alive, u_new, u_bar = alive[keep], u_new[keep], u_bar[keep]
                px, py, known, hole = px[keep], py[keep], known[keep], hole[keep]
                if len(alive) == 0:
                    break
        u = u_new
    return result


def tv_fill(
    values: torch.Tensor,
    mask: torch.Tensor,
    iterations: int,
    tol: float,
    tau: float,
    sigma: float,
) -> torch.Tensor:
    """TV inpainting of ``values`` float (N, C, H, W) in the holes of ``mask`` bool (N, 1, H, W).

    Every channel of every image is solved on its own, started from the TV fill of the same
    problem at half resolution (recursively, down to ``COARSEST_SIDE``), which only speeds up
    convergence: the minimiser does not depend on the start.
    """
    n, c, h, w = values.shape
    hole = mask.expand(n, c, h, w)
    start = _start(values, mask, iterations, tol, tau, sigma)
    filled = chambolle_pock(
        values.reshape(n * c, h, w),
        hole.reshape(n * c, h, w),
        start.reshape(n * c, h, w),
        iterations,
        tol,
        tau,
        sigma,
    )
    return filled.view(n, c, h, w)


def _start(
    values: torch.Tensor, mask: torch.Tensor, iterations: int, tol: float, tau: float, sigma: float
) -> torch.Tensor:
    """Starting values for the holes: the TV fill at half resolution, upsampled."""
    known = (~mask).to(values.dtype)
    if min(values.shape[-2:]) < COARSEST_SIDE:
        mean = (values * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        return mean.expand_as(values).contiguous()
    # masked average pooling: a coarse pixel is known (the mean of its known fine pixels) if any
    # of its 2x2 fine pixels is
    weight = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse = F.avg_pool2d(values * known, 2, ceil_mode=True) / weight.clamp_min(1e-12)
    coarse_mask = weight == 0
    if bool(coarse_mask.any()):
        coarse = tv_fill(coarse, coarse_mask, iterations, tol * COARSE_TOL_FACTOR, tau, sigma)
    return F.interpolate(coarse, size=values.shape[-2:], mode="nearest").contiguous()


@METHODS.register("tv")
class TotalVariation(Method):
    """Chan & Shen (2001) TV inpainting by Chambolle-Pock, batched torch, any device.

    Parameters: ``iterations`` caps the primal-dual iterations per level, ``tol`` stops a
    channel when its largest change in one iteration is below it (on the [0, 1] scale, checked
    every 10 iterations), ``tau`` and ``sigma`` are the primal and dual step sizes
    (``tau * sigma * 8 <= 1``). No regularisation weight: known pixels are a hard constraint.
    """

    device = "auto"
    slow_note = (
        "about 10 s per image at 256x256 on 2 CPU cores; run it on a GPU, or use telea or ns"
    )

    def __init__(
        self, iterations: int = 3000, tol: float = 1e-4, tau: float = 0.05, sigma: float = 2.5
    ) -> None:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
        for name, value in (("tol", tol), ("tau", tau), ("sigma", sigma)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if not tau * sigma * 8 <= 1 + 1e-12:
            raise ValueError(f"tau * sigma must be <= 1/8 for convergence, got {tau * sigma:g}")
        self.iterations = iterations
        self.tol = float(tol)
        self.tau = float(tau)
        self.sigma = float(sigma)

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``masked`` float (N, 3, H, W), ``mask`` bool (N, 1, H, W) -> float (N, 3, H, W)."""
        mask = mask.to(masked.device)
        values = torch.where(mask, 0.0, masked.float())  # never read hole pixels
        filled = tv_fill(values, mask, self.iterations, self.tol, self.tau, self.sigma)
        return filled.clamp(0, 1)
