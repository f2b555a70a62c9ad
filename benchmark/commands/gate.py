"""``python -m benchmark gate``: run the fixed CI configuration, then the regression gate.

The configuration is one flat TOML file (default ``results/ci.toml``) whose keys are options
of ``run``: ``methods`` and ``masks`` (lists of specs), ``dataset``, ``split``, ``seed``,
``limit``, ``size``, ``batch_size``, ``device``, ``workers``, ``data_dir``. The run always
starts from scratch in ``--out`` (default ``results/runs/ci``): a method's code can change
without changing its fingerprint, so reusing earlier records would hide exactly the changes
the gate is for. Then NEW = that run is compared with ``--baseline`` (default
``results/baseline.json``) as ``compare`` does; ``--update`` rewrites the baseline instead.

The gate decides on PSNR, SSIM and every metric of the configuration's ``metrics`` key (the
run's ``--metrics``: what the run measures beyond the pixel metrics is what the gate adds), so
the baseline embeds the per-image values of each of them (of a set metric, FID, fid-clean or
KID: its bootstrap replicates; P-IDS and U-IDS cannot be gated).

Exit status as ``compare`` (the same rule and options: tolerances, broken images,
``--max-broken``, ``--fail-inconclusive``, ``--allow-data-change``): 0 no regression, 1 a
regression and nothing else, 2 the gate could not decide. Everything that goes wrong before
the comparison (a missing or unusable baseline or configuration, a data set or weights file
the run cannot read) exits 2: the gate fails closed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmark.commands.compare import fail_closed, gate, load_baseline
from benchmark.commands.gate_rules import Rules, add_rule_arguments, gated_metrics, rule_options
from benchmark.errors import UsageError
from benchmark.run.artifacts import RUN_FILES
from benchmark.run.config import RunConfig, config_from_mapping

DEFAULT_CONFIG = "results/ci.toml"
DEFAULT_BASELINE = "results/baseline.json"
DEFAULT_OUT = "results/runs/ci"
#: The CI budget of the whole configuration (issue 5): at most 5 minutes on 2 cores.
BUDGET_SECONDS = 300

#: Keys the gate's TOML file must give beyond the run's required options: the seed decides
#: every mask, so a baseline without it would not say what it measured.
GATE_REQUIRED_KEYS = ("seed",)

EXAMPLES = """\
examples:
  python -m benchmark gate                      # results/ci.toml vs results/baseline.json
  python -m benchmark gate --update             # deliberately rewrite results/baseline.json
  python -m benchmark gate --config my.toml --baseline my-baseline.json --out /tmp/ci

Exit status: 0 no regression; 1 a regression (and only that); 2 the gate cannot decide (a
missing or unusable baseline or configuration, a run that fails before the comparison,
missing or NaN per-image data, an empty or partial baseline, different data or
configurations, or with --fail-inconclusive a comparison its images cannot decide).
"""


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the tomli backport
        import tomli as tomllib
    return tomllib


def load_config(path: str | Path) -> RunConfig:
    """Read and check the flat TOML configuration; any problem is a UsageError naming it."""
    path = Path(path)
    toml = _toml()
    try:
        with open(path, "rb") as handle:
            data = toml.load(handle)
    except FileNotFoundError:
        raise UsageError(f"CI configuration {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"CI configuration {str(path)!r} is a folder, not a file") from None
    except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"CI configuration {str(path)!r} is not valid TOML: {exc}") from None
    where = f"CI configuration {str(path)!r}"
    missing = [k for k in GATE_REQUIRED_KEYS if k not in data]
    config = config_from_mapping(data, where)  # unknown keys, types, the run's required keys
    from benchmark.protocols import apply_protocol

    if "protocol" in data:  # it sets the seed and the masks; a key that disagrees is refused
        config, missing = apply_protocol(config, data, where), []
    elif "masks" not in data:
        missing.insert(0, "masks")
    if missing:
        raise UsageError(f"{where}: missing key(s) {', '.join(missing)}")
    return config


def fresh_run_dir(out: str | Path) -> Path:
    """``out`` emptied of an earlier run's files (anything else there is refused)."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {str(out)!r} is a file, not a folder")
        contents = {p.name for p in out.iterdir()}
        if contents and "run.json" not in contents:
            raise UsageError(f"--out {str(out)!r} is not empty and holds no run; choose another")
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    return out


def run_ci(config_path: str | Path, out: str | Path, progress: bool = False):
    """Run the CI configuration from scratch in ``out``; returns the run result and seconds."""
    from benchmark.run.runner import run_benchmark
    from benchmark.tables import render_console

    config = load_config(config_path)
    config.out, config.progress = str(fresh_run_dir(out)), progress
    started = time.perf_counter()
    result = run_benchmark(config)
    seconds = time.perf_counter() - started
    print(render_console(result.leaderboard))
    widths = [
        (e["metrics"]["psnr"]["ci_high"] - e["metrics"]["psnr"]["ci_low"]) / 2
        for t in result.leaderboard["tables"]
        for e in t["entries"]
        if e["n"] >= 2
    ]
    images = result.leaderboard["config"].get("images")
    print(
        f"CI configuration {config_path}: {len(config.methods)} methods x {len(config.masks)} "
        f"masks x {images} images in {seconds:.0f} s; 95 % CI half-width of mean PSNR "
        f"{min(widths, default=float('nan')):.2f}-{max(widths, default=float('nan')):.2f} dB"
    )
    if seconds > BUDGET_SECONDS:
        print(
            f"warning: the CI configuration took {seconds:.0f} s, over its "
            f"{BUDGET_SECONDS} s budget; lower 'limit' in {config_path}",
            file=sys.stderr,
        )
    return result, seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``gate``."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"default {DEFAULT_CONFIG}")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help=f"default {DEFAULT_BASELINE}")
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"run folder, emptied first (default {DEFAULT_OUT})"
    )
    add_rule_arguments(parser)  # the rule's options, as compare has them
    parser.add_argument(
        "--update", action="store_true", help="rewrite the baseline from this run instead"
    )
    parser.add_argument("--progress", action="store_true", help="show progress bars")


def run(args: argparse.Namespace) -> int:
    """``gate`` subcommand: run the CI configuration, then compare it with the baseline."""
    return fail_closed(_gate, args)


def update_command(args: argparse.Namespace) -> str:
    """The ``gate --update`` command for the user's own files: their ``--config``,
    ``--baseline`` and ``--out`` repeated, so the hint never rewrites the project's baseline."""
    import shlex

    words = ["python", "-m", "benchmark", "gate", "--update"]
    for flag, value, default in (
        ("--config", args.config, DEFAULT_CONFIG),
        ("--baseline", args.baseline, DEFAULT_BASELINE),
        ("--out", args.out, DEFAULT_OUT),
    ):
        if str(value) != default:
            words += [flag, str(value)]
    return shlex.join(words)


def _gate(args: argparse.Namespace) -> int:
    options = rule_options(args)  # fail before a minute of work
    if not args.update and not Path(args.baseline).exists():
        raise UsageError(
            f"baseline {str(args.baseline)!r} does not exist "
            f"(create it with: {update_command(args)})"
        )
    config = load_config(args.config)
    gated = gated_metrics(config.metrics)  # psnr, ssim and the config's metrics
    Rules(metrics=gated, tolerances=options["tolerances"]).check()
    metrics = [m.name for m in gated]
    if not args.update:
        load_baseline(args.baseline, args.allow_missing, metrics)
    try:
        result, _ = run_ci(args.config, args.out, progress=args.progress)
    except KeyboardInterrupt:
        raise
    except UsageError:
        raise
    except (
        Exception
    ) as exc:  # e.g. truncated weights (DataError, exit 1): never the regression code
        raise UsageError(
            f"the CI run failed before the comparison: {type(exc).__name__}: {exc}"
        ) from exc
    return gate(
        args.baseline,
        result.run_dir,
        update=args.update,
        update_command=update_command(args),
        metrics=metrics,
        **options,
    )
