"""The field's mask protocol: LaMa stroke presets, boxes, the centred box, mask folders, ratios."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt, find_objects, label

import masks.folder
from benchmark.errors import DataError, UsageError
from benchmark.masking import MaskError, MaskGenerator, build_mask
from masks.strokes import PRESETS


def ratios(spec: str, size: int, count: int = 150, seed: int = 0) -> np.ndarray:
    generator = build_mask(spec)
    return np.array([generator.mask(i, size, size, seed).mean() for i in range(count)])


def is_union_of_boxes(mask: np.ndarray) -> bool:
    """Every connected hole region fills its bounding box (true of boxes, not of strokes)."""
    regions, _ = label(mask)
    return all(np.all(regions[box] > 0) for box in find_objects(regions))


# -- strokes ----------------------------------------------------------------------------------

#: Documented ranges of the mean hole ratio at 256x256 (measured over 2,000 masks: thin 0.285,
#: medium 0.239, thick 0.264; LaMa's generator 0.286, 0.239, 0.267), wide enough for the
#: sampling error of 150 masks (about 0.012).
PRESET_MEANS = {"thin": (0.24, 0.33), "medium": (0.20, 0.28), "thick": (0.22, 0.31)}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_hole_ratios_at_256_are_in_their_documented_range(preset: str) -> None:
    drawn = ratios(f"strokes:preset={preset}", 256)
    low, high = PRESET_MEANS[preset]
    assert low <= drawn.mean() <= high
    assert drawn.max() <= 0.5, "LaMa's max_tamper_area 0.5 not honoured"


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_give_comparable_holes_at_32_256_and_512(preset: str) -> None:
    means = [ratios(f"strokes:preset={preset}", size, 60).mean() for size in (32, 256, 512)]
    assert max(means) / min(means) < 1.3, means


def test_presets_are_lamas_pixel_settings_at_256() -> None:
    # LaMa: length 10 + randint(max_len), width 5 + randint(max_width), boxes min..max px
    thick = build_mask("strokes:preset=thick")
    assert round(thick.min_length * 256) == 10 and round(thick.max_length * 256) == 209
    assert round(thick.min_width * 256) == 5 and round(thick.max_width * 256) == 104
    assert (round(thick.min_box * 256), round(thick.max_box * 256)) == (30, 150)
    assert round(thick.box_margin * 256) == 10 and (thick.min_boxes, thick.max_boxes) == (1, 3)
    assert (thick.min_strokes, thick.max_strokes) == (1, 6)  # LaMa draws up to max_times + 1
    thin = build_mask("strokes:preset=thin")
    assert (thin.min_strokes, thin.max_strokes, thin.box_probability) == (4, 51, 0)
    assert round(thin.max_width * 256) == 14 and round(thin.max_length * 256) == 49
    medium = build_mask("strokes")
    assert medium.box_probability == pytest.approx(0.3 / 1.3)
    assert (round(medium.max_width * 256), round(medium.max_length * 256)) == (54, 109)


def test_a_preset_and_its_values_spelt_out_are_the_same_generator() -> None:
    spelt = ",".join(f"{k}={v!r}" for k, v in PRESETS["thick"].items())
    ours, theirs = build_mask("strokes:preset=thick"), build_mask(f"strokes:{spelt}")
    assert ours.fingerprint() == theirs.fingerprint()
    assert np.array_equal(ours.batch(range(8), 64, 64), theirs.batch(range(8), 64, 64))
    assert ours.fingerprint() != build_mask("strokes:preset=thin").fingerprint()


def test_explicit_parameters_override_the_preset() -> None:
    generator = build_mask("strokes:preset=thick,max_width=0.3")
    assert generator.max_width == 0.3
    assert generator.max_length == PRESETS["thick"]["max_length"]
    assert generator.fingerprint() != build_mask("strokes:preset=thick").fingerprint()


def test_a_single_stroke_segment_is_as_wide_as_asked() -> None:
    # a 20 px brush (20/256 of the side at 256) reaches 10-11 px deep from the nearest known pixel
    spec = (
        "strokes:box_probability=0,min_strokes=1,max_strokes=1,max_segments=1,"
        "min_width=0.078125,max_width=0.078125,min_length=0.3,max_length=0.3"
    )
    generator = build_mask(spec)
    depths = [
        distance_transform_edt(np.pad(generator.mask(index, 256, 256), 1)).max()
        for index in range(20)
    ]
    # a segment cut by the image border is shallower; most are not
    assert max(depths) <= 11.5 and np.median(depths) >= 10, depths


def test_thin_has_no_boxes_and_medium_mixes_boxes_in_lamas_share() -> None:
    thin = build_mask("strokes:preset=thin")
    assert not any(is_union_of_boxes(thin.mask(i, 128, 128)) for i in range(100))
    medium = build_mask("strokes:preset=medium")
    boxes = np.mean([is_union_of_boxes(medium.mask(i, 128, 128)) for i in range(400)])
    assert 0.16 <= boxes <= 0.31, boxes  # one kind per mask: 0.3 / 1.3 = 0.23 are boxes


def test_thick_boxes_keep_lamas_margin() -> None:
    generator = build_mask("strokes:preset=thick,box_probability=1")
    for index in range(50):
        mask = generator.mask(index, 256, 256)
        inner = np.zeros_like(mask)
        inner[10:-10, 10:-10] = True
        assert not (mask & ~inner).any(), "a box within the 10 px margin"


def test_max_ratio_redraws_large_masks() -> None:
    drawn = ratios("strokes:preset=thick,max_ratio=0.1", 64, 100)
    assert drawn.max() <= 0.1
    with pytest.raises(UsageError, match="max_ratio"):
        build_mask("strokes:box_probability=0,min_width=0.9,max_width=0.9,max_ratio=0.05").mask(
            0, 32, 32
        )


def test_a_ratio_range_above_max_ratio_fails_at_once() -> None:
    with pytest.raises(UsageError, match="'strokes' cannot reach hole ratio 0.6-0.7.*max_ratio"):
        build_mask("strokes:preset=thin").mask(0, 64, 64, ratio=(0.6, 0.7))
    wider = build_mask("strokes:preset=thick,max_ratio=0.9")
    assert 0.6 <= wider.mask(0, 64, 64, ratio=(0.6, 0.7)).mean() <= 0.7


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError, match="unknown preset 'wide'.*thin, medium, thick"):
        build_mask("strokes:preset=wide")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("strokes:min_strokes=6,max_strokes=2", "min_strokes"),
        ("strokes:max_width=1.5", "max_width"),
        ("strokes:min_width=0.5,max_width=0.1", "min_width"),
        ("strokes:box_probability=2", "box_probability"),
        ("strokes:box_margin=0.5", "box_margin"),
        ("strokes:max_angle=0", "max_angle"),
        ("box:min_boxes=0", "min_boxes"),
        ("box:min_size=0.6,max_size=0.2", "min_size"),
        ("center:side=1", "side"),
        ("center:side=0", "side"),
    ],
)
def test_bad_parameters_are_usage_errors(spec: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        build_mask(spec)


# -- box and center ---------------------------------------------------------------------------


def test_box_draws_one_to_k_rectangles_of_random_aspect() -> None:
    one = build_mask("box:max_boxes=1,min_size=0.2,max_size=0.6")
    aspects = set()
    for index in range(100):
        mask = one.mask(index, 100, 50)
        rows, cols = np.nonzero(mask)
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert mask.sum() == height * width, "not one filled rectangle"
        assert 20 <= height <= 60 and 10 <= width <= 30
        aspects.add(round(height / 100 / (width / 50), 1))
    assert len(aspects) > 10
    several = build_mask("box:min_boxes=3,max_boxes=3,max_size=0.2")
    counts = [label(several.mask(i, 128, 128))[1] for i in range(50)]
    assert max(counts) == 3 and min(counts) >= 1


def test_center_is_the_centred_box_of_its_side_fraction() -> None:
    mask = build_mask("center").mask(5, 128, 128, seed=3)
    expected = np.zeros((128, 128), bool)
    expected[32:96, 32:96] = True  # the 64x64 hole of context encoders
    assert np.array_equal(mask, expected)
    quarter = build_mask("center:side=0.25").mask(0, 256, 512)
    rows, cols = np.nonzero(quarter)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (96, 159, 192, 319)


def test_center_out_of_a_ratio_range_says_it_cannot_reach_it() -> None:
    with pytest.raises(UsageError, match="'center' cannot reach hole ratio 0.1-0.2"):
        build_mask("center").mask(0, 32, 32, ratio=(0.1, 0.2))


@pytest.mark.parametrize("spec", ["strokes:preset=thin", "strokes:preset=thick", "box"])
def test_ratio_range_is_honoured_for_generated_masks(spec: str) -> None:
    generator = build_mask(spec)
    drawn = [generator.mask(i, 64, 64, seed=1, ratio=(0.1, 0.2)).mean() for i in range(30)]
    assert all(0.1 <= r <= 0.2 for r in drawn)
    # attempt 0 is the usual stream: a mask already in range is kept as it is
    for index in range(30):
        usual = generator.mask(index, 64, 64, seed=1)
        if 0.1 <= usual.mean() <= 0.2:
            assert np.array_equal(generator.mask(index, 64, 64, seed=1, ratio=(0.1, 0.2)), usual)


# -- a broken plug-in -------------------------------------------------------------------------


class Raising(MaskGenerator):
    name = "raising-plugin"

    def draw(self, rng, height, width):
        raise RuntimeError("boom")


class WrongShape(MaskGenerator):
    name = "wrong-shape-plugin"

    def draw(self, rng, height, width):
        return np.ones((height + 1, width), bool)


class WrongDtype(MaskGenerator):
    name = "wrong-dtype-plugin"

    def draw(self, rng, height, width):
        return np.zeros((height, width), np.uint8)


@pytest.mark.parametrize("plugin", [Raising, WrongShape, WrongDtype])
def test_a_broken_generator_is_one_error_naming_it(plugin: type[MaskGenerator]) -> None:
    with pytest.raises(MaskError, match=plugin.name) as info:
        plugin().batch([0, 1], 16, 16)
    assert isinstance(info.value, DataError) and "\n" not in str(info.value)


# -- folder masks -----------------------------------------------------------------------------


def write_mask(path: Path, holes: np.ndarray, white: int = 255, dtype=np.uint8) -> Path:
    """Write ``holes`` (bool) as a grey image: ``white`` where True, 0 elsewhere."""
    if not cv2.imwrite(str(path), np.where(holes, white, 0).astype(dtype)):
        raise OSError(f"cannot write {path}")
    return path


def rows_mask(rows: int, size: int = 64) -> np.ndarray:
    """A ``size x size`` mask whose first ``rows`` rows are holes: hole ratio rows / size."""
    mask = np.zeros((size, size), bool)
    mask[:rows] = True
    return mask


#: The binned set: 3 files in each of 5 NVIDIA bins, file name -> exact hole ratio.
BINNED_ROWS = [3, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]


@pytest.fixture
def binned(tmp_path: Path) -> Path:
    folder = tmp_path / "binned"
    folder.mkdir()
    for rows in BINNED_ROWS:
        write_mask(folder / f"mask_{rows:02d}.png", rows_mask(rows))
    return folder


def test_folder_images_take_every_file_once_in_a_seeded_order(binned: Path) -> None:
    generator = build_mask(f"folder:{binned}")
    count = len(BINNED_ROWS)
    taken = [int(generator.mask(i, 64, 64).sum()) // 64 for i in range(2 * count)]
    assert sorted(taken[:count]) == BINNED_ROWS, "not every file (bin) in the first n images"
    assert taken[count:] == taken[:count], "image i must take file perm[i mod n]"
    assert taken[:count] != BINNED_ROWS, "not permuted"
    other = [int(generator.mask(i, 64, 64, seed=1).sum()) // 64 for i in range(count)]
    assert other != taken[:count], "the permutation does not depend on the seed"
    literal = build_mask(f"folder:{binned},order=sorted")
    assert [int(literal.mask(i, 64, 64).sum()) // 64 for i in range(count)] == BINNED_ROWS


def test_folder_ratio_range_takes_the_files_in_range_in_permutation_order(binned: Path) -> None:
    generator = build_mask(f"folder:{binned}")
    permuted = [int(generator.mask(i, 64, 64).sum()) // 64 for i in range(len(BINNED_ROWS))]
    in_range = [r for r in permuted if 0.2 <= r / 64 <= 0.3]
    assert len(in_range) == 3
    taken = [int(generator.mask(i, 64, 64, ratio=(0.2, 0.3)).sum()) // 64 for i in range(6)]
    assert taken == in_range + in_range
    backwards = [
        int(build_mask(f"folder:{binned}").mask(i, 64, 64, ratio=(0.2, 0.3)).sum()) // 64
        for i in reversed(range(6))
    ]
    assert backwards[::-1] == taken, "the file of image i depends on the query order"


def test_folder_ratio_range_out_of_reach_is_a_usage_error(binned: Path) -> None:
    with pytest.raises(UsageError, match="cannot reach hole ratio 0.6-0.9 at 64x64"):
        build_mask(f"folder:{binned}").mask(0, 64, 64, ratio=(0.6, 0.9))


def test_folder_binarises_at_half_scale_for_8_and_16_bits(tmp_path: Path) -> None:
    half = np.zeros((16, 16), bool)
    half[:, :8] = True
    grey = np.where(half, 128, 127).astype(np.uint8)  # 128 is a hole, 127 is not
    cv2.imwrite(str(tmp_path / "a8.png"), grey)
    deep = np.where(half, 32768, 32767).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "b16.png"), deep)
    generator = build_mask(f"folder:{tmp_path},order=sorted")
    assert np.array_equal(generator.mask(0, 16, 16), half)
    assert np.array_equal(generator.mask(1, 16, 16), half)
    inverted = build_mask(f"folder:{tmp_path},order=sorted,invert=true")
    assert np.array_equal(inverted.mask(1, 16, 16), ~half)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_folder_reads_common_formats_and_resizes_with_nearest(tmp_path: Path, suffix) -> None:
    holes = np.zeros((64, 64), bool)
    holes[16:48, 8:40] = True
    write_mask(tmp_path / f"m{suffix}", holes)
    generator = build_mask(f"folder:{tmp_path}")
    assert np.array_equal(generator.mask(0, 64, 64), holes)
    assert np.array_equal(generator.mask(0, 32, 32), holes[::2, ::2])
    assert np.array_equal(generator.mask(0, 128, 128), holes.repeat(2, 0).repeat(2, 1))


def test_folder_decodes_each_file_once_per_size(binned: Path, monkeypatch) -> None:
    calls = []
    decode = cv2.imdecode
    monkeypatch.setattr(masks.folder.cv2, "imdecode", lambda *a: calls.append(1) or decode(*a))
    generator = build_mask(f"folder:{binned}")
    first = generator.batch(range(30), 64, 64)
    for _ in range(3):  # one batch per method of a run
        assert np.array_equal(generator.batch(range(30), 64, 64), first)
    assert len(calls) == len(BINNED_ROWS)
    generator.batch(range(30), 32, 32)
    assert len(calls) == 2 * len(BINNED_ROWS)


def test_folder_cache_is_bounded_and_stays_correct(binned: Path, monkeypatch) -> None:
    reference = build_mask(f"folder:{binned}").batch(range(30), 64, 64)
    monkeypatch.setattr(masks.folder, "CACHE_BYTES", 3 * 64 * 64 // 8)  # three masks
    generator = build_mask(f"folder:{binned}")
    assert np.array_equal(generator.batch(range(30), 64, 64), reference)
    assert generator._cache_bytes <= 3 * 64 * 64 // 8
    revived = pickle.loads(pickle.dumps(generator))
    assert not revived._cache and np.array_equal(revived.batch(range(30), 64, 64), reference)


def test_folder_fingerprint_follows_files_and_parameters(binned: Path) -> None:
    before = build_mask(f"folder:{binned}").fingerprint()
    assert build_mask(f"folder:{binned}").fingerprint() == before
    assert build_mask(f"folder:{binned},invert=true").fingerprint() != before
    target = binned / "mask_03.png"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = build_mask(f"folder:{binned}").fingerprint()
    assert touched != before
    write_mask(binned / "mask_99.png", rows_mask(4))
    assert build_mask(f"folder:{binned}").fingerprint() != touched


def test_folder_errors_name_the_folder_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere': no such directory"):
        build_mask(f"folder:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no mask image files"):
        build_mask(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(UsageError, match="folder:PATH"):
        build_mask("folder")
    with pytest.raises(UsageError, match="order"):
        build_mask(f"folder:{tmp_path},order=random")


@pytest.mark.parametrize(
    ("holes", "size", "words"),
    [
        (np.zeros((64, 64), bool), 64, "no hole pixel at 64x64"),
        (np.ones((64, 64), bool), 64, "no known pixel at 64x64"),
        (np.pad(np.ones((1, 1), bool), ((31, 32), (31, 32))), 8, "no hole pixel at 8x8"),
    ],
    ids=["black", "white", "vanishes-when-resized"],
)
def test_folder_mask_without_hole_or_known_pixel_is_skipped(tmp_path, holes, size, words):
    """A degenerate file is skipped for the next usable one (issue 23); with none usable, the
    folder is one error line."""
    write_mask(tmp_path / "bad.png", holes)
    generator = build_mask(f"folder:{tmp_path}")
    with pytest.raises(DataError, match=f"none of its 1 files has both .* at {size}x{size}"):
        generator.mask(0, size, size)
    write_mask(tmp_path / "good.png", rows_mask(32))  # half holes at any size
    generator = build_mask(f"folder:{tmp_path},order=sorted")
    mask = generator.mask(0, size, size)  # bad.png sorts first: image 0 takes good.png
    assert mask.any() and not mask.all()
    assert generator.skipped == {words.split(" pixel")[0]: 1}


def test_folder_unreadable_file_is_a_data_error_naming_it(tmp_path: Path) -> None:
    write_mask(tmp_path / "a.png", rows_mask(8))
    (tmp_path / "b.png").write_bytes(b"not an image")
    generator = build_mask(f"folder:{tmp_path},order=sorted")
    generator.mask(0, 64, 64)
    with pytest.raises(DataError, match="'b.png': cannot decode"):
        generator.mask(1, 64, 64)


@pytest.mark.slow
def test_cli_reports_mask_folder_problems_in_one_line(run_cli, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((32, 32, 3), 90, np.uint8))
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "broken.png").write_bytes(b"nothing")
    args = ["run", "--methods", "mean", "--dataset", "folder:photos", "--size", "32", "--quiet"]
    code, _, stderr = run_cli(*args, "--masks", "folder:masks,strokes:preset=wide")
    assert (code, stderr.count("\n")) == (2, 1) and "unknown preset 'wide'" in stderr
    code, _, stderr = run_cli(*args, "--masks", "folder:masks")
    assert (code, stderr.count("\n")) == (1, 1), stderr
    assert stderr.startswith("error: ") and "broken.png" in stderr
