"""Total-variation inpainting: known minimisers, edges, batch independence, odd sizes."""

from __future__ import annotations

import pytest
import torch

from benchmark.errors import UsageError
from benchmark.method import METHODS
from methods.tv import _divergence, _gradient

HEIGHT, WIDTH = 24, 32


def fill(image: torch.Tensor, mask: torch.Tensor, spec: str = "tv") -> torch.Tensor:
    """``spec``'s prediction for a single-channel ``image`` (H, W) repeated in 3 channels."""
    images = image.expand(1, 3, *image.shape)
    return METHODS.build(spec).inpaint(torch.where(mask, 0.0, images), mask)[0]


def box(top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, HEIGHT, WIDTH, dtype=torch.bool)
    mask[..., top:bottom, left:right] = True
    return mask


def test_divergence_is_minus_the_adjoint_of_the_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    u = torch.rand(2, 7, 9, generator=generator, dtype=torch.float64)
    px, py = torch.rand(2, 2, 7, 9, generator=generator, dtype=torch.float64)
    gx, gy = _gradient(u)
    px[:, :, -1] = 0  # the dual field lives where the gradient does
    py[:, -1, :] = 0
    torch.testing.assert_close((gx * px + gy * py).sum(), -(u * _divergence(px, py)).sum())


# A linear ramp is a TV minimiser for its own boundary values: the constant dual field
# p = grad(u) / |grad(u)| has zero divergence inside a hole that does not touch the image
# border. For the horizontal ramp with a hole whose top and bottom rows are known it is the
# only one: TV >= sum |dx| >= the rise of each row, with equality only if dy = 0 everywhere,
# and dy = 0 below a known row forces the ramp. (A band from border to border is different:
# the Neumann border frees the level lines, and the ramp is no longer the minimiser there.)
@pytest.mark.parametrize(
    ("slope_x", "slope_y"), [(0.8, 0.0), (0.5, 0.4)], ids=["horizontal", "diagonal"]
)
def test_a_linear_ramp_is_refilled_exactly(slope_x: float, slope_y: float) -> None:
    y, x = torch.meshgrid(torch.linspace(0, 1, HEIGHT), torch.linspace(0, 1, WIDTH), indexing="ij")
    ramp = 0.1 + slope_x * x + slope_y * y * 0.5
    mask = box(6, 18, 8, 22)
    prediction = fill(ramp, mask)
    error = (prediction - ramp).abs()[mask[0].expand(3, -1, -1)]
    assert error.max() < 3e-3  # the stopping tolerance 1e-4 per iteration leaves ~1.5e-3


def test_an_edge_across_a_thin_hole_stays_sharp() -> None:
    # TV's minimiser continues the step straight through the band; the harmonic fill blurs it
    step = (torch.arange(WIDTH) >= WIDTH // 2).float().expand(HEIGHT, WIDTH)
    mask = box(10, 14, 0, WIDTH)
    hole = mask[0].expand(3, -1, -1)
    tv_error = (fill(step, mask) - step).abs()[hole].max()
    diffusion_error = (fill(step, mask, "diffusion") - step).abs()[hole].max()
    assert tv_error < 0.02 < diffusion_error


def test_each_image_is_solved_independently_of_its_batch() -> None:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(5, 3, 17, 23, generator=generator)
    mask = torch.rand(5, 1, 17, 23, generator=generator) < torch.linspace(0.05, 0.9, 5).view(
        5, 1, 1, 1
    )
    mask[:, :, 0, 0] = False
    masked = torch.where(mask, 0.0, images)
    method = METHODS.build("tv")
    together = method.inpaint(masked, mask)
    for i in range(5):
        alone = method.inpaint(masked[i : i + 1], mask[i : i + 1])
        assert torch.equal(alone[0], together[i]), f"image {i}"
    # in a different batch order too
    order = torch.tensor([4, 2, 0, 3, 1])
    assert torch.equal(method.inpaint(masked[order], mask[order]), together[order])


@pytest.mark.parametrize(("height", "width"), [(1, 7), (5, 3), (9, 31), (33, 17)])
def test_odd_sizes_keep_a_constant_image_constant(height: int, width: int) -> None:
    image = torch.full((1, 3, height, width), 0.25)
    mask = torch.ones(1, 1, height, width, dtype=torch.bool)
    mask[..., height // 2, width // 3] = False
    prediction = METHODS.build("tv").inpaint(torch.where(mask, 0.0, image), mask)
    assert prediction.shape == image.shape
    torch.testing.assert_close(prediction, image, atol=1e-4, rtol=0)


def test_the_iteration_cap_is_honoured() -> None:
    ramp = torch.linspace(0, 1, WIDTH).expand(HEIGHT, WIDTH)
    mask = box(2, 22, 2, 30)
    rough = fill(ramp, mask, "tv:iterations=1")
    exact = fill(ramp, mask)
    assert (rough - exact).abs().max() > (exact - ramp).abs().max()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("tv:iterations=0", "iterations"),
        ("tv:tol=0", "tol"),
        ("tv:tau=-1", "tau"),
        ("tv:tau=1,sigma=1", "tau \\* sigma"),
    ],
)
def test_bad_parameters_are_clear_errors(spec: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        METHODS.build(spec)
