"""The README and the docs site (docs/) must say only what is true of the code.

Every ``python -m benchmark`` command in their code blocks parses with the real parser and names
registered entries with real parameters; the Python examples compile, and the plug-in examples
pass the contract checks; the leaderboards match the committed baseline; relative links and
anchors resolve; the setup scripts and CI the README names exist and agree with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import re
import shlex
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest
import torch

from benchmark.cli import build_parser
from benchmark.datasets import DATASETS
from benchmark.masking import MASKS
from benchmark.method import METHODS
from benchmark.metrics import METRICS
from benchmark.perceptual import PERCEPTUAL_METRICS
from benchmark.registry import Registry, parse_spec, split_specs
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark
from benchmark.tables import verdict_line
from benchmark.testing import check

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]
BASELINE = ROOT / "results" / "baseline.json"
#: Entries the pages define as user code (examples of plug-ins) or that exist in the tests only.
EXAMPLE_NAMES = {
    "row-mean",
    "my-method",
    "tiny-net",
    "example-row-fill",
    "example-stripes",
    "example-gradients",
    "example-hole-rmse",
    "nan-above-15",
    "nan-above-20",
}


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def code_blocks(page: Path, language: str | None = None) -> list[str]:
    """Fenced code blocks of ``page`` (of one ``language`` if given), indented ones included."""
    blocks = re.findall(
        r"^[ \t]*```(\w*)[^\n]*\n(.*?)^[ \t]*```", page.read_text("utf-8"), flags=re.S | re.M
    )
    return [body for lang, body in blocks if language is None or lang == language]


def python_blocks(page: Path) -> list[str]:
    return code_blocks(page, "python")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- commands in code blocks -----------------------------------------------------------------------
STOP_TOKENS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1"}


def benchmark_commands(page: Path) -> list[list[str]]:
    """The argument lists of every ``python -m benchmark ...`` in ``page``'s code blocks."""
    commands = []
    for block in code_blocks(page):
        text = re.sub(r"\\\n\s*", " ", block)  # join continuation lines
        for line in text.splitlines():
            found = re.search(r"-m benchmark(?=\s|$)(.*)", line)
            if not found:
                continue
            lexer = shlex.shlex(found.group(1), posix=True, punctuation_chars="|&;<>")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            argv = []
            for token in lexer:
                if token in STOP_TOKENS:
                    break
                argv.append(token)
            commands.append(argv)
    return commands


def test_the_pages_show_the_readme_commands():
    runs = [argv for argv in benchmark_commands(README) if argv[:1] == ["run"]]
    assert ["run", "--methods", "unet,telea", "--masks", "lines,square"] in runs
    text = README.read_text("utf-8")
    assert "./scripts/run-benchmark" in text and "./scripts/test" in text
    assert "TORCH_INDEX_URL" in text  # the CPU-wheel install note that .ci/run points to


def test_the_readme_is_short():
    assert len(README.read_text("utf-8").splitlines()) <= 400


def _parse(argv: list[str]) -> argparse.Namespace | None:
    """``argv`` parsed by the real parser; None for ``--help`` (which exits 0)."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 0, f"{argv} exits {exc.code}"
        return None


def _check_spec(registry: Registry, text: str, where: str) -> None:
    """``text`` names a registered entry (or a documented example) with real parameters."""
    spec = parse_spec(text)
    if spec.name in EXAMPLE_NAMES:
        return
    name = registry.canonical(spec.name)  # raises for an unknown name
    known = registry.parameters(name)
    unknown = [key for key in spec.kwargs if key not in known]
    assert not unknown, f"{where}: {text!r} has no parameter(s) {unknown}; it has {list(known)}"


def _specs(value: str | list[str] | None) -> list[str]:
    """Specs from an option, whether the parser left it as text or split it into a list."""
    if not value:
        return []
    return split_specs(value) if isinstance(value, str) else list(value)


def _entries_of(args: argparse.Namespace) -> list[tuple[Registry, str]]:
    """(registry, spec) for every entry a parsed command names."""
    entries = [(METHODS, s) for s in _specs(getattr(args, "methods", None)) if s != "all"]
    if args.command == "train":
        entries.append((METHODS, args.method))
    entries += [(MASKS, s) for s in _specs(getattr(args, "masks", None))]
    entries += [(DATASETS, s) for s in _specs(getattr(args, "dataset", None))]
    return entries


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_benchmark_command_parses_and_names_real_entries(page):
    for argv in benchmark_commands(page):
        where = f"{_rel(page)}: python -m benchmark {' '.join(argv)}"
        args = _parse(argv)
        if args is None:
            continue
        for registry, text in _entries_of(args):
            _check_spec(registry, text, where)
        if args.command == "check":
            for text in args.names:
                name = parse_spec(text).name
                if name not in EXAMPLE_NAMES:
                    kinds = (METHODS, MASKS, DATASETS, METRICS, PERCEPTUAL_METRICS)
                    assert any(name in r for r in kinds), where


def test_the_command_extractor_reads_shell_lines(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ python -m benchmark run --methods ns --masks lines \\\n"
        "    --limit 5 --out s1 >/dev/null   # a comment\n"
        "$ python -m torch.distributed.run --nproc_per_node 2 -m benchmark train unet | tail\n"
        "$ python -m benchmarks.other run\n```\n",
        "utf-8",
    )
    assert benchmark_commands(page) == [
        ["run", "--methods", "ns", "--masks", "lines", "--limit", "5", "--out", "s1"],
        ["train", "unet"],
    ]


def test_a_wrong_name_or_parameter_in_a_command_is_caught():
    with pytest.raises(KeyError):
        _check_spec(METHODS, "telae", "test")
    with pytest.raises(AssertionError, match="radus"):
        _check_spec(METHODS, "telea:radus=5", "test")
    _check_spec(METHODS, "predictions:preds,name=mine", "test")


# -- Python examples -------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_python_example_compiles(page):
    for block in python_blocks(page):
        compile(block, _rel(page), "exec")


def _example(page: Path, marker: str) -> dict:
    """Run the one Python block of ``page`` that contains ``marker``; return its namespace."""
    blocks = [b for b in python_blocks(page) if marker in b]
    assert len(blocks) == 1, f"{_rel(page)} should show one example with {marker!r}"
    namespace: dict = {}
    exec(compile(blocks[0], _rel(page), "exec"), namespace)
    return namespace


METHOD_EXAMPLE_PAGES = [README, DOCS / "plugins.md"]


@pytest.mark.parametrize("page", METHOD_EXAMPLE_PAGES, ids=_rel)
def test_the_method_example_registers_and_beats_the_mean_floor(page, tmp_path):
    block = next(b for b in python_blocks(page) if "METHODS.register" in b)
    name = re.search(r'METHODS\.register\("([^"]+)"\)', block).group(1)
    try:
        _example(page, "METHODS.register")
        result = run_benchmark(
            RunConfig(
                methods=[name, "mean"],
                masks=["lines"],
                limit=64,
                workers=1,
                progress=False,
                out=str(tmp_path / "run"),
            )
        )
    finally:
        if name in METHODS:
            METHODS.remove(name)
    entries = {e["method"]: e for e in result.leaderboard["tables"][0]["entries"]}
    assert entries[name]["n"] == 64 and entries[name]["failed"] == 0
    assert entries[name]["metrics"]["psnr"]["mean"] > entries["mean"]["metrics"]["psnr"]["mean"]


def test_the_mask_family_example_passes_the_contract_checks(temp_mask):
    namespace = _example(DOCS / "plugins.md", "class Stripes(MaskGenerator)")
    name = temp_mask("docs-stripes", namespace["Stripes"])
    results = check([name], kind="mask")
    assert results and all(r.passed for r in results), [r.line() for r in results]


def test_the_data_set_example_passes_the_contract_checks(temp_dataset):
    namespace = _example(DOCS / "plugins.md", "def gradients(")
    name = temp_dataset("docs-gradients", namespace["gradients"])
    results = check([name], kind="dataset")
    assert results and all(r.passed for r in results), [r.line() for r in results]
    with pytest.raises(ValueError):
        namespace["gradients"](count=0)


def test_the_metric_example_is_the_hole_rmse():
    metric = _example(DOCS / "plugins.md", "def hole_rmse(")["hole_rmse"]()
    result, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[0, :, :2] = True
    mask[1, :, 3, 3] = True
    expected = [
        ((result[i] - target[i])[mask[i].expand(3, 8, 8)] ** 2).mean().sqrt() for i in range(2)
    ]
    assert torch.allclose(metric.compute(result, target, mask), torch.stack(expected))
    assert metric.higher_is_better is False


# -- the leaderboards match the committed baseline -------------------------------------------------
ROW = re.compile(r"^\| (\d+) \| ([\w-]+)(?: \([\w ]+\))? \|(.*)\|$")
CELL = re.compile(r"([\d.]+) ± ([\d.]+)")
TABLE_METRICS = ("psnr", "ssim", "hole_psnr", "hole_l1")


def markdown_leaderboards(page: Path) -> dict[str, dict]:
    """``{mask: {"rows": {method: (rank, cells, n)}, "verdict": line}}`` of ``**mask**`` tables."""
    tables: dict[str, dict] = {}
    mask = None
    for line in page.read_text("utf-8").splitlines():
        heading = re.fullmatch(r"\*\*(\w+)\*\*", line)
        if heading:
            mask = heading.group(1)
            tables[mask] = {"rows": {}, "verdict": None}
        elif mask and (row := ROW.match(line)):
            *cells, n = [c.strip() for c in row.group(3).split("|")]
            tables[mask]["rows"][row.group(2)] = (int(row.group(1)), cells, int(n))
        elif mask and line.startswith("verdict: "):
            tables[mask]["verdict"] = line
    return tables


LEADERBOARD_PAGES = [README, DOCS / "guides" / "methods.md"]


@pytest.mark.parametrize("page", LEADERBOARD_PAGES, ids=_rel)
def test_the_leaderboard_shown_is_the_committed_baseline(page):
    baseline = json.loads(BASELINE.read_text("utf-8"))
    shown = markdown_leaderboards(page)
    assert set(shown) == {t["mask"] for t in baseline["tables"]}
    decimals = {"psnr": 2, "ssim": 4, "hole_psnr": 2, "hole_l1": 4}
    for table in baseline["tables"]:
        rows = shown[table["mask"]]["rows"]
        assert shown[table["mask"]]["verdict"] == verdict_line(table)
        for entry in table["entries"]:
            assert entry["method"] in rows, f"{entry['method']} missing from {table['mask']}"
            rank, cells, n = rows[entry["method"]]
            assert (rank, n) == (entry["rank"], entry["n"]), entry["method"]
            for metric, cell in zip(TABLE_METRICS, cells):
                summary, places = entry["metrics"][metric], decimals[metric]
                half = (summary["ci_high"] - summary["ci_low"]) / 2
                expected = f"{summary['mean']:.{places}f} ± {half:.{places}f}"
                assert CELL.fullmatch(cell) and cell == expected, (entry["method"], metric)


# -- links and anchors -----------------------------------------------------------------------------
def slug(heading: str) -> str:
    """The anchor Python-Markdown's ``toc`` gives a heading (its default slugify)."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    """Anchors of ``page``: its headings, explicit ``{#id}``s and, for the CLI page, the
    sections the build generates from the parser."""
    text = page.read_text("utf-8")
    hooks = _load(DOCS / "hooks.py")
    if hooks.MARKER in text:
        text += hooks.cli_reference()
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", text, flags=re.S | re.M)  # no code blocks
    found = set(re.findall(r"\{#([\w-]+)\}", text))
    for heading in re.findall(r"^#{1,6} (.+?)(?: \{#[\w-]+\})?$", text, flags=re.M):
        found.add(slug(heading))
    return found


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_and_anchors_resolve(page):
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", page.read_text("utf-8"), flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        assert not re.match(r"\w+://", target), f"{_rel(page)} links outside: {target}"
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_file(), f"{_rel(page)}: broken link {target}"
        assert ROOT in resolved.parents, f"{_rel(page)} points outside the repository: {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{_rel(page)}: no anchor #{anchor} in {path}"


def test_the_slugs_are_those_of_the_toc_extension():
    assert slug("Masks from files: `folder:PATH`") == "masks-from-files-folderpath"
    assert slug("Holes of a chosen size: `--mask-ratio`") == "holes-of-a-chosen-size-mask-ratio"


# -- TOML examples ---------------------------------------------------------------------------------
def test_the_plugin_pyproject_shown_is_the_example_package():
    shown = [b for b in code_blocks(DOCS / "plugins.md", "toml") if "[build-system]" in b]
    actual = (ROOT / "tests" / "plugin_example" / "pyproject.toml").read_text("utf-8")
    assert shown == [actual]


def test_the_gate_configuration_example_is_valid(tmp_path):
    from benchmark.commands.gate import load_config

    configs = [b for b in code_blocks(DOCS / "guides" / "gate.md", "toml") if "methods" in b]
    assert configs
    for number, block in enumerate(configs):
        path = tmp_path / f"gate-{number}.toml"
        path.write_text(block, "utf-8")
        config = load_config(path)  # a RunConfig (a dict in older versions)
        fields = config if isinstance(config, dict) else dataclasses.asdict(config)
        for text in fields["methods"]:
            _check_spec(METHODS, text, "gate.md")
        for text in fields["masks"]:
            _check_spec(MASKS, text, "gate.md")


# -- the generated CLI reference -------------------------------------------------------------------
def test_the_cli_reference_shows_every_subcommand_and_option():
    reference = _load(DOCS / "hooks.py").cli_reference()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "train", "gate", "export-model"} <= set(subparsers.choices)
    for name, sub in subparsers.choices.items():
        assert f"{{#{name}}}" in reference, name
        assert len(sub._actions) > 1, f"{name}: the parser was built without its options"
        section = reference.split(f"{{#{name}}}")[1].split("\n## ")[0]
        for action in sub._actions:
            for option in action.option_strings:
                assert option in section, f"{name} {option}"
    assert (DOCS / "cli.md").read_text("utf-8").count("<!-- cli-reference -->") == 1


def test_docstrings_become_markdown():
    convert = _load(DOCS / "griffe_docstrings.py").markdown_docstring
    assert convert("Uses :class:`~benchmark.method.Method` and :func:`a.b`.") == (
        "Uses `Method` and `a.b`."
    )
    assert convert("Text.\n\n>>> 1 + 1\n2\n\nMore.") == (
        "Text.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nMore."
    )


# -- the two setup commands and CI -----------------------------------------------------------------
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


def test_the_script_reads_the_torch_index_the_readme_documents():
    assert "TORCH_INDEX_URL" in (ROOT / "scripts" / "_venv.sh").read_text()
