"""The perceptual metrics against the reference packages' values, and their weight lookup.

``tests/data/perceptual_golden.json`` holds what lpips 0.1.4, torchmetrics 1.9.0, pytorch-fid
0.3.0, clean-fid 0.1.35, torch-fidelity 0.4.0 and CoModGAN's P-IDS/U-IDS code gave on seeded
weight files and images (``scripts/make_perceptual_golden.py``); the same files are recreated
here by ``tests/perceptual_fixtures.py`` and measured with :mod:`benchmark.perceptual`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import perceptual_fixtures  # tests/perceptual_fixtures.py (pytest's pythonpath)
import pytest
import torch

from benchmark.errors import DataError, UsageError
from benchmark.perceptual import PERCEPTUAL_METRICS, fid, inception, lpips, ms_ssim, weights
from benchmark.perceptual.backbones import NETS

fixtures = perceptual_fixtures
GOLDEN = json.loads((Path(__file__).parent / "data" / "perceptual_golden.json").read_text())
INCEPTION = "pt_inception-2015-12-05-6726825d.pth"
#: the seeded stand-ins are unverified by design; the checksum tests check the warning itself
pytestmark = pytest.mark.filterwarnings(
    "ignore::benchmark.perceptual.weights.UnverifiedWeightsWarning"
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The seeded weight files (one flat folder) and PNG sets of the golden script."""
    root = tmp_path_factory.mktemp("perceptual")
    return {
        "dir": root / "weights",
        "weights": fixtures.write_weights(root / "weights"),
        "sets": fixtures.write_images(root / "images"),
    }


@pytest.fixture(scope="module")
def features(seeded: dict) -> dict:
    """Inception features of the FID sets, in both modes (the costly part: 32 forward passes)."""
    images = {
        name: fixtures.read_images(seeded["sets"][f"fid_{name}"]) for name in ("real", "fake")
    }
    lookup = {"weights_dir": seeded["dir"], "allow_unverified": True, "download": False}
    return {
        (mode, name): inception.features(images[name], mode=mode, **lookup)
        for mode in inception.MODES
        for name in images
    }


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache (``TORCH_HOME``), no package data, and no network."""
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(weights, "_package_folders", lambda name: [])

    def offline(url: str, dst: str, hash_prefix=None, progress=True) -> None:  # noqa: ANN001
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


# --- golden values ---------------------------------------------------------------------------


@pytest.mark.parametrize("net", list(NETS))
def test_lpips_equals_lpips_package(seeded: dict, net: str) -> None:
    a = fixtures.read_images(seeded["sets"]["lpips_a"])
    b = fixtures.read_images(seeded["sets"]["lpips_b"])
    values = lpips.lpips(
        a, b, net, weights_dir=seeded["dir"], allow_unverified=True, download=False
    )
    expected = torch.tensor(GOLDEN["lpips"][f"lpips-{net}"])
    assert values.shape == (len(expected),)
    torch.testing.assert_close(values.double(), expected.double(), rtol=0, atol=1e-5)
    assert torch.all(lpips.lpips(a, a, net, weights_dir=seeded["dir"], allow_unverified=True) == 0)


def test_ms_ssim_equals_torchmetrics(seeded: dict) -> None:
    a = fixtures.read_images(seeded["sets"]["msssim_a"])
    b = fixtures.read_images(seeded["sets"]["msssim_b"])
    values = ms_ssim.ms_ssim(b, a)
    torch.testing.assert_close(
        values.double(), torch.tensor(GOLDEN["ms-ssim"]).double(), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(ms_ssim.ms_ssim(a, a), torch.ones(len(a)))


@pytest.mark.parametrize("side", [160, 161, 175])
def test_ms_ssim_refuses_images_below_176_px(side: int) -> None:
    image = torch.rand(1, 3, side, 300)
    with pytest.raises(ValueError, match="at least 176x176.*got 1"):
        ms_ssim.ms_ssim(image, image)
    with pytest.raises(ValueError, match="at least 176x176"):
        ms_ssim.ms_ssim(image.transpose(2, 3), image.transpose(2, 3))


def test_ms_ssim_accepts_176_px() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 176, 181, generator=generator)
    y = (x + 0.1 * torch.rand(x.shape, generator=generator)).clamp(0, 1)
    values = ms_ssim.ms_ssim(x, y)
    assert values.shape == (2,) and torch.all((values > 0.5) & (values < 1))


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "metric"), [("pytorch-fid", "fid"), ("clean", "fid-clean")])
def test_fid_equals_reference(features: dict, mode: str, metric: str) -> None:
    value = fid.fid(features[(mode, "real")], features[(mode, "fake")])
    assert value == pytest.approx(GOLDEN[metric], rel=1e-3)


@pytest.mark.slow
def test_inception_features_equal_pytorch_fid(features: dict) -> None:
    for name in ("real", "fake"):
        total = features[("pytorch-fid", name)].double().sum().item()
        assert total == pytest.approx(GOLDEN["features"][f"{name}_sum"], rel=1e-5)
    assert features[("pytorch-fid", "real")].shape == (fixtures.FID_SHAPE[0], 2048)


@pytest.mark.slow
def test_folded_batch_norms_keep_the_features(seeded: dict, features: dict) -> None:
    """The cached model folds its batch norms; the plain network gives the same features."""
    plain = inception.FIDInceptionV3.from_file(seeded["weights"][INCEPTION])
    images = fixtures.read_images(seeded["sets"]["fid_real"][:2])
    expected = inception.features(images, network=plain)
    torch.testing.assert_close(
        features[("pytorch-fid", "real")][:2], expected, rtol=1e-4, atol=1e-5
    )
    assert not any(
        isinstance(m, torch.nn.BatchNorm2d)
        for m in inception.model(seeded["dir"], allow_unverified=True, download=False).modules()
    )


def test_weight_files_are_hashed_once_until_they_change(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = weights.sha256_of
    monkeypatch.setattr(weights, "sha256_of", lambda path: calls.append(path) or original(path))
    (tmp_path / "alex.pth").write_bytes(b"one")
    for _ in range(2):
        weights.resolve("alex.pth", tmp_path, allow_unverified=True)
    assert len(calls) == 1
    (tmp_path / "alex.pth").write_bytes(b"other content")
    weights.resolve("alex.pth", tmp_path, allow_unverified=True)
    assert len(calls) == 2


@pytest.mark.slow
def test_kid_equals_torch_fidelity(features: dict) -> None:
    golden = GOLDEN["kid"]
    mean, std = fid.kid(
        features[("pytorch-fid", "fake")],
        features[("pytorch-fid", "real")],
        subsets=golden["subsets"],
        subset_size=golden["subset_size"],
    )
    assert mean == pytest.approx(golden["mean"], rel=1e-3)
    assert std == pytest.approx(golden["std"], rel=1e-3)


@pytest.mark.parametrize("case", ["separable", "mixed"])
def test_ids_equal_comodgan(case: str) -> None:
    real, fake = fixtures.ids_cases()[case]
    p_ids, u_ids = fid.ids(real, fake)
    assert (p_ids, u_ids) == (GOLDEN["ids"][case]["p-ids"], GOLDEN["ids"][case]["u-ids"])


def test_ids_cases_cover_both_regimes() -> None:
    assert GOLDEN["ids"]["separable"] == {"p-ids": 0.0, "u-ids": 0.0}
    assert 0 < GOLDEN["ids"]["mixed"]["p-ids"] < 0.5 and 0 < GOLDEN["ids"]["mixed"]["u-ids"] < 0.5


@pytest.mark.slow
def test_ids_of_few_images_are_zero(features: dict) -> None:
    """2n <= 2,049 points in 2,048 dimensions are always separable: both scores are 0."""
    real, fake = features[("pytorch-fid", "real")], features[("pytorch-fid", "fake")]
    assert (
        fid.ids(real, fake)
        == (GOLDEN["ids"]["inception"]["p-ids"], GOLDEN["ids"]["inception"]["u-ids"])
        == (0.0, 0.0)
    )


# --- set metric arithmetic -------------------------------------------------------------------


def test_fid_matches_sqrtm_on_full_rank_sets() -> None:
    """With n > d the PSD-root factor path is used; compare with the textbook scipy formula."""
    from scipy import linalg

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (60, 5)), rng.normal(0.3, 1.2, (70, 5))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = a.mean(0) - b.mean(0)
    expected = diff @ diff + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    assert fid.fid(a, b) == pytest.approx(expected, rel=1e-10)
    stats = fid.Statistics.from_moments(a.mean(0), s1)
    assert fid.fid(stats, b) == pytest.approx(expected, rel=1e-10)
    assert fid.fid(a, a) == pytest.approx(0, abs=1e-10)


def test_kid_refuses_sets_smaller_than_the_subset() -> None:
    features = np.zeros((20, 4), dtype=np.float32)
    with pytest.raises(UsageError, match="subset size 1000 is larger than a set"):
        fid.kid(features, features)


def test_kid_of_one_set_against_itself_is_near_zero() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (50, 16))
    y = rng.normal(0, 1, (50, 16))
    far = rng.normal(2, 1, (50, 16))
    near, _ = fid.kid(x, y, subsets=20, subset_size=40)
    distant, _ = fid.kid(far, y, subsets=20, subset_size=40)
    assert abs(near) < 0.05 < distant


# --- weights: lookup order, checksums, offline error -------------------------------------------


def test_published_checksums_agree_with_file_name_prefixes() -> None:
    for name, entry in weights.WEIGHT_FILES.items():
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        stem = name.rsplit(".", 1)[0]
        if "-" in stem:  # torchvision and pytorch-fid names carry the hash prefix
            assert entry.sha256.startswith(stem.rsplit("-", 1)[1]), name
        assert entry.url.endswith("/" + name)


def test_offline_missing_file_is_one_line_naming_file_and_folders(
    isolated: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError) as caught:
        weights.resolve(INCEPTION, weights_dir=empty)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    assert INCEPTION in message and str(empty) in message and str(isolated) in message
    assert "name resolution" in message
    with pytest.raises(UsageError, match=f"{INCEPTION} not found.*downloads are off"):
        weights.resolve(INCEPTION, weights_dir=empty, download=False)


def test_weights_dir_that_is_not_a_folder_is_a_usage_error(isolated: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a folder"):
        weights.resolve(INCEPTION, weights_dir=tmp_path / "missing")


def test_checksum_mismatch_is_refused_unless_allowed(seeded: dict, isolated: Path) -> None:
    with pytest.raises(DataError, match="sha256 .* is not the published"):
        weights.resolve("alex.pth", weights_dir=seeded["dir"])
    weights._WARNED.discard((seeded["dir"] / "alex.pth").resolve())
    with pytest.warns(weights.UnverifiedWeightsWarning, match="alex.pth.*unverified weights"):
        path = weights.resolve("alex.pth", weights_dir=seeded["dir"], allow_unverified=True)
    assert path == seeded["dir"] / "alex.pth"


def test_published_checksum_is_accepted(
    seeded: dict, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = seeded["dir"] / "squeeze.pth"
    entry = weights.WEIGHT_FILES["squeeze.pth"]
    fake = weights.WeightFile(entry.name, weights.sha256_of(path), 0, entry.url, "test")
    monkeypatch.setitem(weights.WEIGHT_FILES, "squeeze.pth", fake)
    assert weights.resolve("squeeze.pth", weights_dir=seeded["dir"]) == path
    assert set(weights.load("squeeze.pth", weights_dir=seeded["dir"])) == set(
        fixtures.head_state("squeeze")
    )


def test_lookup_order_weights_dir_then_hub_cache_then_download(
    seeded: dict, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, source = "vgg.pth", seeded["dir"] / "vgg.pth"
    flat = tmp_path / "flat"
    flat.mkdir()
    downloads = []

    def download(url: str, dst: str, hash_prefix=None, progress=True) -> None:  # noqa: ANN001
        downloads.append((url, progress))
        Path(dst).write_bytes(source.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    assert weights.resolve(name, flat, allow_unverified=True) == isolated / name  # 3. download
    assert downloads == [(weights.WEIGHT_FILES[name].url, True)]
    assert weights.resolve(name, flat, allow_unverified=True) == isolated / name  # 2. hub cache
    (flat / name).write_bytes(source.read_bytes())
    assert weights.resolve(name, flat, allow_unverified=True) == flat / name  # 1. weights_dir
    assert len(downloads) == 1
    assert weights.search_folders(name, flat)[:2] == [flat, isolated]


def test_a_download_with_the_wrong_checksum_is_refused_and_removed(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def download(url: str, dst: str, hash_prefix=None, progress=True) -> None:  # noqa: ANN001
        Path(dst).write_bytes(b"<html>not found</html>")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    with pytest.raises(DataError, match="is not the published"):
        weights.resolve("squeeze.pth")
    assert not (isolated / "squeeze.pth").exists()


def test_lpips_heads_are_found_in_an_installed_package(
    seeded: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    package = tmp_path / "site" / "lpips"
    (package / "weights" / "v0.1").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('the lookup must not import lpips')\n")
    (package / "weights" / "v0.1" / "alex.pth").write_bytes(
        (seeded["dir"] / "alex.pth").read_bytes()
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = weights.resolve("alex.pth", allow_unverified=True, download=False)
    assert found == package / "weights" / "v0.1" / "alex.pth"


def test_unreadable_weight_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "alex.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="cannot be read as a weights-only state dict"):
        weights.read_state_dict(path)


def test_weights_only_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "alex.pth"
    torch.save({"lin0.model.1.weight": torch.zeros(1), "payload": Path("x")}, path)
    with pytest.raises(DataError, match="weights-only"):
        weights.read_state_dict(path)


def test_missing_or_misshapen_tensor_is_named(seeded: dict, tmp_path: Path) -> None:
    state = fixtures.trunk_state("squeeze")
    del state["features.3.squeeze.weight"]
    torch.save(state, tmp_path / "trunk.pth")
    with pytest.raises(DataError, match="'features.3.squeeze.weight' is missing"):
        lpips.LPIPS.from_files("squeeze", tmp_path / "trunk.pth", seeded["weights"]["squeeze.pth"])
    heads = fixtures.head_state("alex")
    heads["lin1.model.1.weight"] = torch.zeros(1, 7, 1, 1)
    torch.save(heads, tmp_path / "heads.pth")
    with pytest.raises(DataError, match=r"'lin1.model.1.weight' has shape \(1, 7, 1, 1\)"):
        lpips.LPIPS.from_files(
            "alex", seeded["weights"]["alexnet-owt-7be5be79.pth"], tmp_path / "heads.pth"
        )


def test_inception_loads_with_or_without_batch_counters(seeded: dict, tmp_path: Path) -> None:
    state = fixtures.inception_state()
    without = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(without, tmp_path / INCEPTION)
    a = inception.FIDInceptionV3.from_file(seeded["weights"][INCEPTION]).state_dict()
    b = inception.FIDInceptionV3.from_file(tmp_path / INCEPTION).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(a[k], state[k]) for k in without if not k.startswith("fc."))
    torch.save({**without, "AuxLogits.fc.weight": torch.zeros(1)}, tmp_path / "aux.pth")
    with pytest.raises(DataError, match="unexpected tensor 'AuxLogits.fc.weight'"):
        inception.FIDInceptionV3.from_file(tmp_path / "aux.pth")


# --- the description table ---------------------------------------------------------------------


def test_description_table_imports_without_torch() -> None:
    code = (
        "import sys; from benchmark.perceptual import PERCEPTUAL_METRICS; "
        "assert 'torch' not in sys.modules, 'torch was imported'; print(len(PERCEPTUAL_METRICS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(len(PERCEPTUAL_METRICS))


@pytest.mark.parametrize("name", sorted(PERCEPTUAL_METRICS))
def test_description_table_entries(name: str) -> None:
    entry = PERCEPTUAL_METRICS[name]
    assert entry["direction"] in ("lower", "higher") and entry["kind"] in ("image", "set")
    assert all(file in weights.WEIGHT_FILES for file in entry["weights"])
    module, attribute = str(entry["function"]).split(":")
    assert callable(getattr(__import__(module, fromlist=[attribute]), attribute))
    versions = GOLDEN["versions"]
    package = {
        "lpips": "lpips",
        "torchmetrics": "torchmetrics",
        "pytorch-fid": "pytorch-fid",
        "clean-fid": "clean-fid",
        "torch-fidelity": "torch-fidelity",
    }
    named = [p for p in package if str(entry["reference"]).startswith(p + " ")]
    for p in named:  # the version the table names is the one the golden values came from
        assert str(entry["reference"]).startswith(f"{p} {versions[package[p]]}")
    assert PERCEPTUAL_METRICS["lpips-alex"]["aliases"] == ("lpips",)
