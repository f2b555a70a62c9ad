"""The README's "Add a method" example must work as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark.method import METHODS
from benchmark.runner import RunConfig, run_benchmark

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
