"""Contract tests for every registered mask family, and family-specific checks."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from benchmark.errors import UsageError
from benchmark.masking import MASKS, build_mask

NAMES = MASKS.names()
SIZES = [(32, 32), (64, 48), (128, 128)]


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_builtin_families_registered() -> None:
    assert {"lines", "square"} <= set(NAMES)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_masks_are_bool_with_holes_and_known_pixels(name: str, size: tuple[int, int]) -> None:
    generator = build_mask(name)
    height, width = size
    for index in range(200):
        mask = generator.mask(index, height, width, seed=0)
        assert mask.dtype == np.bool_ and mask.shape == size
        assert mask.any(), f"mask {index} has no hole"
        assert not mask.all(), f"mask {index} has no known pixel"


def test_batch_is_a_bool_tensor(name: str) -> None:
    batch = build_mask(name).batch(range(5), 40, 48, seed=3)
    assert batch.dtype == torch.bool and batch.shape == (5, 1, 40, 48)


def test_mask_of_an_image_does_not_depend_on_how_it_is_generated(name: str) -> None:
    generator = build_mask(name)
    alone = np.stack([generator.mask(i, 64, 48, seed=7) for i in range(64)])
    one_by_one = torch.cat([generator.batch([i], 64, 48, seed=7) for i in range(64)])
    assert np.array_equal(one_by_one[:, 0].numpy(), alone)
    order = np.random.default_rng(1).permutation(64)
    shuffled = generator.batch(order, 64, 48, seed=7)[:, 0].numpy()
    assert np.array_equal(shuffled, alone[order])
    prefix = generator.batch(range(10), 64, 48, seed=7)[:, 0].numpy()  # a smaller --limit
    assert np.array_equal(prefix, alone[:10])
    fresh = build_mask(name).batch(range(64), 64, 48, seed=7)[:, 0].numpy()
    assert np.array_equal(fresh, alone)


def test_seeds_and_indices_change_the_mask(name: str) -> None:
    generator = build_mask(name)
    first = [generator.mask(i, 32, 32, seed=0) for i in range(50)]
    other_seed = [generator.mask(i, 32, 32, seed=1) for i in range(50)]
    same = sum(np.array_equal(a, b) for a, b in zip(first, other_seed))
    assert same <= 5, f"{same} of 50 masks unchanged by a different seed"
    distinct = len({mask.tobytes() for mask in first})
    assert distinct >= 45, f"only {distinct} distinct masks among 50 indices"


@pytest.mark.parametrize(("name", "other"), list(combinations(NAMES, 2)))
def test_generator_name_is_part_of_the_stream(name: str, other: str) -> None:
    # two families with the same seed draw from independent streams
    ours, theirs = build_mask(name), build_mask(other)
    for index in range(5):
        assert ours.rng(0, index).random() != theirs.rng(0, index).random()


def test_a_registered_class_carries_its_name(name: str) -> None:
    # built without build_mask, the generator must still draw from its own stream
    assert MASKS.build(name).name == name


# -- lines ------------------------------------------------------------------------------------


def hole_ratios(spec: str, size: int, count: int = 200) -> np.ndarray:
    generator = build_mask(spec)
    return np.array([generator.mask(i, size, size).mean() for i in range(count)])


def depth_of(mask: np.ndarray) -> float:
    """Largest Euclidean distance from a hole pixel to a known pixel or the image's outside."""
    return float(distance_transform_edt(np.pad(mask, 1)).max())


def test_lines_hole_ratio_is_in_range_and_scales_with_the_image() -> None:
    small, large = hole_ratios("lines", 32), hole_ratios("lines", 128)
    for ratios in (small, large):
        assert ratios.min() > 0 and ratios.max() < 0.7
        assert 0.05 < ratios.mean() < 0.3
    assert 0.5 < large.mean() / small.mean() < 2


def test_lines_count_parameters_change_the_hole_ratio() -> None:
    one = hole_ratios("lines:min_lines=1,max_lines=1", 64).mean()
    default = hole_ratios("lines", 64).mean()
    nine = hole_ratios("lines:min_lines=9,max_lines=9", 64).mean()
    assert one < default < nine


@pytest.mark.parametrize(("size", "pixels"), [(32, 1), (32, 2), (128, 4), (128, 8)])
def test_lines_thickness_is_a_fraction_of_the_image_side(size: int, pixels: int) -> None:
    # one line of a fixed cv2 thickness t (drawn about t + 1 px wide for t > 1): the largest
    # distance from a hole pixel to a known one, outside the image included, is about t / 2 + 1
    fraction = pixels / size
    spec = f"lines:min_lines=1,max_lines=1,min_thickness={fraction},max_thickness={fraction}"
    generator = build_mask(spec)
    for index in range(50):
        depth = depth_of(generator.mask(index, size, size))
        assert pixels / 2 <= depth <= pixels / 2 + 1.5, (index, depth)


def test_lines_thickness_has_a_one_pixel_floor() -> None:
    generator = build_mask("lines:max_lines=1,min_thickness=0.001,max_thickness=0.001")
    for index in range(20):
        assert depth_of(generator.mask(index, 32, 32)) == 1


# -- square -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("spec", ["square", "square:min_size=0.3,max_size=0.4"])
def test_square_is_one_filled_square_inside_the_image(spec: str, size: tuple[int, int]) -> None:
    generator = build_mask(spec)
    shorter = min(size)
    low, high = generator.min_size * shorter - 1, generator.max_size * shorter + 1
    for index in range(100):
        mask = generator.mask(index, *size)
        rows, cols = np.nonzero(mask)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert bottom - top == right - left, "not a square"
        assert mask[top:bottom, left:right].all(), "square not filled"
        assert mask.sum() == (bottom - top) ** 2, "hole pixels outside the square"
        assert low <= bottom - top <= high


def test_square_sizes_cover_the_range() -> None:
    generator = build_mask("square")
    sides = {int(np.sqrt(generator.mask(i, 32, 32).sum())) for i in range(300)}
    assert sides == set(range(4, 17))


def test_square_positions_reach_every_border() -> None:
    masks = np.array([build_mask("square").mask(i, 32, 48) for i in range(300)])
    assert masks[:, 0].any() and masks[:, -1].any() and masks[:, :, 0].any()
    assert masks[:, :, -1].any()
    assert masks.any(axis=0)[4:-4, 4:-4].all()


# -- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("lines:min_lines=5,max_lines=2", "min_lines"),
        ("lines:min_lines=0", "min_lines"),
        ("lines:max_lines=2.5", "max_lines"),
        ("lines:max_lines=many", "max_lines"),
        ("lines:min_thickness=0", "min_thickness"),
        ("lines:max_thickness=1.5", "max_thickness"),
        ("lines:min_thickness=0.1,max_thickness=0.05", "min_thickness"),
        ("square:min_size=0.6,max_size=0.4", "min_size"),
        ("square:min_size=-0.1", "min_size"),
        ("square:max_size=2", "max_size"),
        ("square:max_size=true", "max_size"),
    ],
)
def test_bad_parameters_are_clear_errors(spec: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        build_mask(spec)


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError, match="max_lines") as info:
        build_mask("lines:max_line=3")
    assert "min_thickness" in str(info.value)
