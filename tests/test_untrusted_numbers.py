"""Issue 23, numbers that must never be scored: non-finite model outputs, saved images that no
longer match their records, silently upscaled small images, degenerate or NaN masks, masks
without their EXIF orientation, and data changed behind an unchanged size and mtime."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torch import nn

from benchmark.checks import invalid_images
from benchmark.commands.report_data import Run
from benchmark.commands.report_samples import saved_samples
from benchmark.datasets import build_dataset
from benchmark.errors import DataError
from benchmark.images import VERIFY_DATA_ENV
from benchmark.masking import MaskError, MaskGenerator, build_mask
from benchmark.method import METHODS
from benchmark.records import RecordStore
from benchmark.run.artifacts import save_images
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark
from methods.floors import MeanFill

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels)
    return path


def photos(folder: Path, count: int, seed: int, side: int = 32, ext: str = ".png") -> Path:
    rng = np.random.default_rng(seed)
    for k in range(count):
        write_png(folder / f"{k:03d}{ext}", rng.integers(0, 256, (side, side, 3), np.uint8))
    return folder


def run(tmp_path: Path, **overrides) -> Path:
    settings = dict(
        methods=["mean"], masks=["square"], workers=1, progress=False, out=str(tmp_path / "run")
    )
    settings.update(overrides)
    return run_benchmark(RunConfig(**settings)).run_dir


# -- ±inf outputs of exported models fail the image --------------------------------------------


class InfWhereBlank(nn.Module):
    """Fills holes with 0.5, but an all-black input becomes ±inf everywhere (1 / 0)."""

    def __init__(self, sign: float) -> None:
        super().__init__()
        self.sign = sign

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        blank = (image.amax(dim=(1, 2, 3), keepdim=True) == 0).float()
        return image * (1 - mask) + mask * 0.5 + self.sign * blank / (1 - blank)


def write_model(kind: str, module: nn.Module, path: Path) -> Path:
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(module), str(path))
        return path
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        module,
        (torch.rand(1, 3, 16, 16), torch.zeros(1, 1, 16, 16)),
        str(path),
        input_names=["image", "mask"],
        output_names=["output"],
        dynamic_axes={n: axes for n in ("image", "mask", "output")},
        opset_version=17,
        dynamo=False,
    )
    return path


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_infinite_outputs_of_exported_models_fail_the_image(kind, sign, tmp_path) -> None:
    """They were clamped to 1 (or 0) and scored (14.07 / 50.29 dB with 0 failed)."""
    path = write_model(kind, InfWhereBlank(sign), tmp_path / f"m.{kind}")
    method = METHODS.build(f"{kind}:path={path}")
    images = torch.rand(3, 3, 16, 16)
    images[1] = 0  # the blank one
    holes = build_mask("square").batch([0, 1, 2], 16, 16)
    output = method.inpaint(images.masked_fill(holes, 0), holes)
    assert output[1].isnan().all()
    assert torch.isfinite(output[[0, 2]]).all()
    reasons = invalid_images(output)
    assert reasons[0] is None and reasons[2] is None and "NaN or infinite" in reasons[1]


# -- saved images always match the records beside them ----------------------------------------


def test_saved_originals_and_masks_follow_the_data(tmp_path) -> None:
    data = photos(tmp_path / "photos", 3, seed=1)
    out = run(tmp_path, dataset=f"folder:{data}", size=32, limit=3, save_images=True)
    photos(data, 3, seed=2)  # same names, new pixels
    run(tmp_path, dataset=f"folder:{data}", size=32, limit=3, save_images=True)
    for k in range(3):
        saved = cv2.imread(str(out / "images" / "_original" / f"{k:06d}.png"))
        assert np.array_equal(saved, cv2.imread(str(data / f"{k:03d}.png")))


def test_a_failed_image_shows_no_composite_of_an_earlier_run(tmp_path, temp_method) -> None:
    switch = tmp_path / "fail-now"

    class FailsOnSwitch(MeanFill):
        def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            if switch.exists():
                raise RuntimeError("switched off")
            return super().inpaint(masked, mask)

    name = temp_method("test-fails-on-switch", FailsOnSwitch)
    data = photos(tmp_path / "photos", 2, seed=1)
    out = run(tmp_path, methods=[name], dataset=f"folder:{data}", size=32, save_images=True)
    assert (out / "images" / "square" / name / "000000.png").is_file()
    photos(data, 2, seed=3)
    switch.touch()
    run(tmp_path, methods=[name], dataset=f"folder:{data}", size=32, save_images=True)
    records = list(RecordStore(out / "records.jsonl"))
    assert records and all(r["status"].startswith("failed") for r in records)
    cells = saved_samples(Run(out), "square", [name], [0, 1])
    assert cells is not None and cells[0][name] is None and cells[1][name] is None
    # the pipeline removed the earlier run's composites when the whole batch failed
    assert not (out / "images" / "square" / name / "000000.png").exists()


def test_saving_a_failed_batch_removes_its_earlier_composites(tmp_path) -> None:
    images = torch.rand(2, 3, 16, 16)
    holes = build_mask("square").batch([0, 1], 16, 16)
    save_images(tmp_path, images, holes, images, [0, 1], "square", "mean", [None, None])
    composite = tmp_path / "images" / "square" / "mean" / "000001.png"
    assert composite.is_file()
    save_images(tmp_path, images, holes, images, [0, 1], "square", "mean", [None, "failed"])
    assert not composite.exists()
    save_images(tmp_path, images, holes, None, [0, 1], "square", "mean", ["boom", "boom"])
    assert not (tmp_path / "images" / "square" / "mean" / "000000.png").exists()
    changed = images.flip(0)
    save_images(tmp_path, changed, holes, None, [0, 1], "square", "mean", ["boom", "boom"])
    original = cv2.imread(str(tmp_path / "images" / "_original" / "000000.png"))[..., ::-1]
    assert np.array_equal(original, (changed[0].permute(1, 2, 0) * 255).round().byte().numpy())


# -- images smaller than --size ---------------------------------------------------------------


@pytest.fixture
def icon_folder(tmp_path) -> Path:
    folder = photos(tmp_path / "photos", 4, seed=5, side=64)
    write_png(folder / "icon.png", np.full((1, 1, 3), 200, np.uint8))
    return folder


def test_small_images_are_skipped_with_one_counting_line(icon_folder, capsys) -> None:
    """A 1x1 icon scored 100 dB and led a 5-image folder by 11 dB."""
    dataset = build_dataset(f"folder:{icon_folder}", size=32)
    assert len(dataset) == 4 and all(p.name != "icon.png" for p in dataset.files)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "smaller" in line]
    assert len(warnings) == 1 and "1 of 5 images are smaller than 32x32" in warnings[0]
    assert "'icon.png'" in warnings[0]


def test_small_images_can_stop_the_run_or_be_upscaled_on_request(icon_folder) -> None:
    with pytest.raises(DataError, match="1 of 5 images are smaller than 32x32.*small=upscale"):
        build_dataset(f"folder:path={icon_folder},small=error", size=32)
    upscaled = build_dataset(f"folder:path={icon_folder},small=upscale", size=32)
    assert len(upscaled) == 5
    assert bool((upscaled.images([4]) * 255 == 200).all())


def test_a_folder_of_only_small_images_is_one_line(icon_folder) -> None:
    with pytest.raises(DataError, match="5 of 5 images are smaller than 128x128"):
        build_dataset(f"folder:{icon_folder}", size=128)


# -- degenerate masks are skipped, never patched ----------------------------------------------


class SometimesEmpty(MaskGenerator):
    """Half the draws have no hole (or, with ``full``, no known pixel)."""

    def __init__(self, full: bool = False) -> None:
        self.full = full

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        if rng.random() < 0.5:
            return np.full((height, width), self.full)
        mask = np.zeros((height, width), bool)
        mask[4:12, 4:12] = True
        return mask


class AlwaysEmpty(MaskGenerator):
    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        return np.zeros((height, width), bool)


@pytest.mark.parametrize("full", [False, True])
def test_degenerate_draws_are_skipped_and_counted(full, temp_mask, capsys) -> None:
    """An empty draw became a one-pixel hole, a full draw all but one pixel."""
    temp_mask("test-sometimes-empty", SometimesEmpty)
    generator = build_mask(f"test-sometimes-empty:full={'true' if full else 'false'}")
    masks = generator.batch(range(20), 16, 16)
    assert all(m.sum() == 64 for m in masks)  # every image got a real draw
    reason = "no known" if full else "no hole"
    assert generator.skipped[reason] > 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "degenerate" in line]
    assert len(lines) == 1 and f"skipped {generator.skipped[reason]} degenerate masks" in lines[0]
    again = generator.batch(range(20), 16, 16)
    assert torch.equal(again, masks)  # still one mask per (seed, image): deterministic
    assert not [line for line in capsys.readouterr().err.splitlines() if "degenerate" in line]


def test_a_generator_of_only_degenerate_masks_is_one_line(temp_mask) -> None:
    temp_mask("test-always-empty", AlwaysEmpty)
    with pytest.raises(MaskError, match="drew only masks with no hole or no known pixel"):
        build_mask("test-always-empty").mask(0, 16, 16)


def test_degenerate_mask_files_are_skipped_for_the_next_file(tmp_path, capsys) -> None:
    folder = tmp_path / "masks"
    hole = np.zeros((16, 16), np.uint8)
    hole[4:8, 4:8] = 255
    write_png(folder / "a_empty.png", np.zeros((16, 16), np.uint8))
    write_png(folder / "b_good.png", hole)
    write_png(folder / "c_full.png", np.full((16, 16), 255, np.uint8))
    generator = build_mask(f"folder:path={folder},order=sorted")
    masks = generator.batch(range(3), 16, 16)
    for mask in masks:  # every image takes b_good.png, the only usable file
        assert torch.equal(mask[0], torch.from_numpy(hole > 0))
    assert generator.skipped == {"no hole": 1, "no known": 1}  # each file once
    err = capsys.readouterr().err
    assert f"mask folder 'path={folder}'" not in err and "skipped 2 degenerate masks" in err


def test_a_folder_of_only_degenerate_masks_is_one_line(tmp_path) -> None:
    write_png(tmp_path / "m" / "a.png", np.zeros((16, 16), np.uint8))
    with pytest.raises(DataError, match="none of its 1 files has both a hole and a known"):
        build_mask(f"folder:{tmp_path / 'm'}").mask(0, 16, 16)


def test_a_float_mask_holding_nan_is_refused(tmp_path) -> None:
    pixels = np.zeros((16, 16), np.float32)
    pixels[4:8, 4:8] = 1.0
    pixels[0, 0] = np.nan  # NaN counted as "known" before
    (tmp_path / "m").mkdir()
    assert cv2.imwrite(str(tmp_path / "m" / "a.tiff"), pixels)
    with pytest.raises(DataError, match="'a.tiff': holds NaN values"):
        build_mask(f"folder:{tmp_path / 'm'}").mask(0, 16, 16)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_mask_files_follow_their_exif_orientation_like_images(tmp_path, orientation) -> None:
    stored = np.zeros((20, 40), np.uint8)
    stored[:, :10] = 255  # a hole along the left edge, as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", quality=100, exif=exif.tobytes())
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.jpg").write_bytes(buffer.getvalue())
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))))
    height, width = shown.shape
    mask = build_mask(f"folder:{tmp_path / 'm'}").mask(0, height, width)
    assert np.array_equal(mask, shown > 127)
    image = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (height, width)  # the way images are read


# -- --verify-data: content changes behind the same size and mtime ----------------------------


def copy_keeping_size_and_mtime(path: Path, pixels: np.ndarray) -> None:
    """What ``cp -p`` or ``rsync -a`` of another file of the same size leaves behind (a BMP's
    size depends only on its dimensions)."""
    info = path.stat()
    path.write_bytes(cv2.imencode(".bmp", pixels)[1].tobytes())
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns


@pytest.mark.parametrize("kind", ["dataset", "masks"])
def test_verify_data_notices_content_behind_the_same_size_and_mtime(kind, tmp_path, monkeypatch):
    folder = photos(tmp_path / "files", 3, seed=1, ext=".bmp")
    build = (
        (lambda: build_dataset(f"folder:{folder}", size=32).fingerprint())
        if kind == "dataset"
        else (lambda: build_mask(f"folder:{folder}").fingerprint())
    )
    plain = build()
    monkeypatch.setenv(VERIFY_DATA_ENV, "1")
    checked = build()
    copy_keeping_size_and_mtime(folder / "001.bmp", np.zeros((32, 32, 3), np.uint8))
    assert build() != checked  # content hashed: the change is seen
    monkeypatch.delenv(VERIFY_DATA_ENV)
    assert build() == plain  # size and mtime only: documented, and why --verify-data exists


def test_verify_data_run_recomputes_what_changed(tmp_path) -> None:
    data = photos(tmp_path / "photos", 3, seed=1, ext=".bmp")
    out = run(tmp_path, dataset=f"folder:{data}", size=32, verify_data=True)
    before = {r["index"]: r for r in RecordStore(out / "records.jsonl")}
    copy_keeping_size_and_mtime(data / "001.bmp", np.full((32, 32, 3), 90, np.uint8))
    run(tmp_path, dataset=f"folder:{data}", size=32, verify_data=True)
    after = {r["index"]: r for r in RecordStore(out / "records.jsonl")}
    assert all(after[i]["provenance"] != before[i]["provenance"] for i in range(3))
    assert after[1]["psnr"] != before[1]["psnr"]  # measured on the new content
