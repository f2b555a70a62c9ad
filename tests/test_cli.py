"""The command line through a subprocess: listing, a real run, and every user-error path."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from benchmark.datasets import DATASETS
from benchmark.masking import MASKS
from benchmark.method import METHODS, Method
from benchmark.metrics import METRICS

REGISTRIES = {"methods": METHODS, "masks": MASKS, "datasets": DATASETS, "metrics": METRICS}


def listed_names(stdout: str, section: str) -> list[str]:
    """Names printed under ``section:`` by ``list`` (two-space indented lines; deeper indented
    lines such as ``slow: ...`` belong to the entry above)."""
    names, current = [], None
    for line in stdout.splitlines():
        if line and not line.startswith(" "):
            current = line.split()[0].rstrip(":")  # "metrics (↑ higher is better...):"
        elif current == section and line.startswith("  ") and not line.startswith("   "):
            names.append(re.split(r"[ :(]", line.strip(), maxsplit=1)[0])
    return names


def assert_one_line_error(code: int, stderr: str, expected_code: int) -> str:
    assert code == expected_code, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def tables(stdout: str) -> dict[str, list[str]]:
    """Method names in rank order, per ``mask: NAME`` table of the console output."""
    out: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if not line.strip():
            current = None
        elif line.startswith("mask: "):
            current = line[len("mask: ") :].strip()
            out[current] = []
        elif current and re.match(r"^\d+\s+\S", line):
            out[current].append(line.split()[1])
    return out


@pytest.fixture
def main_in_process(capsys):
    """``benchmark.cli.main`` in this process: (code, stdout, stderr) like ``run_cli``."""
    from benchmark.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        environ = dict(os.environ)
        try:
            code = main(list(args))
        finally:  # main() may set variables (OPENCV_LOG_LEVEL) meant for its own process
            os.environ.clear()
            os.environ.update(environ)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# -- list -----------------------------------------------------------------------------------------
def test_list_shows_every_registered_name(run_cli):
    code, stdout, stderr = run_cli("list")
    assert code == 0, stderr
    for kind, registry in REGISTRIES.items():
        assert listed_names(stdout, kind) == registry.names(), kind
    assert "telea (radius=3)" in stdout  # parameters with defaults are shown


def test_list_methods_shows_only_methods(run_cli):
    code, stdout, stderr = run_cli("list", "methods")
    assert code == 0, stderr
    assert listed_names(stdout, "methods") == METHODS.names()
    assert "masks:" not in stdout and "datasets:" not in stdout


def test_list_is_plain_text_with_origins_and_metric_directions(main_in_process):
    code, stdout, stderr = main_in_process("list")
    assert code == 0, stderr
    assert "`" not in stdout and ":class:" not in stdout  # no raw reStructuredText
    lines = {line.split()[0]: line for line in stdout.splitlines() if line.startswith("  ")}
    for name in ("telea", "unet", "lines", "square", "skimage-patches", "psnr"):
        assert "[built-in]" in lines[name], lines[name]
    assert "min_lines..max_lines straight lines" in lines["lines"]
    for name, arrow in (("psnr", "↑"), ("ssim", "↑"), ("hole_psnr", "↑"), ("hole_l1", "↓")):
        assert lines[name].startswith(f"  {name} {arrow} "), lines[name]
    assert "10 log10" in lines["psnr"] and "11x11" in lines["ssim"]  # the definitions
    assert "↑" not in lines["mask_ratio"] and "↓" not in lines["mask_ratio"]


def test_list_shows_where_a_method_comes_from_and_its_slow_note(main_in_process, temp_method):
    from methods.floors import MeanFill

    class Slow(MeanFill):
        """A test method that is `slow` at large sizes.

        Not part of the description.
        """

        slow_note = "about 2 images/s at 256x256; use ``telea`` for large images"

    name = temp_method("test-cli-slow", Slow)
    code, stdout, stderr = main_in_process("list", "methods")
    assert code == 0, stderr
    lines = stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(f"  {name} "))
    assert lines[row].endswith(f"[module {__name__}]: A test method that is slow at large sizes.")
    assert lines[row + 1] == "      slow: about 2 images/s at 256x256; use telea for large images"
    # a slow note belongs to the entry above it: the built-ins that keep up have none
    notes = {
        lines[i - 1].split()[0] for i, line in enumerate(lines) if line.startswith("      slow:")
    }
    assert {"telea", "ns", "mean", "nearest"}.isdisjoint(notes)
    assert {"fsr", "tv", "shiftmap", "diffusion"} <= notes  # under 10 images/s at 256x256


def _subparser(name: str):
    from benchmark.cli import build_parser

    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    return parser, actions[0].choices[name]


@pytest.mark.parametrize("command", ["run", "list", "check"])
def test_every_option_has_help_text(command):
    _, sub = _subparser(command)
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"


def test_top_level_help_has_examples_of_each_main_command(main_in_process):
    with pytest.raises(SystemExit) as info:
        main_in_process("--help")
    assert info.value.code == 0
    from benchmark.cli import build_parser

    text = build_parser().format_help()
    assert "examples:" in text
    for command in ("list", "run", "check", "report", "gate"):
        assert f"python -m benchmark {command}" in text, command


# -- check ----------------------------------------------------------------------------------------
def test_check_passes_builtins_one_line_per_check(main_in_process):
    code, stdout, stderr = main_in_process("check", "mean", "square")
    assert code == 0, stderr
    lines = stdout.strip().splitlines()
    assert lines[-1].endswith(" passed, 0 failed")
    assert all(
        line.startswith(("PASS  method mean: ", "PASS  mask square: ")) for line in lines[:-1]
    )
    assert len(lines) > 10


def test_check_fails_with_exit_1_naming_the_check(main_in_process, temp_method):
    class ReadsHoles(Method):
        def inpaint(self, masked, mask):
            return masked.clone()

    name = temp_method("test-cli-reads-holes", ReadsHoles)
    code, stdout, stderr = main_in_process("check", name)
    assert code == 1, stderr
    failures = [line for line in stdout.splitlines() if line.startswith("FAIL")]
    assert any("hole pixels are not read" in line for line in failures), stdout


def test_check_unknown_name_is_exit_2_before_any_check(main_in_process):
    code, stdout, stderr = main_in_process("check", "mean", "telae")
    line = assert_one_line_error(code, stderr, 2)
    assert "'telae'" in line and "did you mean 'telea'" in line
    assert stdout == ""


# -- built-ins cannot be shadowed -----------------------------------------------------------------
HOSTILE = 'raise SystemExit("the user\'s {} was imported instead of the built-in one")\n'


@pytest.mark.slow
def test_builtins_load_whatever_the_working_directory_holds(run_cli, tmp_path):
    (tmp_path / "methods.py").write_text(HOSTILE.format("methods.py"))
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "__init__.py").write_text(HOSTILE.format("masks package"))
    code, stdout, stderr = run_cli(
        "run", "--methods", "telea", "--masks", "lines,square", "--limit", "3", "--quiet",
        "--out", "o",
    )  # fmt: skip
    assert code == 0, stderr
    assert tables(stdout) == {"lines": ["telea"], "square": ["telea"]}


@pytest.mark.slow
def test_library_use_loads_builtins_beside_a_users_methods_module(tmp_path):
    (tmp_path / "methods.py").write_text(HOSTILE.format("methods.py"))
    script = tmp_path / "use.py"  # a script's folder comes first on sys.path
    script.write_text(
        "from benchmark.method import METHODS\nfrom benchmark.masking import MASKS\n"
        "print(METHODS.get('telea').__module__, MASKS.get('lines').__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["methods.opencv", "masks.lines"]


# -- run ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_prints_two_ranked_tables_and_writes_results(run_cli, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        "run",
        "--methods", "telea,mean",
        "--masks", "lines,square",
        "--limit", "40",
        "--out", str(out),
        "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    ranked = tables(stdout)
    assert list(ranked) == ["lines", "square"]
    for mask, methods in ranked.items():
        assert methods == ["telea", "mean"], mask
    assert "±" in stdout
    assert "160 records computed, 0 reused" in stdout
    assert "Traceback" not in stderr and "%|" not in stderr  # --quiet: no progress bars
    for name in ("records.jsonl", "leaderboard.json", "leaderboard.md", "run.json"):
        assert (out / name).is_file(), name
    board = json.loads((out / "leaderboard.json").read_text())
    assert [t["mask"] for t in board["tables"]] == ["lines", "square"]
    assert all(e["n"] == 40 for t in board["tables"] for e in t["entries"])


@pytest.mark.slow
def test_run_methods_all(run_cli, tmp_path):
    code, stdout, stderr = run_cli(
        "run", "--methods", "all", "--masks", "square", "--limit", "6", "--out", "o", "--quiet"
    )
    assert code == 0, stderr
    ranked = tables(stdout)["square"]
    builtins = [
        n
        for n in METHODS.names()
        if METHODS.origin(n) == "built-in" and not getattr(METHODS.get(n), "requires_path", False)
    ]
    assert set(builtins) <= set(ranked) <= set(METHODS.names())  # plus usable plug-ins, if any
    assert {"onnx", "torchscript", "predictions"}.isdisjoint(ranked)  # they need a user's file
    assert len(ranked) == len(set(ranked))
    assert f"{6 * len(ranked)} records computed" in stdout


# -- usage errors: exit 2, one line ---------------------------------------------------------------
BASE = ["run", "--limit", "5", "--quiet", "--out", "o"]


def test_unknown_method(run_cli):
    code, _, stderr = run_cli(*BASE, "--methods", "teela,mean", "--masks", "lines")
    line = assert_one_line_error(code, stderr, 2)
    assert "unknown method 'teela'" in line and "did you mean 'telea'" in line
    for name in METHODS.names():
        assert name in line


def test_unknown_mask(run_cli):
    code, _, stderr = run_cli(*BASE, "--methods", "telea", "--masks", "lnes")
    line = assert_one_line_error(code, stderr, 2)
    assert "unknown mask 'lnes'" in line and "did you mean 'lines'" in line
    valid = line.split("valid masks: ", 1)[1].split(", ")
    assert {"lines", "square"} <= set(valid)  # installed plug-in masks may be listed too
    assert valid == MASKS.names()


def test_unknown_dataset(run_cli):
    code, _, stderr = run_cli(*BASE, "--methods", "telea", "--masks", "lines", "--dataset", "cifar")
    line = assert_one_line_error(code, stderr, 2)
    assert "unknown dataset 'cifar'" in line and "did you mean 'cifar10'" in line
    assert "skimage-patches" in line


def test_bad_parameter(run_cli):
    code, _, stderr = run_cli(*BASE, "--methods", "telea:radiuss=3", "--masks", "lines")
    line = assert_one_line_error(code, stderr, 2)
    assert "'radiuss'" in line and "radius=3" in line


def test_bad_parameter_value(main_in_process, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = main_in_process(*BASE, "--methods", "telea:radius=0", "--masks", "lines")
    line = assert_one_line_error(code, stderr, 2)
    assert "radius" in line and ">= 1" in line


def test_malformed_spec(run_cli):
    code, _, stderr = run_cli(*BASE, "--methods", "telea:radius", "--masks", "lines")
    line = assert_one_line_error(code, stderr, 2)
    # telea:radius reads as telea:path=radius (the name:PATH shorthand): the error says so
    assert "no parameter 'path'" in line and "name:path=VALUE" in line and "key=value" in line
    assert "radius=3" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_device_cuda_without_gpu(run_cli):
    code, _, stderr = run_cli(*BASE, "--methods", "telea", "--masks", "lines", "--device", "cuda")
    line = assert_one_line_error(code, stderr, 2)
    assert "cuda" in line.lower()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda_gives_the_cpu_results(run_cli, tmp_path):
    means = {}
    for device in ("cpu", "cuda"):
        code, _, stderr = run_cli(
            "run", "--methods", "unet-fill,diffusion,mean,telea", "--masks", "lines,square",
            "--limit", "64", "--device", device, "--out", device, "--quiet",
        )  # fmt: skip
        assert code == 0, stderr
        run = json.loads((tmp_path / device / "run.json").read_text())
        assert device in json.dumps(run), run  # the device is recorded
        board = json.loads((tmp_path / device / "leaderboard.json").read_text())
        means[device] = {
            (t["mask"], e["method"]): e["metrics"]["psnr"]["mean"]
            for t in board["tables"]
            for e in t["entries"]
        }
    assert means["cpu"].keys() == means["cuda"].keys() and len(means["cpu"]) == 8
    for key, value in means["cpu"].items():
        assert means["cuda"][key] == pytest.approx(value, abs=0.05), key


def test_unknown_option(run_cli):
    code, _, stderr = run_cli("run", "--methods", "telea", "--masks", "lines", "--bogus")
    line = assert_one_line_error(code, stderr, 2)
    assert "unrecognized arguments: --bogus" in line


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "--methods", "telea", "--masks", "lines", "--limit", "many"], "many"),
        (["run", "--methods", "telea", "--masks", "lines", "--limit", "0"], "--limit"),
        (["run", "--methods", "telea", "--masks", "lines", "--batch-size", "0"], "--batch-size"),
        (
            ["run", "--methods", "telea,telea", "--masks", "lines"],
            "listed twice (after aliases and defaults): telea",
        ),
        (["run", "--methods", "telea,telea:radius=3", "--masks", "lines"], "listed twice"),
        (["run", "--methods", "all,telea", "--masks", "lines"], "all"),
        (["run", "--masks", "lines"], "--methods"),
        (["run", "--methods", "telea", "--masks", "lines", "--split", "val"], "val"),
        (["list", "widgets"], "widgets"),
        ([], "command"),
    ],
)
def test_argument_errors(main_in_process, tmp_path, monkeypatch, args, expected):
    """Further usage errors, in process (each subprocess costs seconds of torch import)."""
    monkeypatch.chdir(tmp_path)
    code, _, stderr = main_in_process(*args)
    line = assert_one_line_error(code, stderr, 2)
    assert expected in line


def test_interrupted_run_exits_130_with_a_resume_hint(main_in_process, tmp_path, temp_method):
    """A real Ctrl-C of the driver, sent from the worker (a KeyboardInterrupt the method raises
    itself only fails its images: tests/test_process_faults.py)."""
    import os
    import signal
    import time

    from methods.floors import MeanFill

    driver = os.getpid()

    class Interrupts(MeanFill):
        def inpaint(self, masked, mask):
            if os.getpid() != driver:  # the worker process that runs the method
                os.kill(driver, signal.SIGINT)
                time.sleep(60)  # the driver stops this worker
            return super().inpaint(masked, mask)

    name = temp_method("test-cli-interrupt", Interrupts)
    code, stdout, stderr = main_in_process(
        "run", "--methods", name, "--masks", "square", "--limit", "5", "--quiet",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 130
    assert "rerun the same command to resume" in stderr and "Traceback" not in stderr
    assert json.loads((tmp_path / "o" / "run.json").read_text())["status"] == "interrupted"


def test_failing_method_still_prints_the_table_and_warns(main_in_process, tmp_path, temp_method):
    class Crashes(Method):
        def inpaint(self, masked, mask):
            raise RuntimeError("kaboom")

    name = temp_method("test-cli-crash", Crashes)
    code, stdout, stderr = main_in_process(
        "run", "--methods", f"mean,{name}", "--masks", "square", "--limit", "5", "--quiet",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 0
    assert tables(stdout) == {"square": ["mean"]}  # a method that failed everything is unranked
    assert f"–    {name} †" in stdout  # but listed, marked incomplete
    assert "warning: 5 image evaluations failed" in stderr
    assert "RuntimeError: kaboom ×5" in stderr
    assert "records.jsonl" in stderr


# -- data errors: exit 1, one line naming the file ------------------------------------------------
def _photo_folder(tmp_path, broken: bytes):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(photos / f"img{i}.png"), rng.integers(0, 256, (40, 48, 3), np.uint8))
    (photos / "img1_broken.png").write_bytes(broken)
    return photos


def _truncated_png() -> bytes:
    ok, encoded = cv2.imencode(".png", np.random.default_rng(1).integers(0, 256, (40, 48, 3)))
    assert ok
    return encoded.tobytes()[: encoded.size // 2]


FOLDER_RUN = [*BASE, "--methods", "mean", "--masks", "square", "--dataset", "folder:photos"]


@pytest.mark.parametrize("broken", [b"this is not an image at all", "truncated"])
def test_corrupt_image_in_folder_dataset(run_cli, tmp_path, broken):
    _photo_folder(tmp_path, _truncated_png() if broken == "truncated" else broken)
    code, _, stderr = run_cli(*FOLDER_RUN, "--size", "32")
    line = assert_one_line_error(code, stderr, 1)
    assert "img1_broken.png" in line and "photos" in line


def test_png_with_a_bad_header_in_folder_gives_exactly_one_line(run_cli, tmp_path):
    _photo_folder(tmp_path, b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    code, _, stderr = run_cli(*FOLDER_RUN, "--size", "32")
    line = assert_one_line_error(code, stderr, 1)
    assert "img1_broken.png" in line


def _cifar_batch(n: int) -> dict:
    rng = np.random.default_rng(n)
    return {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


@pytest.mark.parametrize("others_present", [True, False])
def test_corrupt_cifar_file(run_cli, tmp_path, others_present):
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    good = pickle.dumps(_cifar_batch(8), protocol=2)
    if others_present:
        for i in range(1, 6):
            (folder / f"data_batch_{i}").write_bytes(good)
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"cat"]}, 2))
        (folder / "test_batch").write_bytes(good[: len(good) // 2])  # truncated download
    else:
        (folder / "test_batch").write_bytes(np.random.default_rng(1).bytes(4096))  # garbage
    code, _, stderr = run_cli(
        *BASE, "--methods", "mean", "--masks", "square", "--dataset", "cifar10",
        "--data-dir", "cifar",
    )  # fmt: skip
    line = assert_one_line_error(code, stderr, 1)
    assert "test_batch" in line and "corrupt" in line


def test_missing_cifar_without_download(main_in_process, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code, _, stderr = main_in_process(
        *BASE, "--methods", "mean", "--masks", "square", "--dataset", "cifar10:download=false",
        "--data-dir", "empty",
    )  # fmt: skip
    line = assert_one_line_error(code, stderr, 1)
    assert "cifar-10-batches-py" in line and "empty" in line


def test_corrupt_records_file_in_out_dir(run_cli, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    good = {"method": "mean", "mask": "square", "index": 0, "status": "ok"}
    (out / "records.jsonl").write_text(json.dumps(good) + "\n{not json\n" + json.dumps(good) + "\n")
    code, _, stderr = run_cli(*BASE, "--methods", "mean", "--masks", "square")
    line = assert_one_line_error(code, stderr, 1)
    assert "records.jsonl" in line and "line 2" in line


def test_corrupt_run_json_in_out_dir(main_in_process, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.json").write_text('{"identity": {"seed": ')
    code, _, stderr = main_in_process(*BASE, "--methods", "mean", "--masks", "square")
    line = assert_one_line_error(code, stderr, 1)
    assert "run.json" in line


@pytest.mark.parametrize("content", ["[]", '{"identity": [1, 2]}'])
def test_run_json_of_the_wrong_shape_in_out_dir(main_in_process, tmp_path, monkeypatch, content):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.json").write_text(content)
    code, _, stderr = main_in_process(*BASE, "--methods", "mean", "--masks", "square")
    line = assert_one_line_error(code, stderr, 1)
    assert "run.json" in line
