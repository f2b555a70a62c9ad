"""An outside plug-in package, installed as pip would install it, used through the command line.

``tests/plugin_example`` is a complete plug-in package (a method, a mask family, a data set and
a metric declared in its pyproject.toml). Installing it with pip into a fresh virtualenv would take
minutes, so the tests write the ``.dist-info`` record pip would write (its entry points read
from the example's pyproject.toml) into a temporary folder on ``PYTHONPATH``; importlib.metadata
then finds the package exactly as an installed one, in a subprocess the tests leave clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

EXAMPLE = Path(__file__).resolve().parent / "plugin_example"
PROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
PACKAGE = f"{PROJECT['name']} {PROJECT['version']}"
METHOD, MASK, DATASET = "example-row-fill", "example-stripes", "example-gradients"
METRIC = "example-hole-rmse"

BAD_PLUGINS = '''
from benchmark.method import Method


class Abstract(Method):
    """Forgets to implement inpaint."""


class NeedsPath(Method):
    def __init__(self, path):
        self.path = path

    def inpaint(self, masked, mask):
        return masked
'''


@pytest.fixture
def installed(tmp_path, fake_distribution):
    """Install the example; return ``cli(*args)``. Packages written to ``tmp_path / "later"``
    come after it on the path (pip's order decides which of two same names is used)."""
    site = tmp_path / "site"
    fake_distribution(site, PROJECT["name"], PROJECT["version"], PROJECT["entry-points"])
    paths = [str(site), str(tmp_path / "later"), str(EXAMPLE)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}

    def cli(*args: str) -> tuple[int, str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "benchmark", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done.returncode, done.stdout, done.stderr

    return cli


def test_the_example_declares_all_four_entry_point_groups():
    groups = PROJECT["entry-points"]
    assert groups == {
        "benchmark.methods": {METHOD: "inpaint_plugin_example.method:RowFill"},
        "benchmark.masks": {MASK: "inpaint_plugin_example.masks:Stripes"},
        "benchmark.datasets": {DATASET: "inpaint_plugin_example.data:gradients"},
        "benchmark.metrics": {METRIC: "inpaint_plugin_example.metrics:hole_rmse"},
    }


@pytest.mark.slow
def test_an_installed_plugin_is_listed_checked_and_run(installed, tmp_path):
    code, stdout, stderr = installed("list")
    assert code == 0, stderr
    for name in (METHOD, MASK, DATASET):
        line = next(line for line in stdout.splitlines() if line.startswith(f"  {name} "))
        assert f"[{PACKAGE}]" in line, line
    assert "[built-in]" in next(line for line in stdout.splitlines() if "  telea " in line)

    code, stdout, stderr = installed("check", METHOD, MASK, DATASET)
    assert code == 0, stdout + stderr
    assert stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")
    assert f"PASS  method {METHOD}: {MASK}: deterministic" in stdout  # checked on its own masks

    code, stdout, stderr = installed(
        "run", "--methods", f"{METHOD},telea", "--masks", f"{MASK},lines",
        "--dataset", DATASET, "--limit", "8", "--out", "o", "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    board = json.loads((tmp_path / "o" / "leaderboard.json").read_text())
    assert [t["mask"] for t in board["tables"]] == [MASK, "lines"]
    for table in board["tables"]:
        assert {e["method"] for e in table["entries"]} == {METHOD, "telea"}
        assert all(e["n"] == 8 and e["failed"] == 0 for e in table["entries"])


@pytest.mark.slow
def test_colliding_broken_and_unbuildable_plugins_warn_in_one_line_and_all_skips_them(
    installed, tmp_path, fake_distribution
):
    fake_distribution(
        tmp_path / "later",
        "bad-plugins",
        "0.3",
        {
            "benchmark.methods": {
                "telea": "bad_plugins:NeedsPath",  # named like a built-in
                METHOD: "bad_plugins:NeedsPath",  # named like the example's method
                "broken": "bad_plugins_missing:Thing",  # its module does not exist
                "abstract": "bad_plugins:Abstract",
                "needs-path": "bad_plugins:NeedsPath",  # cannot be built without a parameter
            }
        },
    )
    (tmp_path / "later" / "bad_plugins.py").write_text(BAD_PLUGINS)
    code, stdout, stderr = installed(
        "run", "--methods", "all", "--masks", "square", "--limit", "2", "--out", "o", "--quiet"
    )
    assert code == 0, stderr
    warnings = stderr.strip().splitlines()
    assert all(line.startswith("warning: ") for line in warnings), stderr
    assert "Traceback" not in stderr
    by_name = {name: [w for w in warnings if f"'{name}'" in w] for name in
               ("telea", METHOD, "broken", "abstract", "needs-path")}  # fmt: skip
    assert all(len(found) == 1 for found in by_name.values()), "\n".join(warnings)
    assert "built-in" in by_name["telea"][0] and "bad-plugins 0.3" in by_name["telea"][0]
    assert PACKAGE in by_name[METHOD][0] and "bad-plugins 0.3" in by_name[METHOD][0]
    assert by_name[METHOD][0].endswith("using the first")  # the example, first on the path
    assert "skipped" in by_name["broken"][0] and "ModuleNotFoundError" in by_name["broken"][0]
    assert "abstract" in by_name["abstract"][0] and "'path'" in by_name["needs-path"][0]
    board = json.loads((tmp_path / "o" / "leaderboard.json").read_text())
    ranked = {e["method"] for e in board["tables"][0]["entries"]}
    assert {"telea", METHOD, "mean"} <= ranked
    assert not ranked & {"broken", "abstract", "needs-path"}

    code, _, stderr = installed("run", "--methods", "abstract", "--masks", "square", "--limit", "2")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("error: method 'abstract' of plug-in bad-plugins 0.3"), stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_an_installed_metric_is_checked_opt_in_shown_and_gated(installed, tmp_path):
    code, stdout, stderr = installed("check", METRIC)
    assert code == 0, stdout + stderr
    assert stdout.strip().splitlines()[-1] == "5 passed, 0 failed"
    assert f"PASS  metric {METRIC}: deterministic" in stdout

    # each command is a process of its own (about 3 s here): opt-in without --metrics and a
    # side that did not measure the metric are tested in process (test_runner, test_compare)
    run = ("run", "--masks", "square", "--limit", "24", "--quiet", "--workers", "1")
    for methods, out in (("telea", "base"), ("mean", "new")):
        code, stdout, stderr = installed(
            *run, "--methods", methods, "--out", out, "--metrics", METRIC
        )
        assert code == 0, stderr
        assert "hole RMSE" in stdout  # a column of the table, as asked
        records = (tmp_path / out / "records.jsonl").read_text().splitlines()
        assert all(0 <= json.loads(r)[METRIC] < 1 for r in records)
        board = json.loads((tmp_path / out / "leaderboard.json").read_text())
        assert board["tables"][0]["entries"][0]["metrics"][METRIC]["mean"] > 0

    gate = ("--metrics", METRIC, "--tolerance-db", "100", "--tolerance-ssim", "1")
    code, stdout, stderr = installed(
        "compare", "base.json", "base", "--update", "--metrics", METRIC
    )
    assert code == 0, stderr
    per_image = json.loads((tmp_path / "base.json").read_text())["per_image"]["square"]["telea"]
    assert len(per_image[METRIC]) == 24  # the baseline embeds the gated plug-in metric
    # the baseline's telea against the new run's mean, renamed: mean's hole RMSE is far higher
    # (worse), and only the plug-in metric can fail (PSNR and SSIM tolerances are huge)
    code, stdout, stderr = installed("compare", "base.json", "new", "--pair", "telea=mean", *gate)
    assert code == 1, stdout + stderr
    row = next(line for line in stdout.splitlines() if line.startswith("telea "))
    assert "hole RMSE base" in stdout and row.endswith("▼ REGRESSION")
    assert "0 hole RMSE (a rise: lower is better)" in stdout
    # the other way round it is an improvement
    code, stdout, stderr = installed("compare", "new", "base", "--pair", "mean=telea", *gate)
    assert code == 0 and "▲ better" in stdout, stdout + stderr
