"""Metrics against scikit-image and the seed's formula; hole metrics; per-image independence."""

from __future__ import annotations

import doctest
import functools

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import benchmark.metrics as metrics_module
from benchmark.metrics import (
    METRICS,
    MSE_FLOOR,
    all_metrics,
    compute_all,
    hole_l1,
    hole_psnr,
    mask_ratio,
    psnr,
    ssim,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SSIM_TOLERANCE = 1e-4
PSNR_TOLERANCE = 1e-4


def sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's Gaussian SSIM of two (3, H, W) float64 images in [0, 1]."""
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
        channel_axis=0,
    )


def to_chw(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float64 (3, H, W) in [0, 1] (exact 8-bit levels)."""
    return image.transpose(2, 0, 1).astype(np.float64) / 255


def pairs_random(rng: np.random.Generator, n: int, h: int, w: int, noise: float):
    target = rng.integers(0, 256, (n, 3, h, w)) / 255
    result = np.clip(target + rng.normal(0, noise, target.shape), 0, 1)
    result = np.round(result * 255) / 255
    return result, target


@functools.lru_cache(maxsize=1)
def real_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Crops of real photographs and degraded versions (blur, noise, a filled hole)."""
    rng = np.random.default_rng(7)
    astronaut, chelsea = data.astronaut(), data.chelsea()
    crops = [astronaut[100:164, 180:244], astronaut[300:332, 50:82], chelsea[50:150, 100:220]]
    out = []
    for crop in crops:
        target = to_chw(crop)
        noisy = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
        holed = target.copy()
        h, w = target.shape[1:]
        holed[:, h // 4 : h // 2, w // 3 : w // 2] = target.mean(axis=(1, 2), keepdims=True)
        blurred = (target + np.roll(target, 1, 1) + np.roll(target, 1, 2)) / 3
        out += [(noisy, target), (holed, target), (blurred, target)]
    return out


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float32))


# -- PSNR -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", [0.003, 0.02, 0.2])
def test_psnr_matches_skimage_on_random_images(noise):
    result, target = pairs_random(np.random.default_rng(0), 6, 32, 32, noise)
    ours = psnr(t(result), t(target))
    assert ours.shape == (6,)
    for i in range(6):
        ref = peak_signal_noise_ratio(target[i], result[i], data_range=1)
        assert ours[i].item() == pytest.approx(ref, abs=PSNR_TOLERANCE)


def test_psnr_matches_the_seed_255_scale_formula_on_8bit_data():
    rng = np.random.default_rng(1)
    target8 = rng.integers(0, 256, (4, 3, 32, 32)).astype(np.uint8)
    result8 = np.clip(target8.astype(int) + rng.integers(-20, 21, target8.shape), 0, 255)
    result8 = result8.astype(np.uint8)
    ours = psnr(t(result8 / 255), t(target8 / 255))
    for i in range(4):
        mse = np.mean((result8[i].astype(np.float64) - target8[i].astype(np.float64)) ** 2)
        seed = 20 * np.log10(255.0 / np.sqrt(mse))
        assert ours[i].item() == pytest.approx(seed, abs=PSNR_TOLERANCE)


def test_psnr_on_real_images_matches_skimage():
    for result, target in real_pairs():
        ours = psnr(t(result[None]), t(target[None])).item()
        assert ours == pytest.approx(
            peak_signal_noise_ratio(target, result, data_range=1), abs=PSNR_TOLERANCE
        )


def test_psnr_data_range_scales():
    result, target = pairs_random(np.random.default_rng(2), 2, 16, 16, 0.05)
    at_1 = psnr(t(result), t(target))
    at_255 = psnr(t(result * 255), t(target * 255), data_range=255)
    torch.testing.assert_close(at_1, at_255, atol=1e-3, rtol=0)


def test_identical_images_give_100db_cap_and_ssim_one():
    image = t(to_chw(data.astronaut()[:48, :48])[None])
    assert psnr(image, image).item() == pytest.approx(10 * np.log10(1 / MSE_FLOOR))
    assert psnr(image, image).item() == pytest.approx(100.0)
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-6)
    flat = torch.full((1, 3, 16, 16), 0.5)
    assert ssim(flat, flat).item() == pytest.approx(1.0, abs=1e-6)


def test_tiny_error_is_capped_not_infinite():
    a = torch.zeros(1, 3, 16, 16)
    b = a.clone()
    b[0, 0, 0, 0] = 1e-7
    assert torch.isfinite(psnr(a, b)).all()
    assert psnr(a, b).item() <= 100.0 + 1e-4


# -- SSIM -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", [0.01, 0.1, 0.5])
def test_ssim_matches_skimage_on_random_images(noise):
    result, target = pairs_random(np.random.default_rng(3), 4, 32, 32, noise)
    ours = ssim(t(result), t(target))
    assert ours.shape == (4,)
    for i in range(4):
        assert ours[i].item() == pytest.approx(sk_ssim(result[i], target[i]), abs=SSIM_TOLERANCE)


def test_ssim_matches_skimage_on_real_images():
    for result, target in real_pairs():
        ours = ssim(t(result[None]), t(target[None])).item()
        assert ours == pytest.approx(sk_ssim(result, target), abs=SSIM_TOLERANCE)


@pytest.mark.parametrize("shape", [(11, 11), (16, 24), (24, 16), (12, 40)])
def test_ssim_matches_skimage_on_small_and_non_square_images(shape):
    result, target = pairs_random(np.random.default_rng(4), 3, *shape, 0.1)
    ours = ssim(t(result), t(target))
    for i in range(3):
        assert ours[i].item() == pytest.approx(sk_ssim(result[i], target[i]), abs=SSIM_TOLERANCE)


def test_ssim_penalizes_lost_structure():
    """A structured image against its shuffled pixels scores far below 1 (SSIM is not MSE)."""
    target = to_chw(data.astronaut()[:32, :32])
    rng = np.random.default_rng(0)
    shuffled = target.reshape(3, -1)[:, rng.permutation(32 * 32)].reshape(target.shape)
    ours = ssim(t(shuffled[None]), t(target[None])).item()
    assert ours < 0.5
    assert ours == pytest.approx(sk_ssim(shuffled, target), abs=SSIM_TOLERANCE)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 3, 10, 32), torch.zeros(1, 3, 10, 32))


# -- hole metrics and mask ratio ------------------------------------------------------------------
def _hole_case(seed: int = 5):
    rng = np.random.default_rng(seed)
    target = t(rng.integers(0, 256, (3, 3, 20, 20)) / 255)
    result = t(rng.integers(0, 256, (3, 3, 20, 20)) / 255)
    mask = torch.from_numpy(rng.random((3, 1, 20, 20)) < 0.3)
    return result, target, mask


def test_hole_metrics_only_depend_on_hole_pixels():
    result, target, mask = _hole_case()
    changed = torch.where(mask, result, torch.rand_like(result))  # known pixels replaced
    torch.testing.assert_close(hole_psnr(changed, target, mask), hole_psnr(result, target, mask))
    torch.testing.assert_close(hole_l1(changed, target, mask), hole_l1(result, target, mask))
    # and they do depend on the hole pixels
    inside = torch.where(mask, torch.rand_like(result), result)
    assert not torch.allclose(hole_l1(inside, target, mask), hole_l1(result, target, mask))


def test_hole_metrics_match_a_direct_numpy_computation():
    result, target, mask = _hole_case(6)
    for i in range(3):
        m = mask[i, 0].numpy()
        diff = (result[i].numpy() - target[i].numpy())[:, m].astype(np.float64)
        l1 = np.abs(diff).mean()
        mse = (diff**2).mean()
        assert hole_l1(result, target, mask)[i].item() == pytest.approx(l1, abs=1e-6)
        assert hole_psnr(result, target, mask)[i].item() == pytest.approx(
            10 * np.log10(1 / mse), abs=1e-4
        )


def test_hole_psnr_of_a_perfect_fill_is_capped():
    result, target, mask = _hole_case()
    perfect = torch.where(mask, target, result)
    assert hole_psnr(perfect, target, mask).tolist() == pytest.approx([100.0] * 3)
    assert hole_l1(perfect, target, mask).tolist() == [0.0, 0.0, 0.0]


def test_mask_ratio_is_the_fraction_of_hole_pixels():
    mask = torch.zeros(2, 1, 10, 20, dtype=torch.bool)
    mask[0, :, :5, :] = True  # half
    mask[1, :, 0, 0] = True  # one pixel
    ratio = mask_ratio(torch.zeros(2, 3, 10, 20), torch.zeros(2, 3, 10, 20), mask)
    assert ratio.tolist() == pytest.approx([0.5, 1 / 200])


# -- per-image, registry, doctests ----------------------------------------------------------------
def test_metrics_are_per_image_batch_equals_one_by_one():
    result, target, mask = _hole_case(8)
    batch = compute_all(result, target, mask)
    assert set(batch) == {"psnr", "ssim", "hole_psnr", "hole_l1", "mask_ratio"}
    for i in range(3):
        single = compute_all(result[i : i + 1], target[i : i + 1], mask[i : i + 1])
        for name, values in batch.items():
            assert values.shape == (3,)
            assert values[i].item() == pytest.approx(single[name].item(), abs=1e-5), name


@pytest.mark.parametrize("threads", [1, 2])
def test_values_are_bit_identical_whatever_the_batch_and_thread_count(threads):
    """A resumed run measures an image in another batch than the first run did: its record must
    not change. Torch's multi-threaded reductions gave last-bit differences at 256x256."""
    rng = np.random.default_rng(11)
    target, result = (t(rng.integers(0, 256, (7, 3, 256, 256)) / 255) for _ in range(2))
    mask = t(rng.random((7, 1, 256, 256)) < 0.2).bool()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        batch = compute_all(result, target, mask)
        for i in range(7):
            one = compute_all(result[i : i + 1], target[i : i + 1], mask[i : i + 1])
            for name, values in batch.items():
                assert values[i].item() == one[name].item(), (name, i)
    finally:
        torch.set_num_threads(before)


def test_compute_all_shares_the_error_sums_with_the_same_values_as_each_function():
    result, target, mask = _hole_case(8)
    together = compute_all(result, target, mask)
    assert torch.equal(together["psnr"], psnr(result, target))
    assert torch.equal(together["hole_psnr"], hole_psnr(result, target, mask))
    assert torch.equal(together["hole_l1"], hole_l1(result, target, mask))
    assert all(v.dtype == torch.float32 for v in together.values())


def test_error_sums_against_a_float64_reference():
    rng = np.random.default_rng(5)
    target, result = rng.random((2, 4, 3, 20, 30)).astype(np.float32)
    mask = rng.random((4, 1, 20, 30)) < 0.3
    sums = metrics_module.errors(t(result), t(target), torch.from_numpy(mask))
    error = result.astype(np.float64) - target
    np.testing.assert_allclose(sums.squared, (error**2).sum((1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(sums.hole_squared, (error**2 * mask).sum((1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(sums.hole_absolute, (abs(error) * mask).sum((1, 2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(sums.hole_values, mask.sum((1, 2, 3)) * 3)
    assert sums.values == 3 * 20 * 30


@pytest.mark.parametrize("with_mask", [True, False])
def test_error_sums_on_the_gpu_path_equal_the_cpu_path(with_mask):
    """The torch implementation (used on CUDA) checked on CPU tensors against the NumPy one."""
    rng = np.random.default_rng(6)
    target, result = (t(a) for a in rng.random((2, 5, 3, 17, 23)))
    mask = torch.from_numpy(rng.random((5, 1, 17, 23)) < 0.4) if with_mask else None
    cpu, gpu_path = (
        metrics_module.errors(result, target, mask),
        metrics_module._errors_torch(result, target, mask),
    )
    assert gpu_path.values == cpu.values
    for field in ("squared", "hole_squared", "hole_absolute", "hole_values"):
        a, b = getattr(cpu, field), getattr(gpu_path, field)
        assert (a is None) == (b is None) == (field != "squared" and not with_mask)
        if a is not None:
            assert a.dtype == b.dtype == torch.float64
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_changing_one_image_changes_only_its_metrics():
    result, target, mask = _hole_case(9)
    before = compute_all(result, target, mask)
    altered = result.clone()
    altered[1] = target[1]
    after = compute_all(altered, target, mask)
    for name in ("psnr", "ssim", "hole_psnr", "hole_l1"):
        assert after[name][0] == before[name][0] and after[name][2] == before[name][2], name
        assert after[name][1] != before[name][1], name


def test_metric_registry_metadata():
    by_name = {m.name: m for m in all_metrics()}
    assert METRICS.names() == sorted(by_name)
    assert by_name["psnr"].higher_is_better is True
    assert by_name["ssim"].higher_is_better is True
    assert by_name["hole_psnr"].higher_is_better is True
    assert by_name["hole_l1"].higher_is_better is False
    assert by_name["mask_ratio"].higher_is_better is None


def test_doctests_of_metrics_module_pass():
    """Also run explicitly, so ``pytest tests`` alone checks the documented outputs."""
    outcome = doctest.testmod(metrics_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert outcome.attempted >= 5
    assert outcome.failed == 0


def test_default_pytest_run_collects_the_doctests(request):
    """The doctests only guard the suite if a plain ``pytest`` collects benchmark/ with them."""
    assert "--doctest-modules" in request.config.getini("addopts")
    assert "benchmark" in request.config.getini("testpaths")


# -- the CPU SSIM path (OpenCV) against kornia's -----------------------------------------------
def kornia_ssim(result: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    import kornia

    return kornia.metrics.ssim(result, target, 11, max_val=1.0, padding="valid").flatten(1).mean(1)


@pytest.mark.parametrize("shape", [(4, 11, 11), (3, 32, 32), (2, 40, 17), (1, 96, 128)])
def test_cpu_ssim_equals_kornias_definition(shape):
    n, h, w = shape
    result, target = pairs_random(np.random.default_rng(h * w), n, h, w, 0.08)
    ours = ssim(t(result), t(target))
    assert ours.dtype == torch.float32 and ours.shape == (n,)
    np.testing.assert_allclose(ours.numpy(), kornia_ssim(t(result), t(target)).numpy(), atol=1e-6)


def test_cpu_ssim_of_an_image_does_not_depend_on_its_batch_neighbours():
    """Planes are filtered stacked in one tall image: neighbours must never leak in."""
    result, target = pairs_random(np.random.default_rng(3), 3, 24, 24, 0.1)
    batch = ssim(t(result), t(target))
    flat = np.zeros_like(result)
    for i in range(3):
        alone = ssim(t(result[i : i + 1]), t(target[i : i + 1]))
        assert batch[i].item() == alone.item()
        mixed = ssim(
            t(np.stack([flat[0], result[i], flat[0] + 1])),
            t(np.stack([flat[0], target[i], flat[0]])),
        )
        assert mixed[1].item() == alone.item()


def _holed_pairs(seed: int, n: int, h: int, w: int, boxes) -> tuple[torch.Tensor, torch.Tensor]:
    """Random targets and results that differ from them only inside the given boxes."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, h, w, generator=generator)
    result = target.clone()
    for k, (top, bottom, left, right) in enumerate(boxes):
        region = (k, slice(None), slice(top, bottom), slice(left, right))
        result[region] = torch.rand(result[region].shape, generator=generator)
    return result, target


@pytest.mark.parametrize(
    "h, w, boxes",
    [
        # small holes in the middle, at each edge and corner, one pixel, none at all
        (
            96,
            128,
            [(40, 50, 60, 70), (0, 3, 0, 4), (93, 96, 120, 128), (0, 96, 0, 2), (5, 6, 7, 8)],
        ),
        (64, 64, [(0, 0, 0, 0), (30, 31, 0, 64), (20, 44, 20, 44), (60, 64, 30, 34)]),
        (256, 200, [(100, 140, 90, 130), (0, 20, 180, 200)]),
        (32, 32, [(12, 20, 12, 20)]),  # the crop covers most of the image: computed whole
    ],
)
def test_cpu_ssim_crop_to_the_difference_is_bit_identical_to_the_whole_image(
    monkeypatch, h, w, boxes
):
    """Only the box around the differing pixels is filtered; the rest counts as exactly 1."""
    result, target = _holed_pairs(h + w, len(boxes), h, w, boxes)
    monkeypatch.setattr(metrics_module, "SSIM_CROP_MIN_PIXELS", 0)  # small images cropped too
    cropped = ssim(result, target)
    monkeypatch.setattr(metrics_module, "SSIM_CROP_SHARE", -1.0)  # every image computed whole
    whole = ssim(result, target)
    assert torch.equal(cropped, whole)
    expected = [
        structural_similarity(
            r.numpy(),
            g.numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=0,
        )
        for r, g in zip(result, target)
    ]
    np.testing.assert_allclose(cropped.numpy(), expected, atol=1e-6)
    assert cropped[[k for k, b in enumerate(boxes) if b[0] == b[1]]].eq(1).all()


@pytest.mark.parametrize("n, h, w", [(85, 32, 32), (7, 32, 32), (5, 100, 37), (3, 11, 11)])
def test_cpu_ssim_mosaic_of_narrow_planes_is_bit_identical_to_a_tall_stack(monkeypatch, n, h, w):
    """Planes laid side by side (the last mosaic row padded with blank planes) give exactly the
    values of planes stacked one under the other, and match scikit-image."""
    rng = np.random.default_rng(n + h)
    target = rng.integers(0, 256, (n, 3, h, w)) / 255
    result = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    assert metrics_module.SSIM_MOSAIC_WIDTH // w > 1  # these planes are laid side by side
    mosaic = ssim(t(result), t(target))
    monkeypatch.setattr(metrics_module, "SSIM_MOSAIC_WIDTH", 1)  # one plane per mosaic row
    assert torch.equal(mosaic, ssim(t(result), t(target)))
    for i in (0, n - 1):
        assert mosaic[i].item() == pytest.approx(sk_ssim(result[i], target[i]), abs=SSIM_TOLERANCE)


def test_cpu_ssim_crop_counts_a_nan_in_the_hole():
    result, target = _holed_pairs(0, 1, 96, 96, [(40, 50, 40, 50)])
    result[0, 1, 45, 45] = float("nan")
    assert ssim(result, target).isnan().all()
