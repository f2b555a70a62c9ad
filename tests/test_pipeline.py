"""The batch-major pipeline: same records as the old mask-major loop, decoded and masked once,
the indexed-method hook, per-batch time limits, dying workers, default batch sizes."""

from __future__ import annotations

import os
import time

import pytest
import torch

from benchmark.checks import invalid_images, prediction_to_cpu
from benchmark.datasets import TensorDataset, build_dataset
from benchmark.masking import MaskGenerator, build_mask
from benchmark.method import METHODS, Method, composite
from benchmark.records import RecordStore, read_json
from benchmark.run.config import RunConfig
from benchmark.run.pipeline import measure
from benchmark.run.plan import MAX_BATCH, batch_for
from benchmark.run.runner import run_benchmark
from methods.floors import MeanFill

pytestmark = pytest.mark.usefixtures("single_torch_thread")

FIELDS = ("psnr", "ssim", "hole_psnr", "hole_l1", "mask_ratio", "status")


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


def records_by_key(result) -> dict[tuple, dict]:
    return {
        (r["method"], r["mask"], r["index"]): r
        for r in RecordStore(result.run_dir / "records.jsonl")
    }


def mask_major_reference(methods, masks, limit, batch_size, seed=0) -> dict[tuple, dict]:
    """The evaluation order of the runner before the batch-major pipeline: for each mask, for
    each method, batch by batch, decoding and drawing the masks again for every pair."""
    dataset = build_dataset("skimage-patches", "test")
    out = {}
    for mask_name in masks:
        generator = build_mask(mask_name)
        for method_name in methods:
            method = METHODS.build(method_name)
            for start in range(0, limit, batch_size):
                batch = list(range(start, min(limit, start + batch_size)))
                originals = dataset.images(batch)
                drawn = generator.batch(batch, *originals.shape[-2:], seed)
                masked = originals.masked_fill(drawn, 0.0)
                prediction = prediction_to_cpu(
                    method.inpaint(masked.clone(), drawn.clone()), masked
                )
                problems = invalid_images(prediction)
                values, _ = measure(originals, prediction, drawn)
                ratios = drawn.flatten(1).float().mean(1).tolist()
                for j, index in enumerate(batch):
                    record = {"mask_ratio": ratios[j]}
                    if problems[j] is None:
                        record.update({k: v[j] for k, v in values.items()}, status="ok")
                    out[(method_name, mask_name, index)] = record
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_batch_major_records_equal_the_mask_major_order(tmp_path, workers):
    methods, masks = ["telea", "nearest", "mean"], ["lines", "square"]
    reference = mask_major_reference(methods, masks, limit=30, batch_size=30)
    result = run(tmp_path, methods=methods, masks=masks, limit=30, batch_size=7, workers=workers)
    records = records_by_key(result)
    assert records.keys() == reference.keys()
    for key, expected in reference.items():
        for field in FIELDS:
            assert records[key][field] == expected[field], (key, field)


class CountingDataset(TensorDataset):
    calls: list[list[int]] = []

    def images(self, indices):
        CountingDataset.calls.append(list(indices))
        return super().images(indices)


def test_each_batch_is_decoded_once_and_masked_once_per_mask_type(
    tmp_path, temp_dataset, monkeypatch
):
    pixels = build_dataset("skimage-patches", "test").pixels[:20]
    name = temp_dataset("test-counting", lambda **kw: CountingDataset(pixels, "test"))
    draws: list[tuple[str, list[int]]] = []
    original_batch = MaskGenerator.batch

    def counting_batch(self, indices, *args, **kwargs):
        draws.append((self.name, list(indices)))
        return original_batch(self, indices, *args, **kwargs)

    monkeypatch.setattr(MaskGenerator, "batch", counting_batch)
    # in this process, where the counts can be seen (CPU methods otherwise run in a worker)
    monkeypatch.setattr("benchmark.run.executors.fork_available", lambda: False)
    CountingDataset.calls = []
    result = run(
        tmp_path, dataset=name, methods=["telea", "nearest", "mean"], masks=["lines", "square"]
    )
    assert result.computed == 3 * 2 * 20
    assert CountingDataset.calls == [list(range(10)), list(range(10, 20))]
    assert sorted(draws) == sorted(
        (mask, list(range(start, start + 10))) for mask in ("lines", "square") for start in (0, 10)
    )


def test_a_method_with_inpaint_indexed_gets_the_indices_and_the_mask_name(
    tmp_path, temp_method, monkeypatch
):
    calls = []
    # in this process, where the calls can be seen (CPU methods otherwise run in a worker)
    monkeypatch.setattr("benchmark.run.executors.fork_available", lambda: False)

    class Indexed(Method):
        def inpaint(self, masked, mask):
            raise AssertionError("inpaint_indexed must be called instead")

        def inpaint_indexed(self, masked, mask, indices, mask_name):
            calls.append((list(indices), mask_name))
            return MeanFill().inpaint(masked, mask)

    name = temp_method("test-indexed", Indexed)
    result = run(tmp_path, methods=[name], masks=["lines:max_lines=3", "square"], limit=12)
    assert result.failed == 0 and result.computed == 24
    assert sorted(calls) == sorted(
        [(list(range(0, 10)), "lines:max_lines=3"), (list(range(10, 12)), "lines:max_lines=3")]
        + [(list(range(0, 10)), "square"), (list(range(10, 12)), "square")]
    )


def test_long_exception_messages_are_truncated_in_records(tmp_path, temp_method):
    class Verbose(Method):
        def inpaint(self, masked, mask):
            raise RuntimeError("x" * 5000 + "\nsecond line")

    name = temp_method("test-verbose", Verbose)
    records = records_by_key(run(tmp_path, methods=[name], limit=5))
    for record in records.values():
        assert record["status"].startswith("failed: RuntimeError: xxx")
        assert len(record["status"]) <= len("failed: ") + 300 and "\n" not in record["status"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stuck_batch_times_out_and_the_run_goes_on(tmp_path, temp_method, workers):
    class StuckOnImage10(Method):
        def inpaint(self, masked, mask):
            if (masked.flatten(1).sum(1) == self.target).any():  # the batch holding image 10
                time.sleep(3600)
            return MeanFill().inpaint(masked, mask)

    dataset = build_dataset("skimage-patches", "test")
    target = dataset.images([10])[0]
    StuckOnImage10.target = None
    name = temp_method("test-stuck", StuckOnImage10)

    started = time.monotonic()
    square = build_mask("square").batch([10], 32, 32)
    StuckOnImage10.target = target.masked_fill(square[0], 0.0).sum()
    result = run(tmp_path, methods=[name, "mean"], limit=30, timeout=1.0, workers=workers)
    assert time.monotonic() - started < 60
    records = records_by_key(result)
    stuck = sorted(i for (m, _, i), r in records.items() if m == name and r["status"] != "ok")
    assert stuck == list(range(10, 20 if workers == 1 else 15))  # 2 workers: units of 5
    assert records[(name, "square", 10)]["status"] == "failed: timed out after 1 s"
    assert all(r["status"] == "ok" for (m, _, _), r in records.items() if m == "mean")
    assert len(records) == 60


def test_a_dying_worker_is_retried_once_and_nothing_is_written_twice(tmp_path, temp_method):
    marker = tmp_path / "died-once"

    class DiesOnce(Method):
        def inpaint(self, masked, mask):
            if not marker.exists():
                marker.write_text("x")
                os._exit(3)  # the worker process dies mid-unit
            return MeanFill().inpaint(masked, mask)

    class AlwaysDies(Method):
        def inpaint(self, masked, mask):
            os._exit(4)

    once = temp_method("test-dies-once", DiesOnce)
    result = run(tmp_path, methods=[once], limit=20, workers=2)
    assert result.failed == 0 and result.computed == 20
    lines = (result.run_dir / "records.jsonl").read_text().splitlines()
    assert len(lines) == 20  # the retried unit is written once

    always = temp_method("test-dies", AlwaysDies)
    result = run(tmp_path, name="always", methods=[always], limit=20, workers=2)
    statuses = {r["status"] for r in records_by_key(result).values()}
    assert statuses == {"failed: worker process died (exit code 4)"}
    assert len((result.run_dir / "records.jsonl").read_text().splitlines()) == 20


def test_workers_above_the_core_count_are_capped_with_a_warning(tmp_path, capsys):
    from benchmark.run.config import default_workers

    result = run(tmp_path, workers=default_workers() + 7, limit=4)
    assert "warning: --workers" in capsys.readouterr().err
    assert read_json(result.run_dir / "run.json")["config"]["workers"] == default_workers()


def test_default_batch_size_bounds_batch_memory_by_image_size():
    assert batch_for((32, 32), None) == MAX_BATCH
    assert batch_for((256, 256), None) == MAX_BATCH
    assert batch_for((512, 512), None) == 85  # 85 * 512 * 512 * 3 * 4 bytes <= 256 MiB
    assert batch_for((4096, 4096), None) == 1
    assert batch_for((512, 512), 300) == 300  # an explicit --batch-size wins


def test_mask_ratio_range_reaches_every_generator(tmp_path):
    result = run(tmp_path, masks=["lines", "square"], limit=15, mask_ratio=(0.1, 0.2))
    ratios = [r["mask_ratio"] for r in records_by_key(result).values()]
    assert len(ratios) == 30 and all(0.1 <= r <= 0.2 for r in ratios)
    assert read_json(result.run_dir / "run.json")["identity"]["mask_ratio"] == [0.1, 0.2]


def test_driver_thread_and_worker_pool_together_give_the_records_of_one_worker(
    tmp_path, monkeypatch
):
    """With a GPU, GPU methods run in a driver thread while the pool does the CPU methods; the
    same split is forced here on the CPU (mean in the driver, telea and nearest in the pool)."""
    import benchmark.run.runner

    settings = dict(methods=["telea", "mean", "nearest"], masks=["lines", "square"], limit=24)
    one = records_by_key(run(tmp_path, name="one", workers=1, **settings))
    monkeypatch.setattr(benchmark.run.runner, "runs_in_driver", lambda ctx, name: name == "mean")
    split = records_by_key(run(tmp_path, name="split", workers=2, batch_size=8, **settings))
    assert split.keys() == one.keys() and len(one) == 3 * 2 * 24
    for key in one:
        for field in FIELDS:
            assert split[key][field] == one[key][field], (key, field)


@pytest.mark.parametrize(
    "value, position, reason",
    [
        (float("nan"), 0, "NaN or infinite"),
        (float("nan"), -1, "NaN or infinite"),
        (float("inf"), 777, "NaN or infinite"),
        (float("-inf"), 33, "NaN or infinite"),
        (1.5, 5, "must lie in [0, 1]"),
        (-0.01, 100, "must lie in [0, 1]"),
        (1 + 5e-5, 9, None),  # float rounding: clamped later, not a failure
    ],
)
def test_invalid_images_finds_each_bad_value_wherever_it_is(value, position, reason):
    prediction = torch.rand(4, 3, 24, 40)
    prediction[2].view(-1)[position] = value
    found = invalid_images(prediction)
    assert found[0] is None and found[1] is None and found[3] is None
    assert (found[2] is None) if reason is None else (reason in found[2])


def test_nan_and_inf_together_in_one_image_are_found():
    prediction = torch.rand(2, 3, 8, 8)
    prediction[1, 0, 0, 0], prediction[1, 2, 7, 7] = float("inf"), float("nan")
    assert invalid_images(prediction)[1] == "prediction contains NaN or infinite values"


def test_measure_in_chunks_equals_measure_in_one_piece(monkeypatch):
    import benchmark.run.pipeline as pipeline

    torch.manual_seed(3)
    originals = torch.randint(0, 256, (9, 3, 130, 70)).float() / 255
    masks = build_mask("lines").batch(list(range(9)), 130, 70, 0)
    prediction = torch.rand(9, 3, 130, 70) * 1.2 - 0.1  # some values to clamp
    prediction[4, 1, 60, 30] = float("nan")
    monkeypatch.setattr(pipeline, "MEASURE_CHUNK_VALUES", 2 * originals[0].numel())
    assert pipeline.measure_chunk(9, originals[0].numel(), torch.device("cpu")) == 2
    chunked, kept = pipeline.measure(originals, prediction, masks, keep=True)
    monkeypatch.setattr(pipeline, "MEASURE_CHUNK_VALUES", 2**40)
    whole, kept_whole = pipeline.measure(originals, prediction, masks, keep=True)
    assert chunked == whole
    assert torch.equal(kept, kept_whole)
    filled = torch.nan_to_num(prediction).clamp(0, 1)
    assert torch.equal(kept, composite(originals, filled, masks))


class Vandal(Method):
    """Writes over both of its inputs in place before answering."""

    device = "auto"

    def inpaint(self, masked, mask):
        masked.fill_(1.0)
        mask.fill_(False)
        return torch.full_like(masked, 0.5)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_method_editing_its_inputs_in_place_changes_nothing_measured(
    tmp_path, temp_method, workers
):
    temp_method("test-vandal", Vandal)
    both = run(tmp_path, "both", methods=["test-vandal", "mean"], masks=["lines"], workers=workers)
    alone = run(tmp_path, "alone", methods=["mean"], masks=["lines"], workers=workers)
    together, reference = records_by_key(both), records_by_key(alone)
    for key, expected in reference.items():
        assert {f: together[key][f] for f in FIELDS} == {f: expected[f] for f in FIELDS}
        vandal = together[("test-vandal", key[1], key[2])]
        assert vandal["status"] == "ok" and vandal["mask_ratio"] == expected["mask_ratio"]
        assert vandal["psnr"] < 60  # measured on the true mask (an emptied one would give 100)


@pytest.mark.parametrize(
    "value, words",
    [
        (float("nan"), "contains NaN or infinite values"),
        (float("inf"), "contains NaN or infinite values"),
        (float("-inf"), "contains NaN or infinite values"),
        (1.25, "values must lie in [0, 1], got [0, 1.25]"),
        (-0.5, "values must lie in [0, 1], got [-0.5, 1]"),
    ],
)
def test_check_images_names_the_problem(value, words):
    from benchmark.checks import check_images
    from benchmark.errors import ContractError

    images = torch.zeros(3, 3, 9, 9)
    images[0, 0, 0, 0] = 1.0
    check_images(images, "data set 'x'")  # valid: no error
    images[2, 1, 4, 4] = value
    with pytest.raises(ContractError) as error:
        check_images(images, "data set 'x'")
    assert str(error.value) == f"data set 'x': {words}"


def test_a_method_with_max_batch_is_called_chunk_by_chunk_with_the_same_records(
    tmp_path, temp_method, monkeypatch
):
    """max_batch = 3: calls of at most 3 images, records equal to the same method unchunked."""
    from methods.floors import MeanFill

    sizes = []
    # in this process, where the calls can be seen (CPU methods otherwise run in a worker)
    monkeypatch.setattr("benchmark.run.executors.fork_available", lambda: False)

    class Chunked(MeanFill):
        max_batch = 3

        def inpaint(self, masked, mask):
            sizes.append(len(masked))
            return super().inpaint(masked, mask)

    chunked = temp_method("test-chunked", Chunked)
    whole = temp_method("test-whole", type("Whole", (MeanFill,), {}))
    result = run(tmp_path, methods=[chunked, whole], limit=20, batch_size=10)
    assert sizes and max(sizes) <= 3 and sum(sizes) == 20
    records = records_by_key(result)
    for index in range(20):
        a, b = records[(chunked, "square", index)], records[(whole, "square", index)]
        assert a["status"] == b["status"] == "ok"
        assert all(a[m] == b[m] for m in ("psnr", "ssim", "hole_psnr", "hole_l1"))
