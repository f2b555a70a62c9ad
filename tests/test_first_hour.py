"""What a newcomer meets in the first hour (issue 26): the commands after the quick start, the
torch build hint, one leaderboard per selection, the gate's hint for one's own files, predictions
checked against the run's settings, and folder photos with transparency."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmark import cli
from benchmark.commands.export import export
from benchmark.commands.gate import update_command
from benchmark.commands.report_data import Run
from benchmark.datasets import build_dataset
from benchmark.errors import DataError, UsageError
from benchmark.run.config import RunConfig
from benchmark.run.plan import build_plan

ROOT = Path(__file__).resolve().parent.parent

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


# -- 1. `python -m benchmark` without the dependencies: one line, exit 2 --------------------------
def module_cli(*args: str, env: dict[str, str] | None = None, flags: tuple[str, ...] = ()):
    """``python [flags] -m benchmark ARGS`` from the repository root, as the README runs it."""
    return subprocess.run(
        [sys.executable, *flags, "-m", "benchmark", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_dependency_line(done: subprocess.CompletedProcess, module: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr  # no traceback
    for needed in (repr(module), "./scripts/run-benchmark", ".venv-run/bin/inpaint-bench"):
        assert needed in lines[0], (needed, lines[0])


def test_a_broken_torch_is_one_line_naming_it_and_the_ways_out(tmp_path: Path) -> None:
    (tmp_path / "torch.py").write_text('raise ImportError("no torch in this interpreter")\n')
    done = module_cli(
        "run", "--methods", "telea", "--masks", "lines", "--limit", "2", "--out", "x",
        env={"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert_dependency_line(done, "torch")
    assert not (ROOT / "x").exists()


def test_an_interpreter_without_site_packages_is_one_line_and_help_still_works() -> None:
    """``python -S``: none of the third-party packages can be imported."""
    done = module_cli("run", "--methods", "telea", "--masks", "lines", flags=("-S",))
    missing = re.search(r"has no module '(\w+)'", done.stderr)
    assert missing, done.stderr
    assert_dependency_line(done, missing.group(1))
    assert module_cli("--help", flags=("-S",)).returncode == 0  # needs no dependency


def test_a_users_own_import_error_keeps_its_traceback(tmp_path: Path) -> None:
    """Only the harness's dependencies get the one line: other import errors are not hidden."""
    from benchmark.__main__ import missing_dependency

    assert missing_dependency(ModuleNotFoundError("x", name="my_private_module")) is None
    assert missing_dependency(ModuleNotFoundError("x", name="numpy")) is not None
    assert missing_dependency(ModuleNotFoundError("x", name="numpy.nothing")) is None


def distribution_to_module(requirement: str) -> str:
    name = re.split(r"[<>=!;\[ ]", requirement, maxsplit=1)[0].strip().lower()
    special = {"opencv-contrib-python-headless": "cv2", "scikit-image": "skimage", "pillow": "PIL"}
    return special.get(name, name.replace("-", "_"))


def test_the_dependency_list_of_main_is_pyprojects() -> None:
    from benchmark.__main__ import DEPENDENCY_MODULES

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(map(distribution_to_module, project["dependencies"])) == DEPENDENCY_MODULES


# -- 1. scripts/run-benchmark passes any command on ------------------------------------------------
FAKE_PYTHON = """#!/bin/sh
# A stand-in venv python: torch "installed" unless NO_TORCH is set, pip and benchmark logged.
case "$*" in
  *find_spec*) [ -z "${NO_TORCH:-}" ]; exit $? ;;
  "-m benchmark"*|"-m pip"*) { pwd; for a in "$@"; do echo "[$a]"; done; } >>"$LOG"; exit 0 ;;
esac
exec python3 "$@"
"""


def fake_venv(root: Path, extras: str = "", stamped: bool = True) -> Path:
    """A virtualenv folder whose python logs benchmark and pip calls; stamped as up to date."""
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    if stamped:
        digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
        (root / ".inpaint-bench-installed").write_text(f"{digest} [{extras}]\n")
    return root


def calls(log: Path) -> list[list[str]]:
    """The logged calls: [working directory, arg, arg, ...] each."""
    out: list[list[str]] = []
    for line in log.read_text().splitlines():
        if line.startswith("["):
            out[-1].append(line[1:-1])
        else:
            out.append([line])
    return out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["run", "--methods", "unet,telea", "--masks", "lines,square"]),
        (("--limit", "100"), ["run", "--methods", "unet,telea", "--masks", "lines,square",
                              "--limit", "100"]),
        (("report", "results/runs/a b", "--samples", "2"),
         ["report", "results/runs/a b", "--samples", "2"]),
        (("compare", "x", "y"), ["compare", "x", "y"]),
        (("run", "--methods", "ns", "--masks", "box"),
         ["run", "--methods", "ns", "--masks", "box"]),
    ],
)  # fmt: skip
def test_run_benchmark_passes_every_argument_on(tmp_path: Path, args, expected) -> None:
    venv = fake_venv(tmp_path / "venv")
    here = tmp_path / "somewhere"
    here.mkdir()
    env = {**os.environ, "BENCH_VENV": str(venv), "LOG": str(tmp_path / "log")}
    done = subprocess.run(
        [str(ROOT / "scripts" / "run-benchmark"), *args],
        cwd=here, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (call,) = calls(tmp_path / "log")
    assert call[0] == str(here)  # relative paths are the caller's
    assert call[1:] == ["-m", "benchmark", *expected]


# -- 2. the CPU build of torch, before it is installed ------------------------------------------
def ensure_venv_in(tmp_path: Path, nvidia_smi: str | None, proc: bool, index: str | None):
    """``ensure_venv`` with a venv lacking torch, on a machine as described."""
    venv = fake_venv(tmp_path / "venv", stamped=False)
    tools = tmp_path / "tools"  # the only folder on PATH: no real nvidia-smi can answer
    tools.mkdir()
    (tools / "python3").symlink_to(os.path.realpath(sys.executable))
    for tool in ("uname", "timeout", "cat", "rm", "mv"):
        (tools / tool).symlink_to(shutil.which(tool))
    if nvidia_smi is not None:
        (tools / "nvidia-smi").write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        (tools / "nvidia-smi").chmod(0o755)
    proc_dir = tmp_path / "proc-nvidia"
    if proc:
        proc_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in SETUP_VARIABLES}
    env |= {"PATH": str(tools), "LOG": str(tmp_path / "log"), "NO_TORCH": "1"}
    if index is not None:
        env["TORCH_INDEX_URL"] = index
    script = f'. scripts/_venv.sh && NVIDIA_PROC_DIR="{proc_dir}" && ensure_venv "{venv}" ""'
    done = subprocess.run(
        [shutil.which("bash"), "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines(), calls(tmp_path / "log")


CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: Variables of the setup scripts that CI (BENCH_VENV) or a user may have set: the tests set
#: their own, so the scripts act on the test's folders.
SETUP_VARIABLES = {"TORCH_INDEX_URL", "BENCH_VENV", "TORCH", "PYTHON"}


@pytest.mark.parametrize(
    ("nvidia_smi", "proc", "index", "hint"),
    [
        (None, False, None, True),  # no nvidia-smi, no driver
        ("exit 9", False, None, True),  # nvidia-smi fails: no usable GPU
        ("exit 0", False, None, False),  # nvidia-smi answers
        (None, True, None, False),  # the driver is loaded
        (None, False, "https://example.invalid/simple", False),  # the user chose an index
    ],
)
def test_cpu_build_hint_before_torch_is_installed(tmp_path, nvidia_smi, proc, index, hint):
    if sys.platform != "linux":
        pytest.fail("the hint is for Linux, where torch's default wheels bundle CUDA")
    lines, logged = ensure_venv_in(tmp_path, nvidia_smi, proc, index)
    hints = [n for n, line in enumerate(lines) if "TORCH_INDEX_URL=" in line]
    installs = [n for n, line in enumerate(lines) if line.startswith("setup: installing torch")]
    assert len(installs) == 1
    if hint:
        assert len(hints) == 1 and hints[0] < installs[0], lines
        assert f"TORCH_INDEX_URL={CPU_INDEX}" in lines[hints[0]]
    else:
        assert hints == [], lines
    torch_install = next(c for c in logged if any(a.startswith("torch==") for a in c))
    assert ("--index-url" in torch_install) == (index is not None)


def test_the_scripts_name_no_package_host_but_pytorchs_cpu_index() -> None:
    for script in (ROOT / "scripts").iterdir():
        if script.is_file():
            urls = set(re.findall(r"https?://[^\s\"')]+", script.read_text(errors="replace")))
            assert urls <= {CPU_INDEX}, (script.name, urls)


def test_no_hint_when_torch_is_already_there(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "venv", stamped=False)
    env = {k: v for k, v in os.environ.items() if k not in SETUP_VARIABLES}
    env["LOG"] = str(tmp_path / "log")
    done = subprocess.run(
        ["bash", "-c", f'. scripts/_venv.sh && ensure_venv "{venv}" ""'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "TORCH_INDEX_URL" not in done.stderr, done.stderr
    assert all("torch==2.13.0" not in c for c in calls(tmp_path / "log"))


# -- 3. one leaderboard per selection, records shared ----------------------------------------------
def cli_run(capsys, *args: str) -> tuple[int, Path | None, str]:
    code = cli.main(["run", "--methods", "mean,nearest", "--masks", "lines", "--quiet",
                     "--workers", "1", *args])  # fmt: skip
    out, err = capsys.readouterr()
    where = re.search(r"results in (\S+)$", out.strip())
    return code, Path(where.group(1)) if where else None, err


def test_a_second_selection_keeps_the_first_ones_leaderboard(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, first, _ = cli_run(capsys, "--limit", "6")
    assert code == 0 and first is not None
    assert first.resolve().parent.parent == (tmp_path / "results" / "runs").resolve()
    board = (first / "leaderboard.json").read_bytes()
    code, second, _ = cli_run(capsys, "--limit", "10")
    assert code == 0 and second is not None and second != first
    assert second.parent == first.parent  # the same records folder
    assert (first / "leaderboard.json").read_bytes() == board  # untouched
    records = first.parent / "records.jsonl"
    assert len(records.read_text().splitlines()) == 2 * 10  # shared: 6 reused, 4 computed
    for folder, images in ((first, 6), (second, 10)):
        assert (folder / "records.jsonl").resolve() == records.resolve()
        info = json.loads((folder / "run.json").read_text())
        assert info["config"]["limit"] == images and info["status"] == "complete"
        assert json.loads((folder / "leaderboard.json").read_text())["config"]["images"] == images
    assert json.loads((second / "run.json").read_text())["reused"] == 2 * 6
    # compare, gate's comparison and report find everything from the printed path
    assert cli.main(["compare", str(first), str(first)]) == 0
    assert cli.main(["compare", str(first), str(second)]) == 2  # 6 vs 10 images: refused
    assert cli.main(["report", str(second), "--samples", "1"]) == 0
    assert (second / "report.html").exists()
    assert "mean_nearest-lines" in Run(second).name
    with pytest.raises(DataError, match="holds the records of 2 runs"):
        Run(first.parent)
    # the same selection again writes to its own folder, reusing every record
    code, again, _ = cli_run(capsys, "--limit", "6")
    assert again == first and json.loads((first / "run.json").read_text())["computed"] == 0


def test_the_selection_folder_ignores_order_and_execution_options() -> None:
    def folder(**kw) -> Path:
        options = {"methods": ["telea", "ns"], "masks": ["lines", "square"], **kw}
        config = RunConfig(**options)
        return config.results_dir(config.run_dir())

    assert folder() == folder(methods=["ns", "telea"], masks=["square", "lines"])
    assert folder() == folder(workers=3, batch_size=7, device="cpu", timeout=5.0)
    assert len({folder(), folder(limit=100), folder(masks=["lines"]), folder(methods=["ns"])}) == 4
    assert folder(limit=100).name.startswith("ns_telea-lines_square-n100-")
    assert folder().parent == folder(seed=0).parent != folder(seed=1).parent
    out = RunConfig(methods=["ns"], masks=["lines"], out="mine")
    assert out.results_dir(out.run_dir()) == Path("mine")  # --out keeps one folder


def test_out_with_another_selection_says_it_replaces_the_leaderboard(tmp_path, capsys):
    out = str(tmp_path / "mine")
    assert cli_run(capsys, "--limit", "4", "--out", out)[0] == 0
    code, where, err = cli_run(capsys, "--limit", "5", "--out", out)
    assert code == 0 and where == Path(out)
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "another selection (limit 4)" in notes[0]
    assert cli_run(capsys, "--limit", "5", "--out", out)[2].count("note:") == 0  # same selection


# -- 4. the gate's hint repeats the user's own files ---------------------------------------------
def test_a_missing_baseline_suggests_the_update_of_the_users_own_files(tmp_path, capsys):
    (tmp_path / "my dir").mkdir()
    config = tmp_path / "my dir" / "my.toml"
    config.write_text('methods = ["mean"]\nmasks = ["lines"]\nseed = 0\nlimit = 4\n')
    baseline = tmp_path / "mybase.json"
    code = cli.main(["gate", "--config", str(config), "--baseline", str(baseline)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    expected = f"python -m benchmark gate --update --config '{config}' --baseline {baseline}"
    assert expected in err, err
    assert not baseline.exists()


def test_the_update_hint_names_only_what_differs_from_the_defaults() -> None:
    import argparse

    from benchmark.commands.gate import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert update_command(parser.parse_args([])) == "python -m benchmark gate --update"
    mine = parser.parse_args(["--baseline", "b.json", "--out", "o"])
    assert update_command(mine) == "python -m benchmark gate --update --baseline b.json --out o"


def test_the_hint_rebuilds_the_users_baseline_not_the_projects(tmp_path, monkeypatch, capsys):
    """Follow the hint to the letter: it writes the user's baseline, and the gate then passes."""
    monkeypatch.chdir(tmp_path)
    Path("my.toml").write_text('methods = ["mean"]\nmasks = ["lines"]\nseed = 0\nlimit = 4\n')
    assert cli.main(["gate", "--config", "my.toml", "--baseline", "mine.json"]) == 2
    hint = re.search(r"create it with: (.*)\)$", capsys.readouterr().err.strip()).group(1)
    words = hint.split()
    assert words[:3] == ["python", "-m", "benchmark"]
    assert cli.main(words[3:]) == 0 and Path("mine.json").exists()
    assert not Path("results/baseline.json").exists()
    assert cli.main(["gate", "--config", "my.toml", "--baseline", "mine.json"]) == 0


# -- 6. predictions made for other settings stop the run ----------------------------------------
def fill(export_dir: Path, pred: Path) -> None:
    """An outside "model" (OpenCV's Telea) writing native-layout predictions."""
    manifest = json.loads((export_dir / "manifest.json").read_text())
    for row in manifest["files"]:
        masked = cv2.imread(str(export_dir / row["masked"]))
        hole = cv2.imread(str(export_dir / row["mask_file"]), cv2.IMREAD_GRAYSCALE)
        target = pred / row["mask_folder"] / f"{row['index']:06d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), cv2.inpaint(masked, hole, 3, cv2.INPAINT_TELEA))


@pytest.fixture(scope="module")
def predictions(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predictions")
    export("skimage-patches", "test", None, ["lines", "square"], root / "ex", limit=6, seed=3)
    fill(root / "ex", root / "pred")
    return {"ex": root / "ex", "pred": root / "pred", "root": root}


def check(method: str, **options) -> None:
    """What the run does before it computes anything: build the plan, then ask every method
    that can check the run's settings to do so (``check_run``)."""
    config = RunConfig(methods=[method], **{"masks": ["lines", "square"], "seed": 3, **options})
    plan = build_plan(config)
    ctx = plan.context
    for built in ctx.methods.values():
        built.check_run(
            config=config,
            count=plan.count,
            image_size=ctx.dataset.image_size,
            data_fingerprint=ctx.dataset.fingerprint(),
            masks={name: generator.fingerprint() for name, generator in ctx.masks.items()},
        )


MISMATCHES = [
    ({}, "--limit: the export holds the first 6 images, this run scores 3576 (run with --limit 6)"),
    ({"limit": 6, "seed": 0}, "--seed: the export has 3, this run 0"),
    ({"limit": 6, "size": 48}, "--size: the export has 32x32, this run 48x48"),
    ({"limit": 6, "masks": ["lines", "box"]}, "masks: box not in the export"),
    ({"limit": 6, "mask_ratio": (0.1, 0.3)},
     "--mask-ratio: the export has None, this run [0.1, 0.3]"),
    ({"limit": 6, "split": "train"}, "--split: the export has test, this run train"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "needle"), MISMATCHES)
def test_predictions_for_other_settings_are_refused_against_their_export(
    predictions, options, needle
):
    method = f"predictions:{predictions['pred']},export={predictions['ex']}"
    check(method, limit=6)  # the settings of the export: nothing to say
    check(method, limit=4)  # fewer images than exported: a subset, fine
    with pytest.raises(UsageError) as info:
        check(method, **options)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_the_run_stops_before_scoring_predictions_of_other_settings(predictions, tmp_path, capsys):
    """The plan asks every method whether it can serve the run (Method.check_run)."""
    spec = f"predictions:{predictions['pred']},export={predictions['ex']}"
    argv = ["run", "--methods", spec, "--masks", "lines,square", "--seed", "3", "--quiet"]
    code = cli.main([*argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--limit: the export holds the first 6 images" in err
    assert not (tmp_path / "run" / "records.jsonl").exists()  # nothing was scored


def test_a_copy_of_the_manifest_in_the_prediction_folder_is_enough(predictions, tmp_path):
    pred = Path(shutil.copytree(predictions["pred"], tmp_path / "pred"))
    shutil.copy(predictions["ex"] / "manifest.json", pred / "manifest.json")
    check(f"predictions:{pred}", limit=6)
    with pytest.raises(UsageError, match=r"from manifest.json in .*--limit: the export holds"):
        check(f"predictions:{pred}")
    with pytest.raises(UsageError, match="is an export folder"):  # the export itself: refused
        check(f"predictions:{predictions['ex']}", limit=6)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({}, "--limit: the predictions end at image 5 (lines, square) but this run scores 3576"),
        ({"limit": 6, "size": 48}, "--size: lines/ holds 32x32 images, this run's are 48x48"),
        ({"limit": 6, "masks": ["lines", "box"]}, "mask 'box': no predictions in box/"),
    ],
)
def test_without_a_manifest_the_files_are_checked(predictions, options, needle):
    method = f"predictions:{predictions['pred']}"
    check(method, limit=6)
    with pytest.raises(UsageError) as info:
        check(method, **options)
    assert needle in str(info.value)


def test_only_changed_content_is_a_warning_and_every_image_decides(predictions, capsys):
    from methods.predictions import PredictionsMethod

    method = PredictionsMethod(str(predictions["pred"]), export=str(predictions["ex"]))
    config = RunConfig(methods=["x"], masks=["lines"], limit=6, seed=3)
    data = build_dataset("skimage-patches")
    method.check_run(config=config, count=6, image_size=(32, 32),
                     data_fingerprint="other files", masks={"lines": "other code"})  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("warning: predictions:")
    assert "the data set's files changed" in err and "the code of mask lines changed" in err
    method.check_run(config=config, count=6, image_size=(32, 32),
                     data_fingerprint=data.fingerprint(),
                     masks={"lines": json.loads((predictions["ex"] / "manifest.json")
                            .read_text())["masks"]["lines"]["fingerprint"]})  # fmt: skip
    assert capsys.readouterr().err == ""


# -- 10. folder photos with transparency -------------------------------------------------------
def test_transparency_is_counted_once_and_dropped_as_documented(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)
    rgba[..., 3] = np.arange(24, dtype=np.uint8)[:, None] * 10  # opacity varies
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a_rgba.png")
    Image.fromarray(rgba[..., [0, 3]], "LA").save(tmp_path / "b_grey_alpha.png")
    palette = Image.fromarray(rng.integers(0, 4, (24, 24), dtype=np.uint8), "P")
    palette.save(tmp_path / "c_palette.png", transparency=0)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "d.webp", lossless=True)
    for name in ("e_plain.png", "f_plain.jpg", "g_plain.webp"):
        Image.fromarray(rgba[..., :3]).save(tmp_path / name)
    dataset = build_dataset(f"folder:{tmp_path}", size=24)
    again = build_dataset(f"folder:{tmp_path}", size=24)  # the same folder: no second line
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: folder ")
    assert "4 of 7 images have transparency" in lines[0] and "'a_rgba.png'" in lines[0]
    assert dataset.transparent == again.transparent == 4
    # dropped: the stored colours, whatever their opacity (what OpenCV reads as colour)
    pixels = (dataset.images([0])[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(pixels, rgba[..., :3])  # a composite over any colour would differ


def test_no_transparency_no_warning(tmp_path: Path, capsys) -> None:
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert build_dataset(f"folder:{tmp_path}", size=16).transparent == 0
    assert capsys.readouterr().err == ""
