"""Set metrics in runs (FID, fid-clean, KID, P-IDS, U-IDS): equal to the library on the run's
composites, features stored with the records and reused on resume, real features cached, the
same values whatever the number of workers, and shown with n and the small-n warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import perceptual_fixtures  # tests/perceptual_fixtures.py (pytest's pythonpath)
import pytest
import torch
from PIL import Image

from benchmark.cli import main
from benchmark.method import composite
from benchmark.perceptual import inception, weights
from benchmark.perceptual.feature_store import FeatureStore, cache_folder
from benchmark.perceptual.fid import fid, ids, kid
from benchmark.perceptual.selection import ExtraMetrics
from benchmark.records import RecordStore
from benchmark.run.config import RunConfig
from benchmark.run.plan import build_plan
from benchmark.run.runner import run_benchmark
from benchmark.run.set_metrics import entry_features
from benchmark.tables import render_console

SIZE = 40
COUNT = 5
SETS = ["fid", "fid-clean", "kid", "p-ids", "u-ids"]
#: every case runs the FID Inception (299x299) on each image: seconds per run
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> str:
    """Seeded Inception weights under the reference name (need --allow-unverified-weights)."""
    folder = tmp_path_factory.mktemp("weights")
    fixtures = perceptual_fixtures
    fixtures._save(fixtures.inception_state(), folder / inception.WEIGHTS)
    return str(folder)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(11)
    for k in range(COUNT):
        base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(base).resize((SIZE, SIZE), Image.BICUBIC).save(folder / f"{k:02d}.png")
    return str(folder)


@pytest.fixture(autouse=True)
def feature_cache(tmp_path, monkeypatch) -> Path:
    """A fresh real-feature cache for every test."""
    monkeypatch.setenv("INPAINT_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def settings(photos: str, weights_dir: str, out, **overrides) -> RunConfig:
    values = dict(
        methods=["telea", "ns"],
        masks=["square"],
        dataset=f"folder:{photos}",
        size=SIZE,
        workers=1,
        device="cpu",
        progress=False,
        out=str(out),
        metrics=["psnr", *SETS],
        weights_dir=weights_dir,
        allow_unverified_weights=True,
    )
    values.update(overrides)
    return RunConfig(**values)


def set_metrics(result) -> dict[str, dict]:
    return {e["method"]: e["set_metrics"] for e in result.leaderboard["tables"][0]["entries"]}


def expected_values(config: RunConfig) -> dict[str, dict[str, float]]:
    """Every set metric of every method, from the library on the same composites."""
    ctx = build_plan(config).context
    index = list(range(COUNT))
    target = ctx.dataset.images(index)
    mask = ctx.masks["square"].batch(index, SIZE, SIZE, ctx.seed, None)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the run computes features
    try:
        net = inception.model(config.weights_dir, True, False)
        real = {m: inception.features(target, m, network=net).numpy() for m in inception.MODES}
        out = {}
        for name, method in ctx.methods.items():
            filled = method.inpaint(target.clone().masked_fill_(mask, 0.0), mask.clone())
            result = composite(target, filled.float().clamp(0, 1).nan_to_num(0.0), mask)
            fake = {m: inception.features(result, m, network=net).numpy() for m in inception.MODES}
            p_ids, u_ids = ids(real["pytorch-fid"], fake["pytorch-fid"])
            out[name] = {
                "fid": fid(real["pytorch-fid"], fake["pytorch-fid"]),
                "fid-clean": fid(real["clean"], fake["clean"]),
                "kid": kid(fake["pytorch-fid"], real["pytorch-fid"], subset_size=COUNT)[0],
                "p-ids": p_ids,
                "u-ids": u_ids,
            }
    finally:
        torch.set_num_threads(before)
    return out


def test_set_metrics_equal_the_library_and_resume_without_features(
    photos, weights_dir, tmp_path, monkeypatch, feature_cache
):
    config = settings(photos, weights_dir, tmp_path / "run")
    result = run_benchmark(config)
    assert result.computed == 2 * COUNT and result.failed == 0
    got = set_metrics(result)
    expected = expected_values(config)
    for method, values in expected.items():
        for name, value in values.items():
            assert got[method][name]["n"] == COUNT
            assert got[method][name]["value"] == pytest.approx(value, rel=1e-9, abs=1e-12), (
                method,
                name,
            )
    assert got["telea"]["kid"]["subset_size"] == COUNT and got["telea"]["kid"]["std"] >= 0
    assert got["telea"]["fid"]["value"] != got["ns"]["fid"]["value"]  # not a constant
    # features on disk, referenced by every record; the real images' in the cache
    store = FeatureStore(result.run_dir)
    for record in RecordStore(result.run_dir / "records.jsonl"):
        assert set(record["features"]) == {"pytorch-fid", "clean"}
        assert all(store.resolves(ref) for ref in record["features"].values())
    assert len(list((feature_cache / "real-features").glob("*.npy"))) == 2
    # the run folder keeps the real features too: it alone can be compared
    by_index = {
        r["index"]: r for r in RecordStore(result.run_dir / "records.jsonl") if r["method"] == "ns"
    }
    real, fake = entry_features(
        result.run_dir, result.leaderboard, by_index, list(range(COUNT)), "pytorch-fid"
    )
    assert fid(real, fake) == got["ns"]["fid"]["value"]

    def no_features(self, images, mode):
        raise AssertionError("features computed again")

    monkeypatch.setattr(ExtraMetrics, "mode_features", no_features)
    again = run_benchmark(config)  # every record, its features and the real ones reused
    assert (again.computed, again.reused) == (0, 2 * COUNT)
    assert set_metrics(again) == got


def test_workers_one_and_two_give_identical_set_metrics(photos, weights_dir, tmp_path):
    metrics = ["fid", "kid"]
    one = run_benchmark(settings(photos, weights_dir, tmp_path / "one", metrics=metrics))
    two = run_benchmark(
        settings(photos, weights_dir, tmp_path / "two", metrics=metrics, workers=2, batch_size=2)
    )
    assert set_metrics(one) == set_metrics(two)


def test_tables_print_n_and_warn_that_small_n_fid_is_not_comparable(photos, weights_dir, tmp_path):
    result = run_benchmark(settings(photos, weights_dir, tmp_path / "run", metrics=["fid", "kid"]))
    console = render_console(result.leaderboard)
    markdown = (result.run_dir / "leaderboard.md").read_text()
    for text in (console, markdown):
        assert "FID ↓" in text and "KID ↓" in text
        assert f"(n={COUNT})" in text
        assert f"FID over {COUNT} images (fewer than 10,000)" in text
        assert "use KID" in text
        assert "pytorch-fid 0.3.0" in text  # the variant and its reference
    saved = json.loads((result.run_dir / "leaderboard.json").read_text())
    entry = saved["tables"][0]["entries"][0]
    assert entry["set_metrics"]["fid"]["n"] == COUNT
    assert main(["report", str(result.run_dir)]) == 0  # the HTML report shows them too
    html = (result.run_dir / "report.html").read_text()
    assert "FID ↓" in html and f"(n={COUNT})" in html and "not comparable with published" in html


def test_records_without_features_are_measured_again_and_never_mixed(photos, weights_dir, tmp_path):
    out = tmp_path / "run"
    plain = run_benchmark(settings(photos, weights_dir, out, metrics=["psnr"]))
    assert plain.computed == 2 * COUNT
    asked = run_benchmark(settings(photos, weights_dir, out, metrics=["fid"]))
    assert asked.computed == 2 * COUNT  # no features stored: measured, said by the count
    # a deleted features file and a reference that points outside the run: measured again
    store = RecordStore(out / "records.jsonl")
    first = next(iter(store))
    (out / "features" / first["features"]["pytorch-fid"].split("#")[0]).unlink()
    tampered = dict(next(r for r in store if r["index"] != first["index"]))
    tampered["features"] = {"pytorch-fid": "../../../etc/passwd#0"}
    store.append([tampered])
    rerun = run_benchmark(settings(photos, weights_dir, out, metrics=["fid"]))
    assert rerun.computed >= 2 and rerun.failed == 0
    assert all(e["set_metrics"]["fid"]["value"] is not None for e in set_metrics_entries(rerun))
    back = run_benchmark(settings(photos, weights_dir, out, metrics=["psnr"]))
    assert back.computed == 0  # the pixel metrics never recomputed for a set metric


def set_metrics_entries(result) -> list[dict]:
    return result.leaderboard["tables"][0]["entries"]


def test_a_corrupt_real_feature_cache_is_computed_again(photos, weights_dir, tmp_path):
    config = settings(photos, weights_dir, tmp_path / "run", metrics=["fid"])
    first = set_metrics(run_benchmark(config))
    (cached,) = (cache_folder() / "real-features").glob("*.npy")
    cached.write_bytes(b"not a numpy file")
    second = set_metrics(run_benchmark(config))  # records reused, the reals computed again
    assert second == first
    assert np.load(cached).shape == (COUNT, inception.FEATURES)


def test_missing_inception_weights_are_one_line_before_any_work(
    photos, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(entry, target):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(weights, "_download", offline)
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [
        "run", "--methods", "telea", "--masks", "square", "--dataset", f"folder:{photos}",
        "--size", str(SIZE), "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu",
        "--metrics", "psnr,fid", "--weights-dir", str(empty),
    ]  # fmt: skip
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{inception.WEIGHTS} not found" in err and str(empty) in err
    assert not (tmp_path / "run").exists()


def test_an_interrupted_run_keeps_its_features_and_the_next_computes_the_set_values(
    photos, weights_dir, tmp_path, monkeypatch
):
    import benchmark.run.runner as runner

    config = settings(photos, weights_dir, tmp_path / "run", metrics=["fid"])

    def ctrl_c(*args):  # Ctrl-C while the real images' features are computed
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(runner, "_real_features", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            run_benchmark(config)
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert board["config"]["set_metrics"] == "not computed: the run was interrupted"
    assert all(not e.get("set_metrics") for e in board["tables"][0]["entries"])
    resumed = run_benchmark(config)
    assert resumed.computed == 0  # the records and their features were kept
    assert all(v["fid"]["value"] is not None for v in set_metrics(resumed).values())


def test_a_damaged_features_file_remeasures_only_its_records(photos, weights_dir, tmp_path):
    config = settings(photos, weights_dir, tmp_path / "run", metrics=["fid"], batch_size=2)
    first = run_benchmark(config)
    store = RecordStore(tmp_path / "run" / "records.jsonl")
    damaged = next(iter(store))["features"]["pytorch-fid"].split("#")[0]
    holders = sum(r["features"]["pytorch-fid"].startswith(damaged) for r in store)
    (tmp_path / "run" / "features" / damaged).write_bytes(b"garbage")
    again = run_benchmark(config)
    assert 0 < again.computed == holders < first.computed  # only the records that lost theirs
    assert set_metrics(again) == set_metrics(first)


def test_garbage_inception_weights_are_one_line_before_any_work(photos, tmp_path, capsys):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / inception.WEIGHTS).write_bytes(b"\x80not a state dict" * 100)
    args = [
        "run", "--methods", "telea", "--masks", "square", "--dataset", f"folder:{photos}",
        "--size", str(SIZE), "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu",
        "--metrics", "fid", "--weights-dir", str(folder), "--allow-unverified-weights",
    ]  # fmt: skip
    assert main(args) == 1
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("error")]
    assert "Traceback" not in stderr and len(err) == 1 and "cannot be read" in err[0] and inception.WEIGHTS in err[0]
    assert not (tmp_path / "run").exists()
