"""Contract tests for every registered mask family, and family-specific checks."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from benchmark.errors import UsageError
from benchmark.masking import MASKS, build_mask

NAMES = MASKS.names()
#: (size, images checked): small sizes many images, the field's sizes a few (kept fast).
SIZES = [((32, 32), 100), ((64, 48), 100), ((256, 256), 12), ((512, 512), 4)]
FOLDER_FILES = 60


@pytest.fixture(scope="module")
def mask_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 random-blob mask PNGs (white = hole) of 80x80, for the ``folder`` family."""
    folder = tmp_path_factory.mktemp("contract-masks")
    rng = np.random.default_rng(0)
    for number in range(FOLDER_FILES):
        noise = cv2.GaussianBlur(rng.random((80, 80)), (0, 0), 6)
        level = np.quantile(noise, 1 - rng.uniform(0.2, 0.6))  # 20-60 % holes
        cv2.imwrite(
            str(folder / f"{number:03d}.png"), np.where(noise > level, 255, 0).astype(np.uint8)
        )
    return folder


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def spec(name: str, mask_folder: Path) -> str:
    """The spec that builds family ``name`` with its defaults."""
    return f"folder:{mask_folder}" if name == "folder" else name


def test_builtin_families_registered() -> None:
    assert {"lines", "square", "strokes", "box", "center", "folder"} <= set(NAMES)


@pytest.mark.parametrize(("size", "count"), SIZES, ids=[f"{h}x{w}" for (h, w), _ in SIZES])
def test_masks_are_bool_with_holes_and_known_pixels(
    spec: str, size: tuple[int, int], count: int
) -> None:
    generator = build_mask(spec)
    height, width = size
    for index in range(count):
        mask = generator.mask(index, height, width, seed=0)
        assert mask.dtype == np.bool_ and mask.shape == size
        assert mask.any(), f"mask {index} has no hole"
        assert not mask.all(), f"mask {index} has no known pixel"


def test_batch_is_a_bool_tensor(spec: str) -> None:
    batch = build_mask(spec).batch(range(5), 40, 48, seed=3)
    assert batch.dtype == torch.bool and batch.shape == (5, 1, 40, 48)


def test_mask_of_an_image_does_not_depend_on_how_it_is_generated(spec: str) -> None:
    generator = build_mask(spec)
    alone = np.stack([generator.mask(i, 64, 48, seed=7) for i in range(64)])
    one_by_one = torch.cat([generator.batch([i], 64, 48, seed=7) for i in range(64)])
    assert np.array_equal(one_by_one[:, 0].numpy(), alone)
    order = np.random.default_rng(1).permutation(64)
    shuffled = generator.batch(order, 64, 48, seed=7)[:, 0].numpy()
    assert np.array_equal(shuffled, alone[order])
    prefix = generator.batch(range(10), 64, 48, seed=7)[:, 0].numpy()  # a smaller --limit
    assert np.array_equal(prefix, alone[:10])
    fresh = build_mask(spec).batch(range(64), 64, 48, seed=7)[:, 0].numpy()
    assert np.array_equal(fresh, alone)
    again = generator.batch(range(64), 64, 48, seed=7)[:, 0].numpy()  # from a warm cache
    assert np.array_equal(again, alone)


def test_mask_in_a_ratio_range_does_not_depend_on_how_it_is_generated(spec: str) -> None:
    generator = build_mask(spec)
    ratios = np.array([generator.mask(i, 32, 32).mean() for i in range(40)])
    low, high = np.quantile(ratios, [0.25, 0.75]) if generator.varies else (0, 1)
    alone = np.stack([generator.mask(i, 32, 32, ratio=(low, high)) for i in range(20)])
    assert all(low <= m.mean() <= high for m in alone)
    order = np.random.default_rng(2).permutation(20)
    fresh = build_mask(spec).batch(order, 32, 32, ratio=(low, high))[:, 0].numpy()
    assert np.array_equal(fresh, alone[order])


def test_seeds_and_indices_change_the_mask(spec: str) -> None:
    generator = build_mask(spec)
    first = [generator.mask(i, 32, 32, seed=0) for i in range(50)]
    other_seed = [generator.mask(i, 32, 32, seed=1) for i in range(50)]
    same = sum(np.array_equal(a, b) for a, b in zip(first, other_seed))
    distinct = len({mask.tobytes() for mask in first})
    if not generator.varies:  # a fixed mask (center) must really be fixed
        assert same == 50 and distinct == 1
        return
    assert same <= 5, f"{same} of 50 masks unchanged by a different seed"
    assert distinct >= 45, f"only {distinct} distinct masks among 50 indices"


@pytest.mark.parametrize(("name", "other"), list(combinations(NAMES, 2)))
def test_generator_name_is_part_of_the_stream(name: str, other: str, mask_folder: Path) -> None:
    # two families with the same seed draw from independent streams
    ours = build_mask(f"folder:{mask_folder}" if name == "folder" else name)
    theirs = build_mask(f"folder:{mask_folder}" if other == "folder" else other)
    for index in range(5):
        assert ours.rng(0, index).random() != theirs.rng(0, index).random()


def test_a_registered_class_carries_its_name(name: str, spec: str) -> None:
    # built without build_mask, the generator must still draw from its own stream
    assert MASKS.build(spec).name == name


def test_fingerprint_names_every_resolved_parameter(spec: str) -> None:
    generator = build_mask(spec)
    assert generator.fingerprint() == build_mask(spec).fingerprint()
    parameters = MASKS.parameters(generator.name)
    assert set(vars(generator)) >= {p for p in parameters if p != "preset"}


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


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (128, 128)], ids=str)
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
