"""Contract and quality tests for every registered inpainting method.

The contract tests are parametrized over ``METHODS.names()``, so a method registered later is
tested without editing this file; a method that cannot be built here fails, it is not skipped.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch
from skimage import data

from benchmark.checks import check_prediction
from benchmark.errors import UsageError
from benchmark.masking import build_mask
from benchmark.method import METHODS, Method, composite
from benchmark.run.pipeline import measure

#: Methods built from a user's file (onnx:, torchscript:, predictions:) have their own tests.
NAMES = [n for n in METHODS.names() if not getattr(METHODS.get(n), "requires_path", False)]
#: Methods that must beat the ``mean`` floor by 3 dB on real photographs (they do by 6-13 dB).
BEAT_MEAN = ("telea", "ns", "diffusion", "biharmonic", "nearest", "unet-fill")


def photo_patches(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``count`` float (3, height, width) patches cut at random from two scikit-image photos."""
    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.chelsea()]
    patches = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - height + 1)
        left = rng.integers(0, photo.shape[1] - width + 1)
        patches.append(photo[top : top + height, left : left + width])
    return torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float().div(255)


def inputs(mask_spec: str, count: int, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """``(images, masked, mask)`` in the data contract, hole pixels of ``masked`` set to 0."""
    images = photo_patches(count, height, width)
    mask = build_mask(mask_spec).batch(range(count), height, width, seed=0)
    return images, torch.where(mask, 0.0, images), mask


#: Methods too slow for the quick suite even at 32x32 (``fsr``: about 1 image/s): their
#: contract cases are marked ``slow``, which ``-m "not slow"`` skips and CI still runs.
SLOW_AT_32 = {"fsr"}
NAME_PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_AT_32 else n for n in NAMES]


@pytest.fixture(scope="module", params=NAME_PARAMS)
def method(request: pytest.FixtureRequest) -> Method:
    return METHODS.build(request.param)


def test_builtin_methods_registered() -> None:
    assert {*BEAT_MEAN, "mean"} <= set(NAMES)


# -- contract ---------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 6])
@pytest.mark.parametrize(("height", "width"), [(32, 32), (40, 48)])
@pytest.mark.parametrize("mask_spec", ["lines", "square"])
def test_output_follows_the_contract(
    method: Method, mask_spec: str, height: int, width: int, count: int
) -> None:
    images, masked, mask = inputs(mask_spec, count, height, width)
    given_masked, given_mask = masked.clone(), mask.clone()
    prediction = method.inpaint(given_masked, given_mask)
    assert torch.equal(given_masked, masked) and torch.equal(given_mask, mask), "inputs modified"
    assert isinstance(prediction, torch.Tensor) and prediction.is_floating_point()
    assert prediction.shape == (count, 3, height, width)
    assert not prediction.isnan().any()
    prediction = check_prediction(prediction, masked)  # range [0, 1] within rounding
    assert torch.equal(check_prediction(method.inpaint(masked, mask), masked), prediction), (
        "not deterministic"
    )
    result = composite(images, prediction, mask)
    known = ~mask.expand_as(images)
    assert torch.equal(result[known], images[known]), "composite changed known pixels"


def extreme_mask(kind: str, count: int, height: int, width: int) -> torch.Tensor:
    """A near-empty or near-full ``bool (count, 1, height, width)`` mask, different per image."""
    mask = torch.zeros(count, 1, height, width, dtype=torch.bool)
    for k in range(count):
        y, x = (k * 5) % height, (k * 7 + 3) % width
        if kind == "one hole pixel":
            mask[k, 0, y, x] = True
        elif kind == "one known pixel":
            mask[k, 0] = True
            mask[k, 0, y, x] = False
        else:  # a hole covering all but the last column
            mask[k, 0, :, :-1] = True
    return mask


@pytest.mark.parametrize("kind", ["one hole pixel", "one known pixel", "all but one column"])
@pytest.mark.parametrize(("height", "width"), [(13, 19), (1, 9)])
def test_extreme_masks_and_odd_sizes_follow_the_contract(
    method: Method, kind: str, height: int, width: int
) -> None:
    images = photo_patches(2, height, width)
    mask = extreme_mask(kind, 2, height, width)
    masked = torch.where(mask, 0.0, images)
    prediction = method.inpaint(masked.clone(), mask.clone())
    assert prediction.shape == (2, 3, height, width)
    assert not prediction.isnan().any()
    prediction = check_prediction(prediction, masked)
    assert torch.equal(check_prediction(method.inpaint(masked, mask), masked), prediction), (
        "not deterministic"
    )
    result = composite(images, prediction, mask)
    known = ~mask.expand_as(images)
    assert torch.equal(result[known], images[known]), "composite changed known pixels"


@pytest.mark.parametrize("mask_spec", ["lines", "square"])
def test_hole_pixels_are_not_read(method: Method, mask_spec: str) -> None:
    images, masked, mask = inputs(mask_spec, 6, 32, 32)
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0))
    expected = check_prediction(method.inpaint(masked, mask), masked)
    leaked = check_prediction(method.inpaint(torch.where(mask, noise, images), mask), masked)
    torch.testing.assert_close(leaked, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mask_spec", ["lines", "square"])
def test_an_image_gets_the_same_result_alone_and_in_a_batch(method: Method, mask_spec: str) -> None:
    # --batch-size, --limit and resuming must not change an image's numbers
    _, masked, mask = inputs(mask_spec, 8, 32, 32)
    together = check_prediction(method.inpaint(masked, mask), masked)
    for i in (0, 5):
        alone = check_prediction(
            method.inpaint(masked[i : i + 1], mask[i : i + 1]), masked[i : i + 1]
        )
        torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_device_methods_run_on_cuda(method: Method) -> None:
    if method.device != "auto":
        pytest.skip(f"{type(method).__name__} runs on the CPU")
    _, masked, mask = inputs("square", 6, 40, 48)
    expected = check_prediction(method.inpaint(masked, mask), masked)
    device = torch.device("cuda")
    prediction = method.to(device).inpaint(masked.to(device), mask.to(device))
    torch.testing.assert_close(check_prediction(prediction, masked), expected, atol=2e-3, rtol=0)


# -- quality ----------------------------------------------------------------------------------


def harness_psnr(images: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean PSNR as a run measures it (the pipeline's composite and metrics)."""
    return float(np.mean(measure(images, prediction, mask)[0]["psnr"]))


@pytest.fixture(scope="module", params=["lines", "square"])
def photos(request: pytest.FixtureRequest) -> tuple[torch.Tensor, ...]:
    """64 real 32x32 patches with their masks, and the mean PSNR of the ``mean`` floor."""
    images, masked, mask = inputs(request.param, 64, 32, 32)
    floor = METHODS.build("mean").inpaint(masked, mask)
    return images, masked, mask, harness_psnr(images, floor, mask)


@pytest.mark.parametrize("name", BEAT_MEAN)
def test_method_beats_the_mean_floor(name: str, photos: tuple[torch.Tensor, ...]) -> None:
    images, masked, mask, floor = photos
    prediction = check_prediction(METHODS.build(name).inpaint(masked, mask), masked)
    score = harness_psnr(images, prediction, mask)
    assert score > floor + 3.0, f"{name}: {score:.2f} dB vs mean floor {floor:.2f} dB"


def neighbour_average(values: torch.Tensor) -> torch.Tensor:
    """Average of each pixel's 4 neighbours inside the image (replicate / Neumann borders)."""
    padded = torch.nn.functional.pad(values, (1, 1, 1, 1))
    inside = torch.nn.functional.pad(torch.ones_like(values[:, :1]), (1, 1, 1, 1))
    shifts = [(slice(None, -2), slice(1, -1)), (slice(2, None), slice(1, -1))]
    shifts += [(slice(1, -1), slice(None, -2)), (slice(1, -1), slice(2, None))]
    total = sum(padded[..., rows, cols] for rows, cols in shifts)
    count = sum(inside[..., rows, cols] for rows, cols in shifts)
    return total / count


def harmonic_reference(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Direct sparse solve of the discrete Laplace equation in ``hole`` (float64 (3, H, W))."""
    height, width = hole.shape
    holes = np.flatnonzero(hole)
    number = np.full(hole.size, -1)
    number[holes] = np.arange(len(holes))
    rows, cols = np.divmod(holes, width)
    flat = image.reshape(3, -1)
    degree = np.zeros(len(holes))
    rhs = np.zeros((len(holes), 3))
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        y, x = rows + dy, cols + dx
        inside = np.flatnonzero((y >= 0) & (y < height) & (x >= 0) & (x < width))
        degree[inside] += 1
        neighbour = y[inside] * width + x[inside]
        unknown = number[neighbour] >= 0
        pairs.append((inside[unknown], number[neighbour[unknown]]))
        np.add.at(rhs, inside[~unknown], flat[:, neighbour[~unknown]].T)
    i = np.concatenate([p[0] for p in pairs])
    j = np.concatenate([p[1] for p in pairs])
    matrix = scipy.sparse.diags(degree) - scipy.sparse.coo_matrix(
        (np.ones(len(i)), (i, j)), shape=(len(holes),) * 2
    )
    solution = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs)
    out = image.copy().reshape(3, -1)
    out[:, holes] = solution.T
    return out.reshape(image.shape)


@pytest.mark.parametrize("mask_spec", ["lines", "square", "square:min_size=0.5,max_size=0.6"])
def test_diffusion_solves_the_laplace_equation(mask_spec: str) -> None:
    _, masked, mask = inputs(mask_spec, 32, 40, 48)
    prediction = METHODS.build("diffusion").inpaint(masked, mask)
    filled = torch.where(mask, prediction, masked)
    residual = (filled - neighbour_average(filled)).abs()[mask.expand_as(filled)]
    assert residual.max() < 2e-4
    for k in range(4):
        reference = harmonic_reference(masked[k].double().numpy(), mask[k, 0].numpy())
        np.testing.assert_allclose(filled[k].numpy(), reference, atol=1e-3, rtol=0)


def test_mean_fills_the_known_pixel_mean() -> None:
    _, masked, mask = inputs("square", 8, 40, 48)
    prediction = METHODS.build("mean").inpaint(masked, mask)
    known = ~mask.expand_as(masked)
    for k in range(len(masked)):
        expected = masked[k].double()[known[k]].view(3, -1).mean(1)
        hole = prediction[k][:, mask[k, 0]].double()
        torch.testing.assert_close(hole, expected[:, None].expand_as(hole), atol=1e-6, rtol=0)


def test_nearest_copies_the_nearest_known_pixel() -> None:
    _, masked, mask = inputs("lines", 4, 32, 40)
    masked = masked + torch.rand(masked.shape) * 1e-3 * ~mask  # values no 8-bit rounding keeps
    prediction = METHODS.build("nearest").inpaint(masked, mask)
    grid = np.stack(np.mgrid[:32, :40], -1)
    for k in range(len(masked)):
        hole = mask[k, 0].numpy()
        holes, knowns = grid[hole], grid[~hole]
        distance = ((holes[:, None] - knowns[None]) ** 2).sum(-1)
        for p, (y, x) in enumerate(holes):
            nearest = knowns[distance[p] == distance[p].min()]
            value = prediction[k, :, y, x]
            candidates = masked[k, :, nearest[:, 0], nearest[:, 1]]
            assert (candidates == value[:, None]).all(0).any(), f"pixel {(y, x)} of image {k}"


# -- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("telea:radius=0", "radius"),
        ("ns:radius=-2", "radius"),
        ("telea:radius=wide", "radius"),
        ("diffusion:iterations=0", "iterations"),
        ("diffusion:iterations=2.5", "iterations"),
        ("diffusion:tol=0", "tol"),
    ],
)
def test_bad_parameters_are_clear_errors(spec: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        METHODS.build(spec)


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError, match="radious") as info:
        METHODS.build("telea:radious=5")
    assert "radius=3" in str(info.value)


def test_parameters_reach_the_method() -> None:
    assert METHODS.build("ns:radius=5").radius == 5
    diffusion = METHODS.build("diffusion:iterations=10,tol=0.01")
    assert (diffusion.iterations, diffusion.tol) == (10, 0.01)


def test_per_image_methods_convert_large_batches_in_chunks_with_the_same_result(monkeypatch):
    """The 8-bit conversion runs a few images at a time for large images: same inputs reach
    ``inpaint_image`` as with the whole batch converted at once, in order."""
    import benchmark.method as method_module
    from benchmark.method import PerImageMethod

    class Recording(PerImageMethod):
        def __init__(self) -> None:
            self.seen: list[np.ndarray] = []

        def inpaint_image(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
            self.seen.append(np.concatenate([image.ravel(), hole.ravel()]))
            return (image // 2 + (hole[..., None] // 255) * 7).astype(np.uint8)

    images = torch.randint(0, 256, (7, 3, 20, 30)).float() / 255
    mask = build_mask("lines").batch(list(range(7)), 20, 30, 0)
    masked = images.masked_fill(mask, 0.0)
    whole, chunked = Recording(), Recording()
    expected = whole.inpaint(masked, mask)
    monkeypatch.setattr(method_module, "CONVERSION_CHUNK_VALUES", 3 * 20 * 30 * 3)  # 3 images
    assert torch.equal(chunked.inpaint(masked, mask), expected)
    assert len(chunked.seen) == 7
    assert all(np.array_equal(a, b) for a, b in zip(whole.seen, chunked.seen))
    assert expected.is_contiguous()
