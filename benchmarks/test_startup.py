"""Start-up of the command line, from process start, against the bare interpreter.

* ``startup_python``: ``python -c pass`` (the same interpreter), the floor of any command.
* ``startup_help``, ``startup_run_help``, ``startup_list``: ``python -m benchmark --help``,
  ``python -m benchmark run --help`` and ``python -m benchmark list`` as subprocesses, output
  discarded after checking it.

Each command's ``extra_info`` holds its median seconds, its ratio to the bare interpreter and
whether it imported torch (found once, outside the timing, by running the same command in a
wrapper that reports ``sys.modules``). Target: ``--help`` in 0.6 s or less on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: name -> (arguments of ``python -m benchmark``, text its output must contain)
COMMANDS = {
    "startup_help": (["--help"], "usage:"),
    "startup_run_help": (["run", "--help"], "--methods"),
    "startup_list": (["list"], "telea"),
}
#: Runs ``python -m benchmark ARGS`` and prints afterwards whether torch was imported.
IMPORTS_TORCH = """
import runpy, sys
sys.argv = ["benchmark", *sys.argv[1:]]
try:
    runpy.run_module("benchmark", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
"""


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, check=True
    )


def test_startup_python(benchmark, remember):
    benchmark.pedantic(_run, (["-c", "pass"],), rounds=10, warmup_rounds=1)
    remember(benchmark, "startup_python")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_startup(benchmark, remember, name):
    args, expected = COMMANDS[name]
    done = benchmark.pedantic(_run, (["-m", "benchmark", *args],), rounds=10, warmup_rounds=1)
    assert expected in done.stdout
    imports = _run(["-c", IMPORTS_TORCH, *args]).stderr.splitlines()[-1]
    benchmark.extra_info["imports_torch"] = imports == "torch imported: True"
    remember(benchmark, name)
