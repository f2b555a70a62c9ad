"""The README's "Add a method" example must work as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark.method import METHODS
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture
def readme_method():
    blocks = [b for b in python_blocks() if "METHODS.register" in b]
    assert len(blocks) == 1, "the README should show one method example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    name = re.search(r'METHODS\.register\("([^"]+)"\)', blocks[0]).group(1)
    yield name
    METHODS.remove(name)


def test_readme_method_example_registers_and_beats_the_mean_floor(readme_method, tmp_path):
    result = run_benchmark(
        RunConfig(
            methods=[readme_method, "mean"],
            masks=["lines"],
            limit=64,
            workers=1,
            progress=False,
            out=str(tmp_path / "run"),
        )
    )
    entries = {e["method"]: e for e in result.leaderboard["tables"][0]["entries"]}
    assert entries[readme_method]["n"] == 64 and entries[readme_method]["failed"] == 0
    assert (
        entries[readme_method]["metrics"]["psnr"]["mean"]
        > entries["mean"]["metrics"]["psnr"]["mean"]
    )


# -- the two setup commands and CI -----------------------------------------------------------------
ROOT = README.parent
SCRIPTS = {"scripts/run-benchmark": ".venv-run", "scripts/test": ".venv-test"}


def test_every_script_the_readme_names_exists_and_is_executable():
    named = set(re.findall(r"(?:\./|bash )(scripts/[\w.-]+)", README.read_text(encoding="utf-8")))
    for script in named | set(SCRIPTS):
        path = ROOT / script
        assert path.is_file(), f"{script} is named in the README but missing"
        assert path.stat().st_mode & 0o111, f"{script} is not executable"


def _venv_of(text: str) -> str:
    return re.search(r"^ensure_venv (\S+) ", text, flags=re.M).group(1)


def test_scripts_and_ci_use_virtualenvs_of_their_own():
    venvs = {script: _venv_of((ROOT / script).read_text()) for script in SCRIPTS}
    assert venvs == SCRIPTS
    ci = (ROOT / ".ci" / "run").read_text()
    ci_venv = re.search(r"^rm -rf (\S+)$", ci, flags=re.M).group(1)
    assert ci_venv not in set(SCRIPTS.values()) | {".venv"}  # never a user's virtualenv
    assert f"python3 -m venv {ci_venv}" in ci  # removed and created afresh
    assert f"BENCH_VENV={ci_venv} scripts/test" in ci  # the README's test command, in CI's venv
    ignored = (ROOT / ".gitignore").read_text().split()
    for venv in [*SCRIPTS.values(), ci_venv]:
        assert f"{venv}/" in ignored, venv


def test_the_test_script_installs_the_extras_ci_tests():
    extras = re.search(r'^ensure_venv \S+ "([^"]*)"', (ROOT / "scripts/test").read_text(), re.M)
    assert set(extras.group(1).split(",")) >= {"test", "onnx", "ray"}
