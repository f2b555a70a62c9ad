"""Issue 23, security: nothing is deleted, written or read outside the folder a results file
belongs to; TorchScript archives that use file operators are refused; one pixel limit holds for
every image the tool decodes, checked from the header before decoding."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import methods.exported as exported
from benchmark.cli import main
from benchmark.commands.report_data import Run
from benchmark.commands.report_images import read_png
from benchmark.commands.report_samples import saved_samples
from benchmark.datasets import build_dataset
from benchmark.errors import DataError
from benchmark.images import MAX_PIXELS_ENV, header_size, max_pixels
from benchmark.masking import build_mask
from benchmark.method import METHODS
from benchmark.results.paths import confined
from benchmark.run.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def cli(capsys, *args: str) -> tuple[int, str]:
    """``python -m benchmark ARGS`` in this process: (exit code, stderr)."""
    code = main(list(args))
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels)
    return path


def png_with_header_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG (4x4 pixels of data) whose header, with a valid CRC, claims ``width x height``."""
    data = bytearray(write_png(path, np.zeros((4, 4), np.uint8)).read_bytes())
    ihdr = 8 + 8  # signature, then chunk length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def export_args(out: Path, *extra: str) -> list[str]:
    return ["export", "--masks", "square", "--limit", "2", "--out", str(out), *extra]


# -- export: a previous export's manifest is confined to its folder ----------------------------


@pytest.mark.parametrize("name", ["absolute", "../victim/v.png", "square/../../victim/v.png"])
def test_export_never_deletes_what_a_manifest_names_outside_its_folder(tmp_path, capsys, name):
    victim = tmp_path / "victim" / "v.png"
    victim.parent.mkdir()
    victim.write_bytes(b"keep me")
    out = tmp_path / "ex"
    assert cli(capsys, *export_args(out))[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"][0]["masked"] = str(victim) if name == "absolute" else name
    (out / "manifest.json").write_text(json.dumps(manifest))

    code, err = cli(capsys, *export_args(out))
    assert code == 1 and "is not inside its folder" in one_error_line(err)
    assert victim.read_bytes() == b"keep me"
    assert (out / "square" / "000001_masked.png").is_file()  # a tampered manifest deletes nothing


def test_export_never_writes_or_deletes_through_a_linked_mask_folder(tmp_path, capsys):
    out, elsewhere = tmp_path / "ex", tmp_path / "elsewhere"
    assert cli(capsys, *export_args(out))[0] == 0
    elsewhere.mkdir()
    (elsewhere / "000000_masked.png").write_bytes(b"someone else's file")
    for path in (out / "square").iterdir():
        path.unlink()
    (out / "square").rmdir()
    (out / "square").symlink_to(elsewhere, target_is_directory=True)

    code, err = cli(capsys, *export_args(out))
    assert code == 1 and "outside" in one_error_line(err)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["000000_masked.png"]
    assert (elsewhere / "000000_masked.png").read_bytes() == b"someone else's file"


def test_export_never_writes_through_a_link_its_manifest_does_not_name(tmp_path, capsys):
    out, elsewhere = tmp_path / "ex", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "manifest.json").write_text(
        json.dumps({"kind": "inpaint-bench export", "layout": "native", "masks": {}, "files": []})
    )
    (out / "square").symlink_to(elsewhere, target_is_directory=True)
    code, err = cli(capsys, *export_args(out))
    assert code == 1 and "'square' is a symbolic link" in one_error_line(err)
    assert list(elsewhere.iterdir()) == []


def test_export_writes_each_original_itself_not_through_a_planted_link(tmp_path, capsys):
    out, secret = tmp_path / "ex", tmp_path / "secret.png"
    write_png(secret, np.full((32, 32, 3), 7, np.uint8))
    (out / "_ground_truth").mkdir(parents=True)
    (out / "_ground_truth" / "000000.png").symlink_to(secret)
    (out / "manifest.json").write_text(
        json.dumps({"kind": "inpaint-bench export", "layout": "native", "masks": {}, "files": []})
    )
    assert cli(capsys, *export_args(out))[0] == 0
    assert not (out / "_ground_truth" / "000000.png").is_symlink()  # replaced, not trusted
    assert cv2.imread(str(secret)).max() == 7  # and the file it pointed to is untouched


# -- predictions: the export's manifest is confined too -----------------------------------------


@pytest.mark.parametrize("key", ["masked", "mask_file"])
def test_predictions_refuse_an_export_manifest_pointing_outside(tmp_path, capsys, key):
    out, preds = tmp_path / "ex", tmp_path / "preds"
    assert cli(capsys, *export_args(out))[0] == 0
    preds.mkdir()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"][1][key] = str(tmp_path / "elsewhere.png")
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="elsewhere.png' is not inside its folder"):
        METHODS.build(f"predictions:path={preds},export={out}")


@pytest.mark.parametrize("folder", ["../x", "/abs", ".."])
def test_predictions_refuse_a_mask_folder_that_is_not_a_name(tmp_path, capsys, folder):
    out, preds = tmp_path / "ex", tmp_path / "preds"
    assert cli(capsys, *export_args(out))[0] == 0
    preds.mkdir()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["masks"]["square"]["folder"] = folder
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="not a folder name"):
        METHODS.build(f"predictions:path={preds},export={out}")


# -- report: images only from the run's own folder ---------------------------------------------


@pytest.fixture
def saved_run(tmp_path) -> Path:
    out = tmp_path / "run"
    assert main(
        ["run", "--methods", "mean", "--masks", "square", "--limit", "2", "--workers", "1",
         "--quiet", "--save-images", "--out", str(out)]
    ) == 0  # fmt: skip
    return out


def test_report_reads_no_images_through_a_records_link_leading_elsewhere(saved_run, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (saved_run / "images").rename(elsewhere / "images")
    (saved_run / "records.jsonl").rename(elsewhere / "records.jsonl")
    (saved_run / "records.jsonl").symlink_to(elsewhere / "records.jsonl")
    run = Run(saved_run)
    assert run.images_dir == saved_run / "images"  # not elsewhere/images
    assert saved_samples(run, "square", ["mean"], [0, 1]) is None  # so they are recomputed


def test_report_reads_no_image_linked_from_outside_the_run(saved_run, tmp_path):
    outside = write_png(tmp_path / "outside.png", np.full((32, 32, 3), 9, np.uint8))
    image = saved_run / "images" / "square" / "mean" / "000000.png"
    image.unlink()
    image.symlink_to(outside)
    cells = saved_samples(Run(saved_run), "square", ["mean"], [0, 1])
    assert cells is not None and cells[0]["mean"] is None and cells[1]["mean"] is not None


# -- TorchScript: an archive is code; file operators are refused --------------------------------


class ReadsAFile(nn.Module):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        secret = torch.from_file("/etc/hostname", False, 1, dtype=torch.uint8)
        return image + secret.float().sum() * 0


class WritesAFile(nn.Module):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        torch.save(image, self.target)
        return image


class Inner(nn.Module):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image + torch.from_file("/etc/hostname", False, 1).sum() * 0


class ReadsInASubmodule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Inner()

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.inner(image)


class Harmless(nn.Module):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image * (1 - mask) + 0.5 * mask


def hostile_archive(kind: str, tmp_path: Path) -> Path:
    module = {
        "from_file": lambda: ReadsAFile(),
        "save": lambda: WritesAFile(str(tmp_path / "written.pt")),
        "submodule": lambda: ReadsInASubmodule(),
    }[kind]()
    path = tmp_path / f"{kind}.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.mark.parametrize("kind", ["from_file", "save", "submodule"])
def test_torchscript_with_file_operators_is_refused_before_loading(kind, tmp_path, monkeypatch):
    path = hostile_archive(kind, tmp_path)

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("loaded an archive that uses file operators")

    monkeypatch.setattr(exported.torch.jit, "load", no_load)
    with pytest.raises(DataError, match="is refused: its code .* uses") as info:
        METHODS.build(f"torchscript:path={path}")
    assert "ONNX" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "written.pt").exists()


@pytest.mark.parametrize("kind", ["from_file", "save", "submodule"])
def test_torchscript_graphs_are_checked_after_loading_too(kind, tmp_path, monkeypatch):
    """What the code scan could miss, the graph of every method of every submodule shows."""
    path = hostile_archive(kind, tmp_path)
    monkeypatch.setattr(exported, "check_torchscript_code", lambda path: None)
    with pytest.raises(DataError, match="its graph uses aten::(from_file|save)"):
        METHODS.build(f"torchscript:path={path}")
    assert not (tmp_path / "written.pt").exists()


def test_a_harmless_torchscript_model_still_runs(tmp_path):
    path = tmp_path / "ok.pt"
    torch.jit.save(torch.jit.script(Harmless()), str(path))
    method = METHODS.build(f"torchscript:path={path}")
    image, mask = torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    mask[..., 4:8, 4:8] = True
    filled = method.inpaint(image.masked_fill(mask, 0), mask)
    assert torch.equal(filled[:, :, 5, 5], torch.full((2, 3), 0.5))


@pytest.mark.parametrize(
    "code, found",
    [
        ("x = torch.from_file(p, False, 4)", "from_file"),
        ("torch.save(x, p)", "torch.save"),
        ("y = ops.aten.save(x, p)", "aten::save"),
        ("f = open(p)", "open()"),
        ("y = ops.image.write_file(p, x)", "image::write_file"),
        ("y = torch.conv2d(x, w)\n_0 = ops.aten.add(x, y)", None),
        ("save_mean = running_mean", None),
    ],
)
def test_code_scan_finds_file_operators(code: str, found: str | None) -> None:
    result = exported.scan_code(code)
    assert (result is None) if found is None else (found in result)


def test_docs_say_a_torchscript_archive_is_code() -> None:
    guide = (ROOT / "docs" / "guides" / "outside-models.md").read_text()
    near = guide[guide.index("torchscript:") :][:3000]
    assert "is code" in near and "ONNX" in near
    security = (ROOT / "docs" / "guides" / "security.md").read_text()
    for subject in ("TorchScript", "ONNX", "prediction", "mask", "--max-pixels", "manifest"):
        assert subject in security


# -- one pixel limit for every decoded image ------------------------------------------------------


def no_decoding(monkeypatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an image above the pixel limit")

    monkeypatch.setattr(cv2, "imdecode", refuse)
    monkeypatch.setattr(cv2, "imread", refuse)


def test_a_mask_file_above_the_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    """The 0.9 MB mask PNG that decoded to 900 MP took 3 GB: now its header refuses it."""
    png_with_header_size(tmp_path / "masks" / "bomb.png", 30_000, 30_000)
    generator = build_mask(f"folder:{tmp_path / 'masks'}")
    no_decoding(monkeypatch)
    with pytest.raises(DataError, match=r"'bomb.png' has 900,000,000 pixels, more than the limit"):
        generator.mask(0, 32, 32)


def test_a_prediction_above_the_limit_fails_its_image_undecoded(tmp_path, monkeypatch):
    png_with_header_size(tmp_path / "preds" / "square" / "000000.png", 10_000, 6_000)
    method = METHODS.build(f"predictions:{tmp_path / 'preds'}")
    images = torch.rand(1, 3, 32, 32)
    holes = build_mask("square").batch([0], 32, 32)
    no_decoding(monkeypatch)
    prediction, problems = method.inpaint_indexed(images, holes, [0], "square")
    assert "10000x6000 pixels, more than the limit of 50,000,000" in problems[0]
    assert prediction.isnan().all()


def test_an_exported_input_above_the_limit_fails_its_image_undecoded(tmp_path, capsys):
    out, preds = tmp_path / "ex", tmp_path / "preds"
    assert cli(capsys, *export_args(out))[0] == 0
    write_png(preds / "square" / "000000.png", np.zeros((32, 32, 3), np.uint8))
    png_with_header_size(out / "square" / "000000_masked.png", 10_000, 6_000)
    method = METHODS.build(f"predictions:path={preds},export={out}")
    holes = build_mask("square").batch([0], 32, 32)
    _, problems = method.inpaint_indexed(torch.rand(1, 3, 32, 32), holes, [0], "square")
    assert "more than the limit" in problems[0]


def test_a_saved_report_image_above_the_limit_is_not_decoded(tmp_path, monkeypatch):
    path = png_with_header_size(tmp_path / "000000.png", 10_000, 6_000)
    no_decoding(monkeypatch)
    assert read_png(path) is None


@pytest.mark.parametrize("reader", ["dataset", "mask", "prediction", "report"])
def test_the_limit_is_one_setting_for_every_reader(reader, tmp_path, monkeypatch):
    """A 20x20 file passes the default limit and fails a limit of 100 pixels, wherever read."""
    monkeypatch.setenv(MAX_PIXELS_ENV, "100")
    assert max_pixels() == 100
    pixels = np.full((20, 20, 3), 200, np.uint8)
    if reader == "dataset":
        write_png(tmp_path / "d" / "a.png", pixels)
        dataset = build_dataset(f"folder:{tmp_path / 'd'}", size=16)
        with pytest.raises(DataError, match="20x20 pixels, more than the limit of 100"):
            dataset.images([0])
    elif reader == "mask":
        write_png(tmp_path / "m" / "a.png", pixels)
        with pytest.raises(DataError, match="20x20 pixels, more than the limit of 100"):
            build_mask(f"folder:{tmp_path / 'm'}").mask(0, 16, 16)
    elif reader == "prediction":
        write_png(tmp_path / "p" / "square" / "000000.png", pixels)
        method = METHODS.build(f"predictions:{tmp_path / 'p'}")
        holes = build_mask("square").batch([0], 20, 20)
        _, problems = method.inpaint_indexed(torch.rand(1, 3, 20, 20), holes, [0], "square")
        assert "20x20 pixels, more than the limit of 100" in problems[0]
    else:
        assert read_png(write_png(tmp_path / "r.png", pixels)) is None
        monkeypatch.setenv(MAX_PIXELS_ENV, "400")
        assert read_png(tmp_path / "r.png") is not None


def test_max_pixels_option_sets_the_limit_for_the_run_and_its_workers():
    config = RunConfig(methods=["mean"], masks=["square"], max_pixels=1234)
    config.validate()  # checks only: no side effect
    assert MAX_PIXELS_ENV not in os.environ
    config.apply_image_limits()  # what run_benchmark does once, before any work
    assert os.environ[MAX_PIXELS_ENV] == "1234" and max_pixels() == 1234


def test_a_header_beyond_pillows_own_limit_is_still_measured(tmp_path):
    path = png_with_header_size(tmp_path / "huge.png", 100_000, 100_000)
    with pytest.raises(DataError, match="10,000,000,000 pixels"):
        header_size(path, "huge.png")


# -- paths from results files: property ---------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_a_confined_path_never_leaves_its_folder(tmp_path_factory, name: str) -> None:
    root = tmp_path_factory.getbasetemp() / "confined-root"
    root.mkdir(exist_ok=True)
    try:
        path = confined(root, name, "test")
    except DataError:
        return
    resolved = path.resolve()
    assert resolved == root.resolve() or root.resolve() in resolved.parents
