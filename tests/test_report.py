"""The self-contained HTML report of a run."""

from __future__ import annotations

import argparse
import base64
import copy
import html
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark import cli
from benchmark.commands import report
from benchmark.commands.report_data import Run
from benchmark.commands.report_images import plot_data
from benchmark.commands.report_render import environment, readable
from benchmark.errors import DataError, UsageError
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark

METHODS = ["telea", "mean", "nearest"]


def make_run(out: Path, save_images: bool, limit: int = 24) -> Path:
    config = RunConfig(
        methods=METHODS,
        masks=["lines", "square"],
        limit=limit,
        workers=1,
        out=str(out),
        save_images=save_images,
        progress=False,
    )
    return run_benchmark(config).run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared machine: one thread is faster
    try:
        root = tmp_path_factory.mktemp("runs")
        return {
            "saved": make_run(root / "saved", save_images=True),
            "plain": make_run(root / "plain", save_images=False),
        }
    finally:
        torch.set_num_threads(before)


def embedded_pngs(text: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    ]


def check_self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"<(script|link|iframe)\b", text)
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(re.match(r"data:image/(png|webp);base64,", s) for s in sources)


@pytest.mark.parametrize("kind", ["saved", "plain"])
def test_report_is_one_self_contained_file(runs, kind):
    text = report.build_report(runs[kind])
    check_self_contained(text)
    for name in [*METHODS, "lines", "square", "original", "masked input"]:
        assert name in text
    sections = ["Leaderboards", "Sample images", "PSNR versus mask ratio", "Mask-ratio buckets"]
    sections += ["Paired comparisons", "Time per image", "Configuration and versions"]
    for section in sections:
        assert section in text
    assert "1–10 %" in text and "60–100 %" in text  # NVIDIA bucket labels
    assert "scikit-image" in text and "torch" in text  # versions from run.json
    pngs = embedded_pngs(text)
    # 2 masks x 8 images x (original + masked input + 3 methods), plus the plot
    assert len(pngs) == 2 * 8 * (2 + len(METHODS)) + 1
    for png in pngs:
        assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) is not None
    source = "saved PNGs of the run" if kind == "saved" else "recomputed"
    assert source in text


def test_recomputed_samples_equal_the_saved_ones(runs):
    """Without --save-images the grids are recomputed: the same pixels as the saved PNGs."""
    saved = report.build_report(runs["saved"])
    plain = report.build_report(runs["plain"])
    decode = lambda png: cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)  # noqa: E731
    a, b = [decode(p) for p in embedded_pngs(saved)], [decode(p) for p in embedded_pngs(plain)]
    assert len(a) == len(b)
    assert all(np.array_equal(x, y) for x, y in zip(a[:-1], b[:-1]))  # all but the plot
    assert "differ from the measured ones" not in plain


def test_report_stays_small_for_large_runs(runs, tmp_path):
    text = report.build_report(runs["plain"], samples=3)
    assert len(embedded_pngs(text)) == 2 * 3 * (2 + len(METHODS)) + 1
    assert len(text) < 300_000


def test_run_without_records_still_reports(runs, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(runs["plain"], copy)
    (copy / "records.jsonl").unlink()
    text = report.build_report(copy)
    check_self_contained(text)
    assert "no per-image data" in text.lower()


def test_command_writes_the_file(runs, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    out = tmp_path / "r.html"
    assert (
        report.run(parser.parse_args([str(runs["saved"]), "--out", str(out), "--samples", "2"]))
        == 0
    )
    assert out.exists() and "report written to" in capsys.readouterr().out
    check_self_contained(out.read_text())
    with pytest.raises(UsageError, match="--samples"):
        report.run(parser.parse_args([str(runs["saved"]), "--samples", "-1"]))


def test_a_run_too_small_to_decide_reports_its_unbounded_intervals(tmp_path, capsys):
    """Three images: every paired interval is unbounded (null in leaderboard.json)."""
    run_dir = make_run(tmp_path / "tiny", save_images=False, limit=3)
    board = json.loads((run_dir / "leaderboard.json").read_text())
    assert board["tables"][0]["comparisons"][0]["psnr"]["ci_low"] is None
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    out = tmp_path / "tiny.html"
    assert report.run(parser.parse_args([str(run_dir), "--out", str(out)])) == 0
    assert "too few images to decide" in out.read_text()


def test_missing_run_directory_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        report.build_report(tmp_path / "nope")
    with pytest.raises(DataError, match="has no leaderboard.json"):
        report.build_report(tmp_path)


# -- one colour per method, one order, the same bins, readable configuration -------------------
def swatch_colours(text: str, method: str) -> set[str]:
    return set(re.findall(r'background:(#[0-9a-f]{6})"></span>' + re.escape(method), text))


def test_one_colour_and_one_column_order_per_method(runs):
    run = Run(runs["plain"])
    assert run.methods == METHODS  # the run's order, not a table's ranking
    assert len(set(run.colours.values())) == len(METHODS)
    text = report.build_report(runs["plain"], samples=2)
    for method in METHODS:
        assert swatch_colours(text, method) == {run.colours[method]}
    assert text.count('class="legend"') == 1
    # grid columns: the same order for every mask, whatever each mask's ranking
    rankings = [[e["method"] for e in t["entries"]] for t in run.leaderboard["tables"]]
    grids = re.findall(r'<table class="grid[^"]*"><thead><tr>(.*?)</tr>', text)
    assert len(grids) == 2
    columns = [re.findall(r"</span>([^<]+)</th>", g) for g in grids]
    assert columns[0] == columns[1] == METHODS
    assert METHODS not in rankings  # precondition: a ranked column order would differ


def test_plot_bins_are_the_bucket_bins(runs):
    from benchmark.significance import BUCKET_EDGES

    run = Run(runs["plain"])
    data = plot_data(run)
    assert [mask for mask, _, _ in data] == ["lines", "square"]
    for (_, labels, lines), table in zip(data, run.leaderboard["tables"]):
        assert labels == [b["label"] for b in table["buckets"]]
        assert len(labels) == len(BUCKET_EDGES) - 1
        assert list(lines) == [m for m in METHODS if m in lines]
        for method, y in lines.items():
            expected = [
                b["methods"][method]["psnr"] if b["methods"][method]["n"] else np.nan
                for b in table["buckets"]
            ]
            np.testing.assert_allclose(y, np.array(expected, dtype=float))


def test_configuration_is_readable_and_fingerprints_are_shown(runs):
    text = report.build_report(runs["plain"], samples=0)
    shown = html.unescape(text)
    assert "['telea'" not in shown and '["telea"' not in shown  # no list reprs
    assert "telea, mean, nearest" in text  # the methods of the configuration
    board = Run(runs["plain"]).leaderboard
    fingerprint = board["tables"][0]["entries"][0]["fingerprint"]
    assert fingerprint and fingerprint in shown
    assert "Methods and fingerprints" in text
    assert readable(None) == "— (default)" and readable([1, "a"]) == "1, a"
    assert readable({"radius": 3, "fast": True}) == "radius=3, fast=yes"


def test_report_ranks_like_the_leaderboard_and_shows_failures(tmp_path):
    from benchmark.leaderboard import build_leaderboard
    from benchmark.records import write_json

    rng = np.random.default_rng(0)
    records = []
    for i in range(50):
        base = {"mask": "lines", "index": i, "seconds": 0.01, "mask_ratio": 0.05 + i / 100}
        psnr = 40 + rng.normal()
        ok = {"status": "ok", "ssim": 0.9, "hole_psnr": 30.0, "hole_l1": 0.1}
        records.append({**base, **ok, "method": "steady", "psnr": psnr})
        if i < 30:  # fails the 20 largest holes, better on the rest
            records.append({**base, **ok, "method": "fragile", "psnr": psnr + 0.5})
        else:
            records.append({**base, "method": "fragile", "status": "failed: boom"})
        records.append({**base, "method": "dead", "status": "failed: ValueError: x"})
    board = build_leaderboard(records, ["dead", "fragile", "steady"], ["lines"], {})
    write_json(tmp_path / "leaderboard.json", board)
    text = report.build_report(tmp_path, samples=0)
    check_self_contained(text)
    order = [e["method"] for e in board["tables"][0]["entries"]]
    assert order == ["fragile", "steady", "dead"]
    positions = [text.index(f"</span>{m}") for m in order]
    assert positions == sorted(positions)
    assert "fragile †" in text and "dead †" in text and "boom ×20" in text
    assert "ranked on the 30 of 50 images that every ranked method completed" in text
    assert "verdict: fragile leads steady" in text and "unranked (–)" in text


# -- one function composites and measures -------------------------------------------------------
def test_recomputed_grids_are_measured_by_the_pipeline(runs, monkeypatch):
    """The recomputation composites and measures with the pipeline's own function, once per
    (mask, method), on the grid's images."""
    import benchmark.run.pipeline as pipeline

    real, sizes = pipeline.measure, []

    def spy(originals, prediction, masks, keep=False):
        sizes.append(len(prediction))
        return real(originals, prediction, masks, keep)

    monkeypatch.setattr(pipeline, "measure", spy)
    report.build_report(runs["plain"], samples=2)
    assert sizes == [2] * (2 * len(METHODS))


def test_a_recomputed_image_that_measures_differently_is_flagged(runs, tmp_path):
    import shutil

    from benchmark.commands.report_samples import DIFFERS

    changed = tmp_path / "changed"
    shutil.copytree(runs["plain"], changed)
    lines = (changed / "records.jsonl").read_text().splitlines()
    for k, line in enumerate(lines):
        record = json.loads(line)
        if (record["method"], record["mask"], record["index"]) == ("mean", "square", 1):
            lines[k] = json.dumps({**record, "psnr": record["psnr"] + 0.01})
    (changed / "records.jsonl").write_text("\n".join(lines) + "\n")
    shown = html.unescape(report.build_report(changed, samples=2))
    assert shown.count(DIFFERS) == 1 and f"mean: {DIFFERS}" in shown
    assert DIFFERS not in html.unescape(report.build_report(changed, samples=1))  # image 0 only


# -- escaping -----------------------------------------------------------------------------------
#: A method name matplotlib would take for broken TeX: the plot must draw it as written.
TEX = "price $\\frac$"
HOSTILE = {
    "method": "<script>alert(1)</script>",
    "mask": '"><img src=x onerror=alert(2)>',
    "dataset": "<b>set</b>",
    "config": "<i>x</i>",
    "parameter": "<u>k</u>",
    "value": "<s>v</s>",
    "version": "</dl><script>",
}


def test_names_and_values_from_the_files_are_escaped(tmp_path):
    """Every name and value the run's files hold is text in the report, never markup; this
    fails if the templates are rendered without autoescaping."""
    import markupsafe

    from benchmark.leaderboard import build_leaderboard
    from benchmark.records import write_json

    methods = [HOSTILE["method"], "mean", TEX]
    records = [
        {"method": m, "mask": HOSTILE["mask"], "index": i, "seconds": 0.01, "status": "ok",
         "mask_ratio": 0.05 + i / 40, "psnr": 30.0 + i + k, "ssim": 0.9, "hole_psnr": 25.0,
         "hole_l1": 0.1}
        for i in range(12)
        for k, m in enumerate(methods)
    ]  # fmt: skip
    config = {"images": 2, "dataset": HOSTILE["dataset"]}
    board = build_leaderboard(records, methods, [HOSTILE["mask"]], config)
    write_json(tmp_path / "leaderboard.json", board)
    parameters = {HOSTILE["parameter"]: HOSTILE["value"]}
    info: dict = {"identity": {}, "status": "complete", "config": {"note": HOSTILE["config"]}}
    info["versions"] = {"torch": HOSTILE["version"]}
    info["methods"] = {HOSTILE["method"]: {"parameters": parameters}}
    write_json(tmp_path / "run.json", info)
    text = report.build_report(tmp_path, samples=2)
    check_self_contained(text)
    for raw in HOSTILE.values():
        assert raw not in text
        assert str(markupsafe.escape(raw)) in text  # shown, as text
    # the grid's error (the mask's name is malformed) quotes the name, escaped too
    assert "cannot be recomputed here: UsageError: malformed name" in text
    assert TEX in text and len(embedded_pngs(text)) == 1  # the plot, with TEX in its legend


def test_every_method_keeps_its_swatch_whatever_its_name(tmp_path):
    """A name with spaces, a display name (``name=``) and the table's marks keep the colour."""
    from benchmark.leaderboard import build_leaderboard
    from benchmark.records import write_json

    methods = [TEX, "predictions:name=lama,path=out/lama", "mean"]
    records = [
        {"method": m, "mask": "lines", "index": i, "seconds": 0.01, "status": "ok",
         "mask_ratio": 0.05, "psnr": 30.0 + i % 3 + k / 100, "ssim": 0.9, "hole_psnr": 25.0,
         "hole_l1": 0.1}
        for i in range(12)
        for k, m in enumerate(methods)
    ]  # fmt: skip
    records[-1] = {**records[-1], "status": "failed: boom"}  # mean: incomplete (†)
    write_json(tmp_path / "leaderboard.json", build_leaderboard(records, methods, ["lines"], {}))
    text = report.build_report(tmp_path, samples=0)
    colours = Run(tmp_path).colours
    board = text[text.index('id="leaderboard"') : text.index('id="samples"')]
    assert "mean ≈ †" in board or "mean †" in board
    for method, shown in zip(methods, [TEX, "lama", "mean"]):
        assert swatch_colours(board, shown) == {colours[method]}, method


def test_every_template_is_autoescaped():
    """Autoescaping is chosen by template name: every shipped template gets it (a plain
    ``select_autoescape(["html"])`` would miss the ``*.html.j2`` names)."""
    env = environment()
    names = env.list_templates()
    assert {"report.html.j2", "macros.html.j2"} <= set(names)
    assert all(env.autoescape(name) is True for name in names)


# -- tampered or foreign files: one line, exit 1 --------------------------------------------------
def _entry(board):
    return board["tables"][0]["entries"][0]


def _set(path, value):
    def change(board):
        *keys, last = path(board)
        target = board
        for key in keys:
            target = target[key]
        target[last] = value
        return board

    return change


def _nested(levels: int):
    value: object = "deep"
    for _ in range(levels):
        value = [value]
    return value


BOARD_CHANGES = {
    "a list": lambda b: [],
    "tables not a list": lambda b: {"format": 3, "tables": 3},
    "no format": lambda b: {k: v for k, v in b.items() if k != "format"},
    "a later format": _set(lambda b: ["format"], 99),
    "a table not an object": _set(lambda b: ["tables", 0], 3),
    "an entry without a method": lambda b: _entry(b).pop("method") and b,
    "a mean as text": _set(lambda b: ["tables", 0, "entries", 0, "metrics", "psnr", "mean"], "x"),
    "a mean without its interval": _set(
        lambda b: ["tables", 0, "entries", 0, "metrics", "psnr", "ci_low"], None
    ),
    "a negative count": _set(lambda b: ["tables", 0, "entries", 0, "n"], -1),
    "a verdict without numbers": _set(lambda b: ["tables", 0, "verdict", "psnr", "mean"], None),
    "bucket methods as a list": _set(lambda b: ["tables", 0, "buckets", 0, "methods"], []),
    "a comparison without b": lambda b: b["tables"][0]["comparisons"][0].pop("b") and b,
    "images as text": _set(lambda b: ["config", "images"], "many"),
    "a deeply nested data set": _set(lambda b: ["config", "dataset"], _nested(900)),
}
RUN_CHANGES = {
    "a list": lambda r: [],
    "config as a list": _set(lambda r: ["config"], []),
    "a method described by a number": _set(lambda r: ["methods", "telea"], 3),
    "image size as text": _set(lambda r: ["image_size"], "32x32"),
    "deeply nested versions": _set(lambda r: ["versions", "torch"], _nested(900)),
}


def report_exit(run_dir: Path, capsys) -> tuple[int, str]:
    code = cli.main(["report", str(run_dir), "--samples", "0", "--out", str(run_dir / "r.html")])
    captured = capsys.readouterr()
    assert captured.out == "" and not (run_dir / "r.html").exists()
    return code, captured.err


@pytest.fixture
def run_copy(runs, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(runs["plain"], tmp_path / "run"))


@pytest.mark.parametrize("change", list(BOARD_CHANGES), ids=list(BOARD_CHANGES))
def test_a_tampered_leaderboard_is_one_line_and_exit_1(run_copy, capsys, change):
    path = run_copy / "leaderboard.json"
    board = BOARD_CHANGES[change](copy.deepcopy(json.loads(path.read_text())))
    path.write_text(json.dumps(board))
    code, err = report_exit(run_copy, capsys)
    assert code == 1
    assert err.startswith(f"error: leaderboard {str(path)!r} ") and err.count("\n") == 1, err


def test_a_truncated_leaderboard_is_one_line_and_exit_1(run_copy, capsys):
    path = run_copy / "leaderboard.json"
    path.write_text(path.read_text()[:500])
    code, err = report_exit(run_copy, capsys)
    assert code == 1 and "is not valid JSON" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("change", list(RUN_CHANGES), ids=list(RUN_CHANGES))
def test_a_tampered_run_file_is_one_line_and_exit_1(run_copy, capsys, change):
    path = run_copy / "run.json"
    path.write_text(json.dumps(RUN_CHANGES[change](json.loads(path.read_text()))))
    code, err = report_exit(run_copy, capsys)
    assert code == 1
    assert err.startswith(f"error: run file {str(path)!r} ") and err.count("\n") == 1, err


def test_the_untampered_copy_reports(run_copy, capsys):
    """The tampering tests' precondition: their run folder reports when left alone."""
    code = cli.main(["report", str(run_copy), "--samples", "0"])
    assert code == 0 and (run_copy / "report.html").exists(), capsys.readouterr().err


# -- photos: compressed images, useful sizes, click to enlarge, source names (issue 26) ---------
def make_photos(folder: Path, count: int = 24) -> None:
    """``count`` square crops of scikit-image's colour photographs, as PNG files."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    for k in range(count):
        photo = photos[k % len(photos)]
        height, width = photo.shape[:2]
        side = min(height, width) * 3 // 4
        y, x = (height - side) * (k % 3) // 2, (width - side) * (k // 12)
        Image.fromarray(np.ascontiguousarray(photo[y : y + side, x : x + side])).save(
            folder / f"photo_{k:02d}.png"
        )


@pytest.mark.slow
def test_a_report_of_24_photos_at_256_stays_under_3_mb(tmp_path):
    make_photos(tmp_path / "photos")
    config = RunConfig(
        methods=["telea", "ns", "mean", "nearest"],
        masks=["lines", "square"],
        dataset=f"folder:path={tmp_path / 'photos'},small=upscale",  # chelsea crops: 225 px
        size=256,
        workers=1,
        out=str(tmp_path / "run"),
        progress=False,
    )
    run_dir = run_benchmark(config).run_dir
    text = report.build_report(run_dir)
    check_self_contained(text)
    assert len(text.encode()) <= 3_000_000
    webp = re.findall(r'src="data:image/webp;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(webp) == 2 * 8 * (2 + 4)  # every sample image, lossy; the plot stays PNG
    for data in webp[:3]:
        pixels = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert pixels.shape == (256, 256, 3)
    # click to enlarge: every image in a label with its own checkbox, shown at 192 px
    assert text.count('<label class="zoom"><input type="checkbox"><img ') == len(webp)
    assert "--thumb:192px;--zoom:512px" in text and "grid pixelated" not in text
    for k in range(8):  # each row names its source file
        assert f'<span class="file">photo_{k:02d}.png</span>' in text
    assert "photo_08.png" not in text


def test_small_images_stay_lossless_and_sharp(runs):
    text = report.build_report(runs["plain"], samples=2)
    assert "data:image/webp" not in text
    assert "--thumb:96px;--zoom:512px" in text and 'class="grid pixelated"' in text
    assert re.search(r'<span class="file">\w+ at y=\d+, x=\d+</span>', text)  # patch sources


def test_the_shared_records_folder_names_its_runs(tmp_path, monkeypatch):
    """Without --out a run's leaderboard lives in a folder of its own beside the shared
    records: the report reads it from there, and names the selections of the records folder."""
    monkeypatch.chdir(tmp_path)
    config = RunConfig(methods=["mean"], masks=["lines"], limit=4, workers=1, progress=False,
                       save_images=True)  # fmt: skip
    run_dir = run_benchmark(config).run_dir
    assert (run_dir / "records.jsonl").is_symlink() and not (run_dir / "images").exists()
    text = report.build_report(run_dir, samples=2)
    assert "saved PNGs of the run" in text  # found beside the shared records
    assert f"report — {run_dir.parent.name}/{run_dir.name}" in text
    with pytest.raises(DataError, match=r"holds the records of 1 run, each.*report one of"):
        report.build_report(run_dir.parent)
