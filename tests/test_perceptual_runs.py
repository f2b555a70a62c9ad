"""Perceptual metrics in runs: ``list metrics``, the ``--metrics`` option and its checks,
per-image LPIPS and MS-SSIM measured on the composites, shown in tables and reused on resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import perceptual_fixtures  # tests/perceptual_fixtures.py (pytest's pythonpath)
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.method import composite
from benchmark.perceptual import PERCEPTUAL_METRICS, weights
from benchmark.perceptual.lpips import lpips
from benchmark.perceptual.ms_ssim import ms_ssim
from benchmark.records import STATUS_OK, RecordStore
from benchmark.run.config import RunConfig
from benchmark.run.plan import build_plan
from benchmark.run.runner import run_benchmark

fixtures = perceptual_fixtures
_save, head_state, trunk_state = fixtures._save, fixtures.head_state, fixtures.trunk_state


# -- list metrics --------------------------------------------------------------------------------
def test_list_metrics_shows_every_perceptual_metric_without_torch():
    code = (
        "import sys\n"
        "from benchmark.cli import main\n"
        "status = main(['list', 'metrics'])\n"
        "assert 'torch' not in sys.modules, 'list metrics imported torch'\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("perceptual metrics"))
    entries = [line for line in lines[start + 1 :] if line.startswith("  ") and line[2] != " "]
    assert [line.split()[0] for line in entries] == list(PERCEPTUAL_METRICS)
    for line, info in zip(entries, PERCEPTUAL_METRICS.values()):
        arrow = "↑" if info["direction"] == "higher" else "↓"
        kind = "per-image" if info["kind"] == "image" else "per-set"
        assert f" {arrow} {kind}: {info['variant']}" in line, line
        follow = lines[lines.index(line) + 1]
        assert follow.strip() == f"reference: {info['reference']}"
    assert "lpips-alex (alias lpips) ↓ per-image" in done.stdout
    assert "fid ↓ per-set" in done.stdout and "ms-ssim ↑ per-image" in done.stdout


# -- runs ----------------------------------------------------------------------------------------
SIZE = 192  # MS-SSIM needs at least 176 px
COUNT = 4


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    """A folder of COUNT seeded 192x192 smooth-ish photos."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    for k in range(COUNT):
        base = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((SIZE, SIZE), Image.BICUBIC)
        image.save(folder / f"{k:02d}.png")
    return str(folder)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> str:
    """Seeded AlexNet trunk and LPIPS heads under their reference names (not the published
    bytes: they need --allow-unverified-weights)."""
    folder = tmp_path_factory.mktemp("weights")
    _save(trunk_state("alex"), folder / "alexnet-owt-7be5be79.pth")
    _save(head_state("alex"), folder / "alex.pth")
    return str(folder)


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    """An empty torch hub cache and no network: a download fails at once."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(entry, target):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(weights, "_download", offline)


def settings(photos: str, weights_dir: str, out, **overrides) -> RunConfig:
    values = dict(
        methods=["mean", "telea"],
        masks=["square"],
        dataset=f"folder:{photos}",
        size=SIZE,
        workers=1,
        device="cpu",
        progress=False,
        out=str(out),
        metrics=["psnr", "lpips-alex", "ms-ssim"],
        weights_dir=weights_dir,
        allow_unverified_weights=True,
    )
    values.update(overrides)
    return RunConfig(**values)


def records(run_dir) -> dict[tuple[str, int], dict]:
    return {(r["method"], r["index"]): r for r in RecordStore(run_dir / "records.jsonl")}


def direct_values(config: RunConfig) -> dict[tuple[str, int], dict[str, float]]:
    """LPIPS and MS-SSIM of every composite, from ``benchmark.perceptual`` called directly."""
    ctx = build_plan(config).context
    index = list(range(COUNT))
    target = ctx.dataset.images(index)
    mask = ctx.masks["square"].batch(index, SIZE, SIZE, ctx.seed, None)
    out = {}
    for name, method in ctx.methods.items():
        filled = method.inpaint(target.clone().masked_fill_(mask, 0.0), mask.clone())
        result = composite(target, filled.float().clamp(0, 1).nan_to_num(0.0), mask)
        alex = lpips(result, target, "alex", config.weights_dir, allow_unverified=True)
        ms = ms_ssim(result, target)
        for k in index:
            out[(name, k)] = {"lpips-alex": float(alex[k]), "ms-ssim": float(ms[k])}
    return out


def test_run_measures_lpips_and_ms_ssim_on_the_composites(photos, weights_dir, tmp_path):
    config = settings(photos, weights_dir, tmp_path / "run")
    result = run_benchmark(config)
    assert result.computed == 2 * COUNT and result.failed == 0
    got = records(result.run_dir)
    expected = direct_values(config)
    assert set(got) == set(expected)
    for key, values in expected.items():
        record = got[key]
        assert record["status"] == STATUS_OK
        for name, value in values.items():
            assert record[name] == pytest.approx(value, abs=1e-6), (key, name)
        assert set(record["metric_provenance"]) == {"lpips-alex", "ms-ssim"}
    assert len({v["lpips-alex"] for v in expected.values()}) > 1  # not a constant
    # shown in the tables and recorded in run.json
    entry = result.leaderboard["tables"][0]["entries"][0]
    assert {"lpips-alex", "ms-ssim", "psnr"} <= set(entry["metrics"])
    markdown = (result.run_dir / "leaderboard.md").read_text()
    assert "LPIPS-alex ↓" in markdown and "MS-SSIM ↑" in markdown
    run_json = json.loads((result.run_dir / "run.json").read_text())
    assert run_json["config"]["allow_unverified_weights"] is True
    assert run_json["config"]["metrics"] == ["psnr", "lpips-alex", "ms-ssim"]
    provenance = run_json["provenance"]["metrics"]["lpips-alex"]
    assert weights.sha256_of(Path(weights_dir) / "alex.pth") in provenance
    assert weights.sha256_of(Path(weights_dir) / "alexnet-owt-7be5be79.pth") in provenance

    # resume: every value reused
    again = run_benchmark(config)
    assert (again.computed, again.reused) == (0, 2 * COUNT)
    assert records(again.run_dir) == got


def test_workers_one_and_two_give_identical_values(photos, weights_dir, tmp_path):
    one = run_benchmark(settings(photos, weights_dir, tmp_path / "one", workers=1))
    two = run_benchmark(settings(photos, weights_dir, tmp_path / "two", workers=2))
    a, b = records(one.run_dir), records(two.run_dir)
    assert set(a) == set(b)
    for key in a:
        for name in ("psnr", "ssim", "lpips-alex", "ms-ssim"):
            assert a[key][name] == b[key][name], (key, name)


def test_a_new_metric_recomputes_only_records_lacking_it(photos, weights_dir, tmp_path):
    out = tmp_path / "run"
    plain = run_benchmark(settings(photos, weights_dir, out, metrics=[]))
    assert plain.computed == 2 * COUNT
    assert not any("lpips-alex" in r for r in records(out).values())
    header = plain.leaderboard["tables"][0]["entries"][0]["metrics"]
    assert "lpips-alex" not in header  # default: the pixel metrics only
    asked = run_benchmark(settings(photos, weights_dir, out, metrics=["lpips"]))
    assert (asked.computed, asked.reused) == (2 * COUNT, 0)  # records lacking it: measured
    latest = records(out)
    assert all("lpips-alex" in r for r in latest.values())
    before = {k: r["psnr"] for k, r in records(out).items()}
    back = run_benchmark(settings(photos, weights_dir, out, metrics=[]))
    assert (back.computed, back.reused) == (0, 2 * COUNT)  # never recomputed for others
    assert {k: r["psnr"] for k, r in records(out).items()} == before


def test_other_weights_are_not_reused(photos, weights_dir, tmp_path):
    out = tmp_path / "run"
    run_benchmark(settings(photos, weights_dir, out, metrics=["lpips-alex"]))
    other = tmp_path / "other-weights"
    other.mkdir()
    heads = {k: v * 2 for k, v in head_state("alex").items()}
    _save(heads, other / "alex.pth")
    _save(trunk_state("alex"), other / "alexnet-owt-7be5be79.pth")
    rerun = run_benchmark(settings(photos, str(other), out, metrics=["lpips-alex"]))
    assert rerun.computed == 2 * COUNT  # stale LPIPS values are not reused
    first = run_benchmark(settings(photos, weights_dir, out, metrics=["lpips-alex"]))
    assert first.computed == 2 * COUNT


# -- user errors ---------------------------------------------------------------------------------
def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def base_args(photos: str, tmp_path) -> list[str]:
    return [
        "run", "--methods", "mean", "--masks", "square", "--dataset", f"folder:{photos}",
        "--size", str(SIZE), "--out", str(tmp_path / "run"), "--quiet", "--workers", "1",
        "--device", "cpu",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "metrics, expected",
    [
        ("lpips-alx", "unknown metric 'lpips-alx' in --metrics; did you mean lpips-alex"),
        ("psnr,msssim", "unknown metric 'msssim' in --metrics; did you mean ms-ssim"),
        ("fidd", "unknown metric 'fidd' in --metrics; did you mean fid"),
        ("p_ids", "unknown metric 'p_ids' in --metrics; did you mean p-ids"),
    ],
)
def test_bad_metric_names_are_one_usage_line(photos, tmp_path, capsys, metrics, expected):
    code, _, err = cli(capsys, *base_args(photos, tmp_path), "--metrics", metrics)
    assert code == 2
    assert expected in one_line(err)
    assert not (tmp_path / "run").exists()  # before any work


def test_missing_weights_are_one_line_naming_file_and_folders(
    photos, tmp_path, capsys, no_download
):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [*base_args(photos, tmp_path), "--metrics", "lpips-alex", "--weights-dir", str(empty)]
    code, _, err = cli(capsys, *args)
    assert code == 2
    line = one_line(err)
    assert "alexnet-owt-7be5be79.pth not found" in line and str(empty) in line
    assert str(tmp_path / "torch-home") in line
    assert not (tmp_path / "run").exists()  # before any work


def test_unverified_weights_are_refused_unless_allowed(photos, weights_dir, tmp_path, capsys):
    args = [*base_args(photos, tmp_path), "--metrics", "lpips-alex", "--weights-dir", weights_dir]
    code, _, err = cli(capsys, *args)
    assert code == 1
    assert "is not the published" in one_line(err)
    assert not (tmp_path / "run").exists()
    code, _, err = cli(capsys, *args, "--allow-unverified-weights")
    assert code == 0, err
    assert "--allow-unverified-weights" in err  # printed when used
    assert "LPIPS-alex ↓" in (tmp_path / "run" / "leaderboard.md").read_text()


def test_ms_ssim_below_its_minimum_size_is_refused_before_any_work(photos, tmp_path, capsys):
    args = [*base_args(photos, tmp_path), "--metrics", "ms-ssim"]
    args[args.index("--size") + 1] = "128"
    code, _, err = cli(capsys, *args)
    assert code == 2
    assert "--metrics ms-ssim needs images of at least 176x176" in one_line(err)
    assert "128x128" in err
    assert not (tmp_path / "run").exists()


def test_the_reproducing_command_names_metrics_only_when_asked():
    from benchmark.run.config import command_line

    plain = RunConfig(methods=["mean"], masks=["square"]).to_json()
    assert "--metrics" not in command_line(plain)  # the default stays as it was
    asked = RunConfig(methods=["mean"], masks=["square"], metrics=["psnr", "lpips"]).to_json()
    words = command_line(asked).split()
    assert words[words.index("--metrics") + 1] == "psnr,lpips"


def test_extra_metrics_in_chunks_equal_one_lpips_call(weights_dir):
    import torch

    from benchmark.perceptual.selection import LPIPS_CHUNK, plan_extra_metrics

    extra = plan_extra_metrics(["lpips"], (48, 40), weights_dir, allow_unverified=True)
    assert extra.names == ("lpips-alex",)
    generator = torch.Generator().manual_seed(3)
    n = LPIPS_CHUNK + 5  # two calls
    target = torch.rand(n, 3, 48, 40, generator=generator)
    result = (target + 0.1 * torch.rand(n, 3, 48, 40, generator=generator)).clamp(0, 1)
    got = extra.compute(result, target)["lpips-alex"]
    whole = lpips(result, target, "alex", weights_dir, allow_unverified=True)
    assert got.shape == (n,)
    torch.testing.assert_close(got, whole, rtol=0, atol=1e-6)
