"""Named, versioned evaluation protocols: registry, settings, loaders of the real layouts,
regenerated mask sets, runs, conflicts, results and the training guard.

The data sets are built in temporary folders in their distributed layouts: a few small real
images where the test decodes them, and hard links to one of them for the rest of a protocol's
file list (the loaders check that every file of the list is there).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

import benchmark.protocols  # noqa: F401  (registers the comodgan masks)
from benchmark.datasets import DATASETS, build_dataset
from benchmark.datasets import celebahq as celebahq_module
from benchmark.datasets import ffhq as ffhq_module
from benchmark.datasets import places365 as places_module
from benchmark.datasets.places365 import FILE_NAME, sample_order, scale_and_crop
from benchmark.errors import DataError, UnknownNameError, UsageError
from benchmark.masking import MASKS, build_mask
from benchmark.metrics import METRICS
from benchmark.protocols import PROTOCOLS, apply_protocol, refuse_evaluation_data, resolve
from benchmark.protocols.base import Versions
from benchmark.protocols.builtin import NVIDIA_MASKS, lama_masks, lama_parameters
from benchmark.protocols.mask_files import check_mask_files
from benchmark.run.config import COMPARABLE_KEYS, RunConfig, command_line

NAMES = PROTOCOLS.names()


@pytest.fixture
def main_in_process(capsys):
    """``benchmark.cli.main`` in this process: ``(code, stdout, stderr)``."""
    from benchmark.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        environ = dict(os.environ)
        try:
            code = main(list(args))
        finally:  # main() sets variables meant for its own process
            os.environ.clear()
            os.environ.update(environ)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# -- layouts ----------------------------------------------------------------------------------
def write_jpeg(path: Path, height: int, width: int, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = (rng.integers(0, 256, (height, width, 3)) // 32 * 32).astype(np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def populate(paths: list[Path], real: int = 4, height: int = 30, width: int = 40) -> None:
    """Small distinct images at the first ``real`` paths, hard links to one image elsewhere."""
    for k, path in enumerate(paths[:real]):
        write_jpeg(path, height + k, width, seed=k)
    source = paths[0]
    for path in paths[real:]:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, path)


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> Path:
    """``D/val_large/Places365_val_*.jpg``: the 30,000 files of the protocols' sample."""
    data = tmp_path_factory.mktemp("places")
    root = data / "val_large"
    populate([root / FILE_NAME.format(k + 1) for k in sample_order(30_000)])
    return data


CELEBA_VAL_MAP = {"val": 2_993, "train": 24_183, "test": 2_824}


@pytest.fixture(scope="module")
def celeba(tmp_path_factory) -> Path:
    """``D/CelebA-HQ-img/k.jpg`` (30,000) and a mapping file with CelebA's partition counts."""
    data = tmp_path_factory.mktemp("celeba")
    populate([data / "CelebA-HQ-img" / f"{k}.jpg" for k in range(30_000)], height=64, width=64)
    # CelebA sources: val files 162771..182637, training up to 162770, test from 182638
    sources = (
        [162_771 + k for k in range(CELEBA_VAL_MAP["val"])]
        + [1 + k for k in range(CELEBA_VAL_MAP["train"])]
        + [182_638 + k for k in range(CELEBA_VAL_MAP["test"])]
    )
    order = np.random.default_rng(1).permutation(30_000)
    lines = ["idx orig_idx orig_file"] + [
        f"{k} {sources[order[k]] - 1} {sources[order[k]]:06d}.jpg" for k in range(30_000)
    ]
    (data / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(lines) + "\n")
    return data


def mat_validation(data: Path) -> list[int]:
    """The CelebA-HQ numbers whose source lies in CelebA's validation range (per the map)."""
    rows = (data / "CelebA-HQ-to-CelebA-mapping.txt").read_text().split("\n")[1:-1]
    return sorted(int(r.split()[0]) for r in rows if 162_771 <= int(r.split()[2][:6]) <= 182_637)


# -- registry and settings --------------------------------------------------------------------
def test_list_shows_every_protocol_with_its_version(main_in_process):
    code, stdout, stderr = main_in_process("list", "protocols")
    assert code == 0, stderr
    lines = {line.split()[0]: line for line in stdout.splitlines() if line.startswith("  ")}
    assert set(lines) == set(NAMES)
    for name in NAMES:
        protocol = resolve(name)
        assert f"v{protocol.version}: {protocol.title}" in lines[name]
    required = {
        "places365-512-lama", "places365-256-lama", "celebahq-256-lama", "celebahq-512-mat",
        "nvidia-irregular-places365-512", "cifar10-seed",
    }  # fmt: skip
    assert required <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_settings_name_registered_entries(name):
    protocol = resolve(name)
    assert protocol.ref == f"{name}@{protocol.version}" and resolve(protocol.ref) is protocol
    DATASETS.normalize(protocol.dataset)  # a registered data set with valid parameters
    for spec in protocol.masks:
        if spec != "folder":
            build_mask(spec).mask(0, protocol.size, protocol.size, protocol.seed)
    assert set(protocol.metrics) <= set(METRICS.names())
    assert all(low < high for low, high in protocol.bins)
    assert protocol.source and protocol.notes and protocol.crop


@pytest.mark.parametrize("name", NAMES)
def test_fingerprint_covers_every_setting_and_no_prose(name):
    protocol = resolve(name)
    base = protocol.fingerprint()
    changes = dict(
        version=protocol.version + 1, dataset=protocol.dataset + ",x=1", split="train",
        images=protocol.images + 1, size=protocol.size * 2, crop=protocol.crop + ".",
        masks=protocol.masks[:-1] + ("center",), seed=protocol.seed + 1,
        metrics=protocol.metrics[:-1], reference_metrics=protocol.reference_metrics + ("kid",),
        bins=protocol.bins[:-1],
    )  # fmt: skip
    for key, value in changes.items():
        assert dataclasses.replace(protocol, **{key: value}).fingerprint() != base, key
    for key, value in (("source", "other"), ("notes", ("other",)), ("title", "other")):
        assert dataclasses.replace(protocol, **{key: value}).fingerprint() == base, key


def test_requested_metrics_say_which_the_harness_measures():
    protocol = resolve("places365-512-lama")
    assert protocol.requested_metrics({"psnr", "fid"}) == {"fid": True, "lpips-vgg": False}
    # every metric a built-in protocol's paper reports can now be measured (run --metrics)
    for name in ("places365-512-lama", "celebahq-512-mat"):
        assert all(resolve(name).requested_metrics().values()), name


def test_unknown_protocol_and_version_are_one_line_errors(main_in_process):
    code, _, stderr = main_in_process("run", "--protocol", "places365-512-lma", "--methods", "mean")
    assert code == 2 and stderr.count("\n") == 1
    assert "unknown protocol 'places365-512-lma'" in stderr
    assert "did you mean 'places365-512-lama'" in stderr
    code, _, stderr = main_in_process("run", "--protocol", "cifar10-seed@7", "--methods", "mean")
    assert code == 2 and stderr.count("\n") == 1
    assert "has no version '7'; versions: cifar10-seed@1" in stderr
    with pytest.raises(UnknownNameError):
        resolve("nope")


def test_versions_keep_every_version_and_name_the_newest():
    old = resolve("cifar10-seed")
    new = dataclasses.replace(old, version=old.version + 1, seed=1)
    entry = Versions(old, new)
    assert entry() is new and entry.versions == {old.version: old, new.version: new}
    with pytest.raises(ValueError):
        Versions(old, old)


# -- LaMa's and MAT's masks, regenerated -------------------------------------------------------
def test_lama_256_configurations_are_the_strokes_presets():
    assert lama_masks(256) == (
        "strokes:preset=thin",
        "strokes:preset=medium",
        "strokes:preset=thick",
    )
    thick = lama_parameters("thick", 512)  # random_thick_512.yaml: max_width 250, max_len 450
    assert thick["max_width"] * 512 == 254 and thick["max_length"] * 512 == 459
    assert thick["max_box"] * 512 == 300 and thick["max_boxes"] == 4 and thick["max_strokes"] == 6


#: Hole-ratio statistics of the reference generators: (mean, median), measured by running
#: LaMa's generator (saicinpainting/training/data/masks.py, 5 variants per image, one kept below
#: 0.5; 2,000 images at the configuration's side, commit 786f593) and MAT's / CoModGAN's
#: RandomMask at 512 (1,000 masks each; MAT commit d273d89, co-mod-gan commit c8b9ffe).
REFERENCE = {
    ("lama", "thin", 256): (0.2892, 0.2981, 0.129),
    ("lama", "medium", 256): (0.2346, 0.2610, 0.134),
    ("lama", "thick", 256): (0.2660, 0.2615, 0.128),
    ("lama", "thin", 512): (0.2892, 0.3019, 0.132),
    ("lama", "medium", 512): (0.2676, 0.2834, 0.140),
    ("lama", "thick", 512): (0.2663, 0.2682, 0.134),
    ("comodgan", "mat", 512): (0.3958, 0.3961, 0.167),
    ("comodgan", "mat-small", 512): (0.2218, 0.1963, 0.142),
    ("comodgan", "comodgan", 512): (0.6445, 0.6645, 0.178),
}
REFERENCE_N = {"lama": 2_000, "comodgan": 1_000}
DRAWS = 160


@pytest.mark.parametrize("family,kind,side", list(REFERENCE))
def test_regenerated_masks_match_the_reference_hole_ratios(family, kind, side):
    spec = (
        lama_masks(side)[("thin", "medium", "thick").index(kind)]
        if family == "lama"
        else f"comodgan:preset={kind}"
    )
    generator = build_mask(spec)
    ratios = np.array([generator.mask(i, side, side, 0).mean() for i in range(DRAWS)])
    again = build_mask(spec).mask(7, side, side, 0)
    assert np.array_equal(again, generator.mask(7, side, side, 0))  # fixed by (seed, index)
    mean, median, std = REFERENCE[family, kind, side]
    error = std * np.sqrt(1 / DRAWS + 1 / REFERENCE_N[family])  # of the difference of means
    assert abs(ratios.mean() - mean) < 4 * error, (ratios.mean(), mean)
    assert abs(np.median(ratios) - median) < 6 * error, (np.median(ratios), median)
    if family == "lama":
        assert ratios.max() <= 0.5  # max_tamper_area


@pytest.mark.parametrize("preset", ["comodgan", "mat", "mat-small"])
def test_comodgan_masks_pass_the_contract_checks(preset):
    from benchmark.testing import check_mask

    failed = [r.line() for r in check_mask(f"comodgan:preset={preset}") if not r.passed]
    assert not failed, failed
    assert "comodgan" in MASKS.names()


# -- the crop rule and the loaders -------------------------------------------------------------
def test_scale_and_crop_scales_the_shorter_side_then_takes_the_centre():
    from PIL import Image

    image = Image.fromarray(np.arange(30 * 60 * 3, dtype=np.uint8).reshape(30, 60, 3) % 251)
    out = scale_and_crop(image, 15)
    expected = np.asarray(image.resize((30, 15), Image.BICUBIC))[:, 7:22]
    assert np.array_equal(out, expected)
    assert scale_and_crop(Image.new("RGB", (5, 9)), 16).shape == (16, 16, 3)  # upscaled
    same = Image.fromarray(np.full((8, 8, 3), 9, np.uint8))
    assert np.array_equal(scale_and_crop(same, 8), np.asarray(same))  # untouched at its size


def test_places365_reads_the_sample_in_its_order(places):
    dataset = build_dataset("places365:sample=30000", "test", 64, places)
    assert len(dataset) == 30_000
    first = dataset.files[0].name
    assert first == FILE_NAME.format(sample_order(30_000)[0] + 1)
    images = dataset.images([0, 1])
    assert tuple(images.shape) == (2, 3, 64, 64)
    assert "list 30000" in dataset.fingerprint()
    assert sample_order(12_000) == sample_order(30_000)[:12_000]  # nvidia's images: a prefix
    from benchmark.testing import check_dataset

    failed = [r.line() for r in check_dataset("places365:sample=30000", 24, places) if not r.passed]
    assert not failed, failed


def test_places365_missing_files_are_one_line_with_how_to_get_them(places, tmp_path):
    partial = tmp_path / "val_large"
    partial.mkdir()
    for path in sorted((places / "val_large").iterdir())[:10]:
        os.link(path, partial / path.name)
    with pytest.raises(DataError) as caught:
        build_dataset("places365:sample=30000", "test", 64, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "29,990 of the 30,000 images are missing" in message
    assert "val_large.tar" in message and "never redistribute" in message
    with pytest.raises(DataError, match="no val_large/"):
        build_dataset("places365", "test", 64, tmp_path / "nowhere")
    train = build_dataset("places365:sample=30000", "train", 64, places)
    assert train.files == build_dataset("places365:sample=30000", "test", 64, places).files


def test_places365_download_checks_the_md5_and_unpacks(tmp_path, monkeypatch):
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        for k in range(VAL := 3):
            data = write_jpeg(tmp_path / "src" / FILE_NAME.format(k + 1), 20, 20, k).read_bytes()
            info = tarfile.TarInfo(f"val_256/{FILE_NAME.format(k + 1)}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = payload.getvalue()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(archive))}

    monkeypatch.setattr(places_module, "VAL_COUNT", VAL)
    monkeypatch.setattr(
        places_module.urllib.request, "urlopen", lambda url, timeout: Response(archive)
    )
    md5 = hashlib.md5(archive).hexdigest()
    monkeypatch.setitem(places_module.VARIANTS, "256", ("val_256", 256, "val_256.tar", "0" * 32))
    with pytest.raises(DataError, match="expected 0{32}"):
        build_dataset("places365:variant=256,download=true", "test", 16, tmp_path / "d")
    assert not (tmp_path / "d" / "val_256.tar").exists()  # a bad download is not kept
    monkeypatch.setitem(places_module.VARIANTS, "256", ("val_256", 256, "val_256.tar", md5))
    dataset = build_dataset("places365:variant=256,download=true", "test", 16, tmp_path / "d")
    assert len(dataset) == VAL and dataset.images([2]).shape[-1] == 16


def test_celebahq_subsets_in_each_layout(celeba, tmp_path, monkeypatch):
    val = build_dataset("celebahq:subset=celeba-val", "test", 32, celeba)
    train = build_dataset("celebahq:subset=celeba-val", "train", 32, celeba)
    assert [int(p.stem) for p in val.files] == mat_validation(celeba)
    assert (len(val), len(train)) == (2_993, 24_183)
    assert not {p.name for p in val.files} & {p.name for p in train.files}
    assert tuple(val.images([0]).shape) == (1, 3, 32, 32)
    # LaMa's download (1-based 5-digit names) with a split file: test = the list, train = rest
    lama = tmp_path / "lama"
    populate([lama / "data256x256" / f"{k + 1:05d}.jpg" for k in range(30_000)], 2, 16, 16)
    chosen = [3, 14, 29_999]
    flist = "".join(f"{k}.jpg\n" for k in chosen).encode()
    (lama / "val_shuffled.flist").write_bytes(flist)
    with pytest.raises(DataError, match="is not LaMa's val_shuffled.flist"):
        build_dataset("celebahq:subset=lama", "test", None, lama)
    digest = hashlib.sha256(flist).hexdigest()
    monkeypatch.setattr(celebahq_module, "LAMA_TEST_LIST", ("val_shuffled.flist", digest))
    test = build_dataset("celebahq:subset=lama", "test", None, lama)
    assert [p.name for p in test.files] == ["00004.jpg", "00015.jpg", "30000.jpg"]
    assert len(build_dataset("celebahq:subset=lama", "train", None, lama)) == 30_000 - 3
    assert test.image_size == (256, 256)  # the layout's side by default
    (lama / "val_shuffled.flist").unlink()
    with pytest.raises(DataError, match="copy fetch_data/val_shuffled.flist"):
        build_dataset("celebahq:subset=lama", "test", None, lama)


def test_ffhq_nested_and_flat_layouts(tmp_path, monkeypatch):
    nested = tmp_path / "nested" / "images1024x1024"
    populate([nested / f"{k // 1000 * 1000:05d}" / f"{k:05d}.png" for k in range(60_000, 70_000)])
    dataset = build_dataset("ffhq", "test", 32, tmp_path / "nested")
    assert len(dataset) == 10_000 and dataset.files[0].as_posix().endswith("60000/60000.png")
    assert tuple(dataset.images([0]).shape) == (1, 3, 32, 32)
    with pytest.raises(DataError, match="60,000 of the 60,000 images are missing"):
        build_dataset("ffhq", "train", 32, tmp_path / "nested")
    flat = tmp_path / "flat" / "images1024x1024"
    flat.mkdir(parents=True)
    for path in dataset.files:
        os.link(path, flat / path.name)
    assert build_dataset("ffhq", "test", 32, flat).files[5].parent == flat
    # verify=true: sizes and MD5s from the published metadata
    first = dataset.files[0]
    entries = {
        str(k): {"image": {"file_path": f"images1024x1024/{p.parent.name}/{p.name}",
                           "file_size": p.stat().st_size,
                           "file_md5": hashlib.md5(p.read_bytes()).hexdigest()}}
        for k, p in enumerate(dataset.files[:2])
    }  # fmt: skip
    metadata = json.dumps(entries).encode()
    (tmp_path / "nested" / "ffhq-dataset-v2.json").write_bytes(metadata)
    monkeypatch.setattr(ffhq_module, "METADATA", ("ffhq-dataset-v2.json", len(metadata)))
    checked = build_dataset("ffhq:verify=true", "test", 32, tmp_path / "nested")
    checked.images([0, 1])
    entries["0"]["image"]["file_md5"] = "0" * 32
    metadata = json.dumps(entries).encode()
    (tmp_path / "nested" / "ffhq-dataset-v2.json").write_bytes(metadata)
    monkeypatch.setattr(ffhq_module, "METADATA", ("ffhq-dataset-v2.json", len(metadata)))
    with pytest.raises(DataError, match=f"'{first.name}' differs from ffhq-dataset-v2.json"):
        build_dataset("ffhq:verify=true", "test", 32, tmp_path / "nested").images([0])


# -- the NVIDIA mask files ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def nvidia(tmp_path_factory) -> Path:
    """``mask/testing_mask_dataset/00000.png`` .. ``11999.png``: 512x512, white = hole."""
    root = tmp_path_factory.mktemp("nvidia") / "mask" / "testing_mask_dataset"
    root.mkdir(parents=True)
    for k in range(4):
        mask = np.zeros((512, 512), np.uint8)
        mask[100 : 100 + 60 * (k + 1), 50:300] = 255
        assert cv2.imwrite(str(root / f"{k:05d}.png"), mask)
    for k in range(4, NVIDIA_MASKS.count):
        os.link(root / f"{k % 4:05d}.png", root / f"{k:05d}.png")
    return root.parent


def test_nvidia_mask_set_is_checked_by_names_count_and_size(nvidia, tmp_path):
    check_mask_files(nvidia, NVIDIA_MASKS)
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("00000.png", "00001.png"):
        os.link(nvidia / "testing_mask_dataset" / name, partial / name)
    with pytest.raises(DataError, match="11,998 of its 12,000 files are missing"):
        check_mask_files(partial, NVIDIA_MASKS)
    cv2.imwrite(str(partial / "extra.png"), np.zeros((512, 512), np.uint8))
    with pytest.raises(DataError, match="other image files .first: extra.png"):
        check_mask_files(partial, NVIDIA_MASKS)
    small = dataclasses.replace(NVIDIA_MASKS, count=1, side=256)
    only = tmp_path / "only"
    only.mkdir()
    os.link(nvidia / "testing_mask_dataset" / "00000.png", only / "00000.png")
    with pytest.raises(DataError, match="'00000.png' is 512x512"):
        check_mask_files(only, small)


# -- runs ---------------------------------------------------------------------------------------
def config(**kw) -> RunConfig:
    return RunConfig(**{"methods": ["mean"], **kw})


def test_apply_sets_everything_and_refuses_conflicts():
    applied = apply_protocol(config(protocol="cifar10-seed"), ["methods", "protocol"])
    assert (applied.dataset, applied.split, applied.size, applied.seed) == (
        "cifar10",
        "test",
        32,
        0,
    )
    assert applied.masks == ["lines", "square"] and applied.protocol == "cifar10-seed@1"
    same = apply_protocol(config(protocol="cifar10-seed", seed=0, size=32), ["seed", "size"])
    assert same.masks == applied.masks  # the protocol's own values, given again, are fine
    for option, value, flag in (
        ("seed", 3, "--seed 3"),
        ("size", 64, "--size 64"),
        ("dataset", "skimage-patches", "--dataset skimage-patches"),
        ("split", "train", "--split train"),
        ("mask_ratio", (0.1, 0.2), "--mask-ratio 0.1-0.2"),
    ):
        with pytest.raises(UsageError) as caught:
            apply_protocol(config(protocol="cifar10-seed", **{option: value}), [option])
        assert str(caught.value).startswith(f"{flag} conflicts with protocol cifar10-seed@1")
    with pytest.raises(UsageError, match="--masks center conflicts with protocol"):
        apply_protocol(config(protocol="cifar10-seed", masks=["center"]), ["masks"])
    subset = apply_protocol(config(protocol="cifar10-seed", masks=["square"]), ["masks"])
    assert subset.masks == ["square"]
    assert subset.identity()["protocol_coverage"] == "partial"
    assert applied.identity()["protocol_coverage"] == "full"
    limited = dataclasses.replace(applied, limit=9_999)
    assert limited.identity()["protocol_coverage"] == "partial"


def test_a_configuration_that_breaks_its_protocol_is_never_labelled_with_it():
    broken = config(protocol="cifar10-seed", masks=["lines"])  # not applied: the defaults
    with pytest.raises(UsageError, match="do not follow protocol cifar10-seed@1"):
        broken.identity()
    applied = apply_protocol(config(protocol="cifar10-seed"), [])
    with pytest.raises(UsageError, match="seed do not follow"):
        dataclasses.replace(applied, seed=5).identity()


def test_runs_without_a_protocol_keep_their_identity():
    plain = config(masks=["lines"])
    assert not {k for k in plain.identity() if k.startswith("protocol")}
    assert "protocol" in COMPARABLE_KEYS


def test_nvidia_protocol_needs_the_mask_folder(nvidia, tmp_path):
    with pytest.raises(UsageError, match="give its folder as --masks folder:PATH"):
        apply_protocol(config(protocol="nvidia-irregular-places365-512"), [])
    applied = apply_protocol(
        config(protocol="nvidia-irregular-places365-512", masks=[f"folder:{nvidia}"]), ["masks"]
    )
    assert applied.masks == [f"folder:path={nvidia}"]
    assert applied.identity()["protocol_coverage"] == "full"
    other = tmp_path / "other"
    other.mkdir()
    os.link(nvidia / "testing_mask_dataset" / "00000.png", other / "00000.png")
    with pytest.raises(DataError, match="not the NVIDIA irregular mask test set"):
        apply_protocol(
            config(protocol="nvidia-irregular-places365-512", masks=[f"folder:{other}"]), ["masks"]
        )


def read_run(folder: Path) -> tuple[dict, dict]:
    run = json.loads((folder / "run.json").read_text())
    board = json.loads((folder / "leaderboard.json").read_text())
    return run, board


def test_run_a_protocol_on_a_real_layout_records_it(run_cli, places, tmp_path):
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        "run", "--protocol", "places365-256-lama", "--data-dir", str(places), "--methods", "mean",
        "--limit", "4", "--workers", "1", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    run, board = read_run(out)
    protocol = resolve("places365-256-lama")
    expected = {
        "protocol": protocol.ref,
        "protocol_fingerprint": protocol.fingerprint(),
        "protocol_coverage": "partial",
    }
    for recorded in (run["identity"], board["config"]):
        assert {k: recorded[k] for k in expected} == expected
    assert run["config"]["protocol"] == protocol.ref and run["config"]["size"] == 256
    assert [t["mask"] for t in board["tables"]] == [
        "strokes:preset=thin",
        "strokes",
        "strokes:preset=thick",
    ]  # medium is the strokes family's default preset
    assert all(e["n"] == 4 for t in board["tables"] for e in t["entries"])
    dataset = build_dataset(protocol.dataset, "test", 256, places)
    fingerprints = {p["dataset"] for p in run["provenance"]["masks"].values()}
    assert fingerprints == {dataset.fingerprint()}  # the file-list checksum, in the results
    words = command_line(run["config"]).split()  # the reproducing command names the protocol
    assert words[words.index("--protocol") + 1] == protocol.ref
    # a run of another version of the protocol is not comparable: compare exits 2
    other = tmp_path / "other"
    shutil.copytree(out, other)
    board["config"]["protocol"] = "places365-256-lama@2"
    (other / "leaderboard.json").write_text(json.dumps(board))
    code, _, stderr = run_cli("compare", str(out), str(out))
    assert code == 0, stderr
    code, _, stderr = run_cli("compare", str(out), str(other))
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert "protocol 'places365-256-lama@1' -> 'places365-256-lama@2'" in stderr


def test_run_the_mat_protocol_on_celebahq(run_cli, celeba, tmp_path):
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        "run", "--protocol", "celebahq-512-mat@1", "--data-dir", str(celeba), "--methods",
        "mean", "--limit", "2", "--workers", "1", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    run, board = read_run(out)
    assert run["identity"]["protocol"] == "celebahq-512-mat@1"
    masks = [t["mask"] for t in board["tables"]]
    assert masks == ["comodgan:preset=mat", "comodgan:preset=mat-small"]
    assert run["image_size"] == [512, 512]
    # the metrics MAT reports that this run did not ask for are named, with the option
    assert "paper also reports fid, p-ids, u-ids, lpips-alex: add --metrics" in stderr


def test_run_conflicts_exit_2_with_one_line(main_in_process, places):
    code, _, stderr = main_in_process(
        "run", "--protocol", "places365-256-lama", "--data-dir", str(places), "--methods",
        "mean", "--size", "128",
    )  # fmt: skip
    assert code == 2 and stderr.count("\n") == 1
    assert "--size 128 conflicts with protocol places365-256-lama@1" in stderr
    code, _, stderr = main_in_process("run", "--methods", "mean")
    assert code == 2 and "--masks (or a --protocol)" in stderr


def test_gate_configuration_may_name_a_protocol(tmp_path):
    from benchmark.commands.gate import load_config

    toml = tmp_path / "ci.toml"
    toml.write_text('methods = ["mean"]\nprotocol = "cifar10-seed"\nlimit = 50\n')
    loaded = load_config(toml)
    assert loaded.masks == ["lines", "square"] and loaded.protocol == "cifar10-seed@1"
    toml.write_text('methods = ["mean"]\nprotocol = "cifar10-seed"\nseed = 2\n')
    with pytest.raises(UsageError, match="ci.toml': seed 2 conflicts with protocol .*; drop seed"):
        load_config(toml)
    toml.write_text('methods = ["mean"]\nseed = 0\n')
    with pytest.raises(UsageError, match="missing key.s. masks"):
        load_config(toml)


# -- never train on evaluation data -------------------------------------------------------------
def test_training_on_a_protocols_evaluation_images_is_refused(places, celeba, tmp_path):
    folder = build_dataset(f"folder:{places / 'val_large'}", "train", 16)
    with pytest.raises(UsageError) as caught:
        refuse_evaluation_data(folder, None)
    message = str(caught.value)
    assert "\n" not in message and "evaluation images of protocol" in message
    copy = tmp_path / "copy"  # a copy of a few evaluation files counts too (name and size)
    copy.mkdir()
    for path in build_dataset("places365:sample=12000", "test", 16, places).files[:3]:
        copy.joinpath(path.name).write_bytes(path.read_bytes())
    with pytest.raises(UsageError, match="holds 3 evaluation images"):
        refuse_evaluation_data(build_dataset(f"folder:{copy}", "train", 16), places)
    refuse_evaluation_data(build_dataset("folder:" + str(copy), "train", 16), tmp_path / "none")
    # CelebA-HQ's training partition is not evaluated by any protocol
    refuse_evaluation_data(build_dataset("celebahq:subset=celeba-val", "train", 16, celeba), celeba)


def test_train_command_refuses_evaluation_images(main_in_process, places, tmp_path):
    code, _, stderr = main_in_process(
        "train", "unet", "--dataset", f"folder:{places / 'val_large'}", "--size", "16",
        "--epochs", "1", "--out", str(tmp_path / "w.safetensors"),
    )  # fmt: skip
    assert code == 2 and stderr.count("\n") == 1
    assert "evaluation images of protocol" in stderr


def test_run_the_nvidia_protocol_with_its_mask_files(run_cli, places, nvidia, tmp_path):
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        "run", "--protocol", "nvidia-irregular-places365-512", "--data-dir", str(places),
        "--masks", f"folder:{nvidia}", "--methods", "mean", "--limit", "3", "--workers", "1",
        "--out", str(out), "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    run, board = read_run(out)
    assert run["identity"]["protocol"] == "nvidia-irregular-places365-512@1"
    assert run["config"]["masks"] == [f"folder:path={nvidia}"]
    assert board["tables"][0]["entries"][0]["n"] == 3
