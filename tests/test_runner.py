"""The evaluation loop end to end, in process: records, results files, resume, failures, masks."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmark.datasets import TensorDataset
from benchmark.errors import ContractError, UsageError
from benchmark.method import Method
from benchmark.records import RecordStore, read_json
from benchmark.run.artifacts import slugify
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark
from methods.floors import MeanFill

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def run(tmp_path, name="run", **overrides):
    settings = dict(
        methods=["mean"],
        masks=["square"],
        limit=20,
        batch_size=10,
        workers=1,
        progress=False,
        out=str(tmp_path / name),
    )
    settings.update(overrides)
    return run_benchmark(RunConfig(**settings))


def records_of(result) -> list[dict]:
    return list(RecordStore(result.run_dir / "records.jsonl"))


def by_key(records) -> dict[tuple, dict]:
    return {(r["method"], r["mask"], r["index"]): r for r in records}


def comparable(leaderboard) -> list:
    """Tables without timings (which differ between runs by nature)."""
    tables = json.loads(json.dumps(leaderboard))["tables"]
    for table in tables:
        for entry in table["entries"]:
            entry.pop("images_per_s")
    return tables


def mean_fill(masked, mask):
    return MeanFill().inpaint(masked, mask)


# -- a complete run -------------------------------------------------------------------------------
def test_run_writes_every_record_and_the_results_files(tmp_path):
    result = run(tmp_path, methods=["telea", "mean"], masks=["lines", "square"], limit=24)
    records = records_of(result)
    keys = {(r["method"], r["mask"], r["index"]) for r in records}
    assert keys == set(itertools.product(["telea", "mean"], ["lines", "square"], range(24)))
    assert len(records) == 96 and result.computed == 96 and result.reused == 0
    assert all(r["status"] == "ok" for r in records)
    for r in records:
        for field in ("psnr", "ssim", "hole_psnr", "hole_l1", "mask_ratio", "seconds"):
            assert isinstance(r[field], float), field
        assert 0 < r["mask_ratio"] < 1 and -1 <= r["ssim"] <= 1

    run_info = read_json(result.run_dir / "run.json")
    assert run_info["status"] == "complete"
    assert run_info["config"]["methods"] == ["telea", "mean"]
    assert run_info["config"]["limit"] == 24 and run_info["config"]["seed"] == 0
    assert run_info["identity"]["dataset"] == "skimage-patches"
    assert {"torch", "kornia", "numpy", "opencv", "scikit-image"} <= set(run_info["versions"])
    assert run_info["device"].startswith(("cpu", "cuda"))
    assert run_info["started"] and run_info["finished"] >= run_info["started"]
    assert run_info["images"] == 24 and run_info["computed"] == 96
    assert "git_revision" in run_info

    board = read_json(result.run_dir / "leaderboard.json")
    assert [t["mask"] for t in board["tables"]] == ["lines", "square"]
    for table in board["tables"]:
        assert [e["method"] for e in table["entries"]] == ["telea", "mean"]  # telea beats mean
        assert all(e["n"] == 24 and e["failed"] == 0 for e in table["entries"])
    markdown = (result.run_dir / "leaderboard.md").read_text(encoding="utf-8")
    assert "telea" in markdown and "mean" in markdown and "## Mask `square`" in markdown
    assert comparable(board) == comparable(result.leaderboard)


def test_rerun_reuses_everything(tmp_path):
    first = run(tmp_path, methods=["telea", "mean"], masks=["lines"])
    second = run(tmp_path, methods=["telea", "mean"], masks=["lines"])
    assert second.computed == 0 and second.reused == 40
    assert second.leaderboard["tables"] == first.leaderboard["tables"]  # timings reused too
    assert len(records_of(second)) == 40
    assert read_json(second.run_dir / "run.json")["status"] == "complete"


def test_changed_method_code_or_weights_are_recomputed_not_reused(tmp_path, monkeypatch):
    import benchmark.run.plan

    first = run(tmp_path, methods=["telea"])
    fingerprint = records_of(first)[0]["fingerprint"]
    assert "opencv" in fingerprint and "code " in fingerprint
    monkeypatch.setattr(
        benchmark.run.plan, "code_fingerprint", lambda method: fingerprint + " (edited)"
    )
    second = run(tmp_path, methods=["telea"])
    assert second.computed == 20 and second.reused == 0
    assert second.leaderboard["tables"][0]["entries"][0]["n"] == 20  # old rows not mixed in


def test_larger_limit_computes_only_the_new_images(tmp_path):
    run(tmp_path, limit=20)
    more = run(tmp_path, limit=35)
    assert more.computed == 15 and more.reused == 20
    fewer = run(tmp_path, limit=10)
    assert fewer.computed == 0 and fewer.reused == 10
    assert fewer.leaderboard["tables"][0]["entries"][0]["n"] == 10


def test_a_different_seed_in_the_same_folder_is_refused(tmp_path):
    run(tmp_path, seed=0)
    with pytest.raises(UsageError, match="seed") as info:
        run(tmp_path, seed=1)
    assert info.value.exit_code == 2
    assert len(RecordStore(tmp_path / "run" / "records.jsonl")) == 20  # untouched


def _tiny_factory(pixels: np.ndarray):
    def tiny(*, split: str = "test", size=None, data_dir=None) -> TensorDataset:
        return TensorDataset(pixels, split)

    return tiny


def _tiny_pixels(n: int = 12, side: int = 24) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def test_runs_on_any_registered_dataset(tmp_path, temp_dataset):
    name = temp_dataset("test-tiny", _tiny_factory(_tiny_pixels()))
    result = run(tmp_path, dataset=name, limit=None, methods=["telea"], masks=["lines"])
    assert result.computed == 12  # no limit: every image
    info = read_json(result.run_dir / "run.json")
    assert info["image_size"] == [24, 24] and info["dataset_size"] == 12


def test_dataset_breaking_the_contract_stops_the_run_with_a_clear_error(tmp_path, temp_dataset):
    class TooBright(TensorDataset):
        def images(self, indices):
            return super().images(indices) * 2

    name = temp_dataset("test-bright", lambda **kw: TooBright(_tiny_pixels(), "test"))
    with pytest.raises(ContractError, match="test-bright.*must lie in \\[0, 1\\]"):
        run(tmp_path, dataset=name)


def test_a_dataset_alias_continues_the_same_run(tmp_path, temp_dataset):
    name = temp_dataset("test-tiny", _tiny_factory(_tiny_pixels()), "test-tiny-alias")
    run(tmp_path, dataset=name)
    again = run(tmp_path, dataset="test-tiny-alias")
    assert again.computed == 0 and again.reused == 12


def test_a_metric_plugin_is_opt_in_and_never_recomputes_other_records(tmp_path):
    from benchmark.metrics import METRICS, Metric
    from benchmark.tables import render_console

    first = run(tmp_path, limit=5)
    values = {(r["method"], r["index"]): r["psnr"] for r in records_of(first)}
    metric = Metric("test_l2", lambda r, t, m: (r - t).pow(2).flatten(1).mean(1), "L2", False, 4)
    METRICS.add("test_l2", lambda: metric)
    try:
        installed = run(tmp_path, limit=5)  # installed, not asked for: nothing changes
        assert (installed.computed, installed.reused) == (0, first.computed)
        assert not any("test_l2" in r for r in records_of(installed))
        asked = run(tmp_path, limit=5, metrics=["test_l2"])
        assert asked.computed == first.computed  # records lacking it: measured
        console = render_console(asked.leaderboard)
        again = run(tmp_path, limit=5, metrics=["test_l2"])
    finally:
        METRICS.remove("test_l2")
    assert again.computed == 0  # its values are reused
    assert all(r["test_l2"] > 0 for r in records_of(asked))
    assert {(r["method"], r["index"]): r["psnr"] for r in records_of(asked)} == values
    assert asked.leaderboard["tables"][0]["entries"][0]["metrics"]["test_l2"]["n"] == 5
    assert "L2 ↓" in console  # a column of its own, with its label and direction
    assert all("test_l2" in r["metric_provenance"] for r in records_of(asked))


# -- interruption and resume ----------------------------------------------------------------------
def test_interrupted_run_keeps_finished_batches_and_resumes(tmp_path, temp_method):
    """A real Ctrl-C of the driver, sent from the worker's second batch (a KeyboardInterrupt
    the method raises itself only fails its batch: tests/test_process_faults.py)."""
    driver = os.getpid()
    state = {"calls": 0, "interrupt": True}

    class Interrupted(Method):
        def inpaint(self, masked, mask):
            state["calls"] += 1  # counted in the worker process, which takes every batch
            if state["interrupt"] and state["calls"] == 2 and os.getpid() != driver:
                os.kill(driver, signal.SIGINT)
                time.sleep(60)  # the driver kills this worker
            return mean_fill(masked, mask)

    name = temp_method("test-interrupted", Interrupted)
    settings = dict(methods=[name], masks=["square"], limit=30, batch_size=10)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, **settings)
    run_dir = tmp_path / "run"
    store = RecordStore(run_dir / "records.jsonl")
    assert sorted(r["index"] for r in store) == list(range(10))  # the first batch, whole
    info = read_json(run_dir / "run.json")
    assert info["status"] == "interrupted" and info["finished"]
    assert read_json(run_dir / "leaderboard.json")["tables"][0]["entries"][0]["n"] == 10

    state["interrupt"] = False
    resumed = run(tmp_path, **settings)
    assert resumed.computed == 20 and resumed.reused == 10
    assert read_json(run_dir / "run.json")["status"] == "complete"
    fresh = run(tmp_path, name="fresh", **settings)
    assert fresh.computed == 30
    assert comparable(resumed.leaderboard) == comparable(fresh.leaderboard)
    strip = lambda rs: {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in rs.items()}  # noqa: E731
    assert strip(by_key(records_of(resumed))) == strip(by_key(records_of(fresh)))


# -- failing methods ------------------------------------------------------------------------------
def test_failing_batch_is_recorded_and_the_run_goes_on(tmp_path, temp_method):
    state = {"calls": 0}

    class FailsOnSecondBatch(Method):
        def inpaint(self, masked, mask):
            state["calls"] += 1
            if state["calls"] == 2:
                raise RuntimeError("boom on batch 2")
            return mean_fill(masked, mask)

    name = temp_method("test-fails", FailsOnSecondBatch)
    result = run(tmp_path, methods=[name, "mean"], masks=["square"], limit=30)
    records = by_key(records_of(result))
    for i in range(30):
        status = records[(name, "square", i)]["status"]
        if 10 <= i < 20:
            assert status == "failed: RuntimeError: boom on batch 2"
            assert "psnr" not in records[(name, "square", i)]
        else:
            assert status == "ok"
        assert records[("mean", "square", i)]["status"] == "ok"
        assert (
            records[(name, "square", i)]["mask_ratio"]
            == records[("mean", "square", i)]["mask_ratio"]
        )
    assert result.failed == 10
    entry = {e["method"]: e for e in result.leaderboard["tables"][0]["entries"]}[name]
    assert entry["n"] == 20 and entry["failed"] == 10
    assert entry["failure_reasons"] == ["failed: RuntimeError: boom on batch 2"]

    rerun = run(tmp_path, methods=[name, "mean"], masks=["square"], limit=30)
    assert rerun.computed == 10 and rerun.reused == 50  # failed rows are retried
    assert rerun.failed == 0


def test_nan_in_one_image_fails_only_that_image(tmp_path, temp_method):
    class NanOnImage3(Method):
        def inpaint(self, masked, mask):
            out = mean_fill(masked, mask)
            out[3] = torch.where(mask[3], float("nan"), out[3])
            return out

    name = temp_method("test-nan", NanOnImage3)
    result = run(tmp_path, methods=[name], limit=20, batch_size=10)
    records = by_key(records_of(result))
    failed = sorted(i for (_, _, i), r in records.items() if r["status"] != "ok")
    assert failed == [3, 13]
    assert records[(name, "square", 3)]["status"] == (
        "failed: prediction contains NaN or infinite values"
    )
    for i in set(range(20)) - {3, 13}:
        assert np.isfinite(records[(name, "square", i)]["psnr"])


def test_wrong_shape_fails_the_batch_with_a_contract_message(tmp_path, temp_method):
    class WrongShape(Method):
        def inpaint(self, masked, mask):
            return mean_fill(masked, mask)[..., :-1]

    name = temp_method("test-shape", WrongShape)
    result = run(tmp_path, methods=[name, "mean"], limit=20)
    records = by_key(records_of(result))
    for i in range(20):
        status = records[(name, "square", i)]["status"]
        assert status.startswith("failed: prediction: expected shape (10, 3, 32, 32)")
        assert "got (10, 3, 32, 31)" in status
        assert records[("mean", "square", i)]["status"] == "ok"
    assert read_json(result.run_dir / "run.json")["status"] == "complete"


@pytest.mark.parametrize(
    "value, ok", [(1.5, False), (-0.2, False), (1 + 5e-5, True), (-5e-5, True)]
)
def test_out_of_range_values_fail_and_rounding_is_clamped(tmp_path, temp_method, value, ok):
    class OutOfRange(Method):
        def inpaint(self, masked, mask):
            return torch.where(mask, value, mean_fill(masked, mask))

    name = temp_method("test-range", OutOfRange)
    records = records_of(run(tmp_path, methods=[name], limit=10))
    statuses = {r["status"] for r in records}
    if ok:
        assert statuses == {"ok"}
    else:
        assert all(
            s.startswith("failed: prediction values must lie in [0, 1], got [") for s in statuses
        )
        assert all(repr(value) in s for s in statuses)  # the offending value is shown


def test_non_tensor_and_integer_predictions_fail(tmp_path, temp_method):
    class ReturnsNumpy(Method):
        def inpaint(self, masked, mask):
            return masked.numpy()

    class ReturnsUint8(Method):
        def inpaint(self, masked, mask):
            return (masked * 255).to(torch.uint8)

    a = temp_method("test-numpy", ReturnsNumpy)
    b = temp_method("test-uint8", ReturnsUint8)
    records = by_key(records_of(run(tmp_path, methods=[a, b], limit=10)))
    assert records[(a, "square", 0)]["status"] == (
        "failed: prediction: expected a torch.Tensor, got ndarray"
    )
    assert "expected a float tensor" in records[(b, "square", 0)]["status"]


def test_a_method_cannot_change_the_mask_the_harness_measures_with(tmp_path, temp_method):
    class ClearsTheMask(Method):
        def inpaint(self, masked, mask):
            out = mean_fill(masked, mask)
            mask.zero_()  # after this the harness would composite the original everywhere
            return out

    name = temp_method("test-cheat", ClearsTheMask)
    result = run(tmp_path, methods=[name, "mean"], limit=10)
    records = by_key(records_of(result))
    for i in range(10):
        cheat, honest = records[(name, "square", i)], records[("mean", "square", i)]
        assert cheat["mask_ratio"] == honest["mask_ratio"] > 0
        assert cheat["psnr"] == pytest.approx(honest["psnr"])


# -- determinism ----------------------------------------------------------------------------------
def test_mask_ratio_independent_of_batch_size_workers_limit_and_methods(tmp_path):
    variants = [
        dict(batch_size=1, workers=1, limit=40, methods=["mean"]),
        dict(batch_size=7, workers=2, limit=40, methods=["nearest", "mean"]),
        dict(batch_size=256, workers=2, limit=20, methods=["nearest"]),
        dict(batch_size=256, workers=1, limit=40, methods=["mean"], masks=["square", "lines"]),
    ]
    ratios = []
    for n, variant in enumerate(variants):
        settings = {"masks": ["lines", "square"], **variant}
        records = records_of(run(tmp_path, name=f"v{n}", **settings))
        per_key: dict[tuple, float] = {}
        for r in records:
            # every method of a run sees the same mask of an image
            assert per_key.setdefault((r["mask"], r["index"]), r["mask_ratio"]) == r["mask_ratio"]
        ratios.append(per_key)
    reference = ratios[0]
    assert len(reference) == 80 and len(set(reference.values())) > 20  # masks do vary
    for per_key in ratios[1:]:
        assert per_key == {k: reference[k] for k in per_key}


def test_seed_changes_the_masks(tmp_path):
    a = records_of(run(tmp_path, name="s0", seed=0))
    b = records_of(run(tmp_path, name="s1", seed=1))
    ratios = lambda rs: [r["mask_ratio"] for r in sorted(rs, key=lambda r: r["index"])]  # noqa: E731
    assert ratios(a) != ratios(b)


def test_two_workers_give_the_same_metrics_as_one(tmp_path):
    settings = dict(methods=["telea", "ns", "nearest"], masks=["lines"], limit=20, batch_size=20)
    one = by_key(records_of(run(tmp_path, name="w1", workers=1, **settings)))
    two = by_key(records_of(run(tmp_path, name="w2", workers=2, **settings)))
    assert one.keys() == two.keys()
    for key in one:
        for field in ("psnr", "ssim", "hole_psnr", "hole_l1", "mask_ratio", "status"):
            assert one[key][field] == two[key][field], (key, field)


# -- saved images ---------------------------------------------------------------------------------
def _read_png(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image[..., ::-1] if image.ndim == 3 else image  # BGR -> RGB


def test_saved_pngs_reproduce_the_records(tmp_path):
    result = run(
        tmp_path, methods=["telea", "mean"], masks=["lines", "square"], limit=12, save_images=True
    )
    images = result.run_dir / "images"
    checked = changed = 0
    for r in records_of(result):
        name = f"{r['index']:06d}.png"
        original = _read_png(images / "_original" / name)
        hole = _read_png(images / slugify(r["mask"]) / "_mask" / name) > 0
        composite = _read_png(images / slugify(r["mask"]) / slugify(r["method"]) / name)
        assert original.shape == composite.shape == (32, 32, 3) and original.dtype == np.uint8
        assert hole.mean() == pytest.approx(r["mask_ratio"])
        # the composite keeps every known pixel of the original
        np.testing.assert_array_equal(composite[~hole], original[~hole])
        changed += bool((composite[hole] != original[hole]).any())
        a, b = original / 255.0, composite / 255.0
        # identical images (a flat hole filled exactly): scikit-image says inf, we cap at 100 dB
        psnr = 100.0 if np.array_equal(a, b) else peak_signal_noise_ratio(a, b, data_range=1)
        ssim = structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
            channel_axis=2,
        )
        assert r["psnr"] == pytest.approx(psnr, abs=1e-4)
        assert r["ssim"] == pytest.approx(ssim, abs=1e-4)
        diff = np.abs(a - b)[hole]
        assert r["hole_l1"] == pytest.approx(diff.mean(), abs=1e-5)
        checked += 1
    assert checked == 48
    assert changed > 40  # the composites really hold the methods' fills


def test_composite_never_changes_known_pixels(tmp_path, temp_method):
    """A method that scribbles on known pixels is measured only on its hole pixels."""

    class Scribbler(Method):
        def inpaint(self, masked, mask):
            return torch.where(mask, mean_fill(masked, mask), torch.rand_like(masked))

    name = temp_method("test-scribble", Scribbler)
    records = by_key(records_of(run(tmp_path, methods=[name, "mean"], limit=10)))
    for i in range(10):
        a, b = records[(name, "square", i)], records[("mean", "square", i)]
        for field in ("psnr", "ssim", "hole_psnr", "hole_l1"):
            assert a[field] == pytest.approx(b[field], abs=1e-6), field


# -- progress -------------------------------------------------------------------------------------
def test_progress_without_a_terminal_prints_plain_lines(monkeypatch):
    import io

    import benchmark.run.progress as progress_module

    stream = io.StringIO()
    monkeypatch.setattr(progress_module, "LINE_INTERVAL", 0.0)
    totals = {("telea", "lines"): 4, ("mean", "lines"): 4}
    progress = progress_module.Progress(
        totals, {("telea", "lines"): 0, ("mean", "lines"): 2}, stream=stream
    )
    progress.update([{"method": "telea", "mask": "lines"}] * 4)
    progress.update([{"method": "mean", "mask": "lines"}] * 2)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert "done: telea / lines (4 images)" in lines and "done: mean / lines (4 images)" in lines
    assert any(line.startswith("progress: 8/8 (100.0%)") for line in lines)
    assert any(line.startswith("progress: 6/8 (75.0%)") and "ETA" in line for line in lines)


def test_cli_run_without_a_terminal_shows_lines_not_a_carriage_return_bar(run_cli, tmp_path):
    code, out, err = run_cli(
        "run", "--methods", "mean", "--masks", "square", "--limit", "8", "--out", "p"
    )
    assert code == 0, err
    assert "\r" not in err and "done: mean / square (8 images)" in err
