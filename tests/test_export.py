"""``export`` and ``predictions:DIR`` through the command line: files, manifests, round trips."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import benchmark
from benchmark.commands.export import MANIFEST_JSON, export
from benchmark.datasets import build_dataset
from benchmark.errors import DataError, UsageError
from benchmark.masking import build_mask
from benchmark.method import METHODS
from benchmark.names import slugify
from benchmark.run import runner

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """``python -m benchmark ARGS`` with this checkout on PYTHONPATH: (code, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout, done.stderr


def one_line_error(code: int, stderr: str, expected: int) -> str:
    assert code == expected, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def telea_fill(export_dir: Path, pred_dir: Path) -> int:
    """An outside "model": cv2.inpaint (Telea, radius 3) on every exported input, read back
    from the PNGs alone through the manifest, written in the export's prediction layout."""
    manifest = json.loads((export_dir / MANIFEST_JSON).read_text())
    for row in manifest["files"]:
        masked = cv2.imread(str(export_dir / row["masked"]), cv2.IMREAD_COLOR)
        hole = cv2.imread(str(export_dir / row["mask_file"]), cv2.IMREAD_GRAYSCALE)
        filled = cv2.inpaint(masked, hole, 3, cv2.INPAINT_TELEA)
        if manifest["layout"] == "lama":  # what LaMa's predict script names its outputs
            name = Path(row["mask_file"]).with_suffix(".png")
        else:
            name = Path(row["mask_folder"]) / f"{row['index']:06d}.png"
        (pred_dir / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(pred_dir / name), filled)
    return len(manifest["files"])


def records(run_dir: Path) -> dict[tuple[str, str, int], dict]:
    rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    return {(r["method"], r["mask"], r["index"]): r for r in rows}


COMMON = ["--masks", "lines,square", "--limit", "6", "--seed", "3"]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["native", "lama"])
def test_round_trip_matches_native_telea(tmp_path: Path, layout: str) -> None:
    code, _, stderr = cli("export", *COMMON, "--out", "ex", "--layout", layout, cwd=tmp_path)
    assert code == 0, stderr
    assert telea_fill(tmp_path / "ex", tmp_path / "pred") == 12
    method = "predictions:pred" + (",layout=lama" if layout == "lama" else "")
    code, _, stderr = cli(
        "run", "--methods", f"telea,{method}", *COMMON, "--out", "run", "--quiet", cwd=tmp_path
    )
    assert code == 0, stderr
    rows = records(tmp_path / "run")
    assert len(rows) == 24
    metric_names = [k for k in rows["telea", "lines", 0] if k in ("psnr", "ssim", "l1", "mse")]
    assert "psnr" in metric_names
    for mask in ("lines", "square"):
        for index in range(6):
            native = rows["telea", mask, index]
            outside = rows[str(METHODS.normalize(method)), mask, index]
            assert native["status"] == outside["status"] == "ok"
            for key in ("mask_ratio", *metric_names):
                assert outside[key] == native[key], (mask, index, key)


def export_here(out: Path, masks: str = "lines;square", **options) -> dict:
    """In-process export of the default data set (CLI paths are tested by the round trips)."""
    options = {"limit": 6, "seed": 3, **options}
    return export("skimage-patches", "test", None, masks.split(";"), out, **options)


def test_export_files_manifest_and_determinism(tmp_path: Path) -> None:
    for name in ("a", "b"):
        export_here(tmp_path / name, "lines;square:max_size=0.25", limit=3, seed=2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    # 3 images x 2 masks x (masked input, mask), and each image's original once
    assert files_a == files_b and len([f for f in files_a if f.suffix == ".png"]) == 15
    for name in files_a:
        if (tmp_path / "a" / name).is_file():
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    manifest = json.loads((tmp_path / "a" / MANIFEST_JSON).read_text())
    assert manifest["seed"] == 2 and manifest["layout"] == "native"
    assert manifest["version"] == benchmark.__version__
    data = build_dataset("skimage-patches", "test", None, None)
    assert manifest["dataset"]["fingerprint"] == data.fingerprint()
    assert manifest["masks"]["lines"]["fingerprint"] == build_mask("lines").fingerprint()
    assert list(manifest["masks"]) == ["lines", "square:max_size=0.25"]
    row = manifest["files"][4]  # square:max_size=0.25, image 1
    assert row["masked"] == f"{slugify('square:max_size=0.25')}/000001_masked.png"
    assert row["original"] == "_ground_truth/000001.png"
    original = cv2.imread(str(tmp_path / "a" / row["original"]))[..., ::-1]
    masked = cv2.imread(str(tmp_path / "a" / row["masked"]))[..., ::-1]
    hole = cv2.imread(str(tmp_path / "a" / row["mask_file"]), cv2.IMREAD_UNCHANGED)
    expected_hole = build_mask("square:max_size=0.25").mask(1, 32, 32, seed=2)
    assert hole.ndim == 2 and np.array_equal(hole == 255, expected_hole)
    assert set(np.unique(hole)) == {0, 255}
    expected = (data.images([1])[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(original, expected)
    assert np.array_equal(masked, np.where(expected_hole[..., None], 0, expected))
    assert row["mask_ratio"] == pytest.approx(expected_hole.mean())
    csv_lines = (tmp_path / "a" / "manifest.csv").read_text().splitlines()
    assert len(csv_lines) == 7 and csv_lines[0].startswith("mask,mask_folder,index")


def test_lama_layout_is_what_lama_reads(tmp_path: Path) -> None:
    export_here(tmp_path / "ex", layout="lama")
    # LaMa's evaluation data set: every **/*mask*.png is a mask, its image is the part before
    # the last "_mask" plus ".png", in the same folder
    root = str(tmp_path / "ex") + "/"
    masks = sorted(glob.glob(os.path.join(root, "**", "*mask*.png"), recursive=True))
    assert len(masks) == 12
    for mask in masks:
        image = mask.rsplit("_mask", 1)[0] + ".png"
        pixels = cv2.imread(image)
        hole = cv2.imread(mask, cv2.IMREAD_GRAYSCALE) > 0
        assert pixels is not None and pixels.shape[:2] == hole.shape
        assert not pixels[hole].any()  # the model sees holes as 0: no ground truth leaks
    originals = sorted((tmp_path / "ex" / "_ground_truth").glob("*.png"))
    assert [p.name for p in originals] == [f"{i:06d}.png" for i in range(6)]


def test_export_refuses_a_foreign_folder_and_replaces_an_export(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        export_here(tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    export_here(tmp_path / "ex", limit=4)
    export_here(tmp_path / "ex", "lines", limit=2)
    left = sorted(p.relative_to(tmp_path / "ex").as_posix() for p in (tmp_path / "ex").rglob("*"))
    assert left == [
        "_ground_truth",
        *(f"_ground_truth/{i:06d}.png" for i in range(2)),
        "lines",
        *(f"lines/{i:06d}{s}.png" for i in range(2) for s in ("_mask", "_masked")),
        "manifest.csv",
        "manifest.json",
    ]


@pytest.mark.parametrize("layout", ["native", "lama"])
def test_the_originals_are_apart_from_what_a_model_reads(tmp_path: Path, layout: str) -> None:
    """A model (or a script globbing a mask folder) finds inputs and masks there, never an
    original: the originals are in _ground_truth/, once per image, and nowhere else."""
    manifest = export_here(tmp_path / "ex", layout=layout)
    data = build_dataset("skimage-patches", "test", None, None)
    expected = (data.images(range(6)).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for mask_folder in ("lines", "square"):
        for path in (tmp_path / "ex" / mask_folder).iterdir():
            pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
            index = int(path.name[:6])
            assert not np.array_equal(pixels, expected[index]), path  # no answer in here
    truth = sorted(p.name for p in (tmp_path / "ex" / "_ground_truth").iterdir())
    assert truth == [f"{i:06d}.png" for i in range(6)]
    for row in manifest["files"]:
        original = cv2.imread(str(tmp_path / "ex" / row["original"]))[..., ::-1]
        assert row["original"].startswith("_ground_truth/")
        assert np.array_equal(original, expected[row["index"]])


@pytest.mark.parametrize(
    ("masks", "options", "needle"),
    [
        ("lnes", {}, "unknown mask 'lnes'"),
        ("lines", {"limit": 0}, "--limit"),
        ("lines", {"mask_ratio": "0.5-0.1"}, "--mask-ratio"),
        ("lines;lines", {}, "listed twice"),
        ("lines", {"layout": "mat"}, "--layout"),
    ],
)
def test_export_usage_errors(tmp_path: Path, masks: str, options: dict, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        export_here(tmp_path / "x", masks, **options)
    assert not (tmp_path / "x").exists()


def test_export_with_mask_ratio_keeps_only_masks_in_range(tmp_path: Path) -> None:
    manifest = export_here(tmp_path / "ex", "lines", limit=5, mask_ratio="0.1-0.2")
    assert manifest["mask_ratio"] == [0.1, 0.2]
    for row in manifest["files"]:
        hole = cv2.imread(str(tmp_path / "ex" / row["mask_file"]), cv2.IMREAD_GRAYSCALE) == 255
        assert 0.1 <= hole.mean() <= 0.2 and hole.mean() == pytest.approx(row["mask_ratio"])


def test_bad_predictions_fail_only_their_images_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_here(tmp_path / "ex")
    telea_fill(tmp_path / "ex", tmp_path / "pred")
    pred = tmp_path / "pred" / "lines"
    (pred / "000000.png").unlink()
    cv2.imwrite(str(pred / "000001.png"), np.zeros((32, 32), np.uint8))
    cv2.imwrite(str(pred / "000002.png"), np.zeros((32, 32, 4), np.uint8))
    cv2.imwrite(str(pred / "000003.png"), np.zeros((16, 32, 3), np.uint8))
    (pred / "000004.png").write_bytes(b"not a png")
    method = f"predictions:{tmp_path / 'pred'},name=mine"
    config = runner.RunConfig(
        methods=[method],
        masks=["lines", "square"],
        limit=6,
        seed=3,
        workers=1,
        out=str(tmp_path / "run"),
        progress=False,
    )
    result = runner.run_benchmark(config)
    assert result.failed == 5
    rows = records(tmp_path / "run")
    key = str(METHODS.normalize(method))
    status = {i: rows[key, "lines", i]["status"] for i in range(6)}
    assert "missing prediction file" in status[0]
    assert "grayscale" in status[1]
    assert "RGBA" in status[2]
    assert "expected 32x32" in status[3]
    assert "not a readable PNG" in status[4]
    assert status[5] == "ok"
    assert all(rows[key, "square", i]["status"] == "ok" for i in range(6))


@pytest.mark.slow
def test_predictions_refuses_an_export_folder_in_one_line(tmp_path: Path) -> None:
    export_here(tmp_path / "ex", "lines", limit=2)
    code, _, stderr = cli(
        "run",
        "--methods",
        "predictions:ex",
        "--masks",
        "lines",
        "--limit",
        "2",
        "--quiet",
        "--out",
        "run",
        cwd=tmp_path,
    )
    assert "is an export folder" in one_line_error(code, stderr, 2)


def test_predictions_checked_against_their_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Image by image: an exported input that is not what the run draws fails that image (the
    settings are compared before the run, see tests/test_first_hour.py)."""
    export_here(tmp_path / "ex", "lines", limit=4, seed=3)
    telea_fill(tmp_path / "ex", tmp_path / "pred")
    method = f"predictions:{tmp_path / 'pred'},export={tmp_path / 'ex'}"

    def failed(out: str) -> int:
        config = runner.RunConfig(
            methods=[method],
            masks=["lines"],
            limit=4,
            seed=3,
            workers=1,
            out=str(tmp_path / out),
            progress=False,
        )
        return runner.run_benchmark(config).failed

    assert failed("run") == 0
    stale = tmp_path / "ex" / "lines" / "000002_mask.png"  # an export older than these masks
    cv2.imwrite(str(stale), 255 - cv2.imread(str(stale), cv2.IMREAD_GRAYSCALE))
    assert failed("stale") == 1
    rows = records(tmp_path / "stale")
    assert "differs from export" in rows[str(METHODS.normalize(method)), "lines", 2]["status"]
    with pytest.raises(DataError, match="no export manifest"):
        METHODS.build(f"predictions:{tmp_path / 'pred'},export={tmp_path / 'pred'}")
