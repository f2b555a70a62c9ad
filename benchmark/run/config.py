"""The run's options, declared once: :class:`RunConfig`.

Each field of :class:`RunConfig` carries its own :class:`Option` (help text, flag, role). From
that one table come the ``run`` command's argparse options (:func:`add_run_arguments`,
:func:`config_from_args`), the gate's TOML keys (:func:`config_from_mapping`), the configuration
written to ``run.json`` (:meth:`RunConfig.to_json`), the run folder's identity
(:meth:`RunConfig.identity`) and the rule for whether two runs are comparable
(:data:`COMPARABLE_KEYS`). A new option is one new field here.

This module imports neither torch nor numpy: ``--help`` builds its parser from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import benchmark
from benchmark.errors import UsageError

#: Default per-batch time limit of a method call (seconds); 0 disables it.
DEFAULT_TIMEOUT = 600.0
EXECUTORS = ("local", "ray")
DEVICES = ("auto", "cpu", "cuda")  # benchmark.device.DEVICE_CHOICES, without importing torch
SPLITS = ("train", "test")

#: What an option decides. ``identity``: the value of every record (part of the run folder's
#: identity; a change recomputes); ``selection``: which records are made (methods, masks,
#: limit); ``execution``: how and where they are made (never their values).
Role = Literal["identity", "selection", "execution"]


def default_workers() -> int:
    """Cores this process may use (``benchmark.device.available_cores`` without torch)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _specs(text: str) -> list[str]:
    from benchmark.registry import split_specs

    return split_specs(text)


def _names(text: str) -> list[str]:
    """Comma-separated names, blanks dropped: ``"psnr, ms-ssim"`` -> ``["psnr", "ms-ssim"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _ratio(text: str) -> tuple[float, float]:
    from benchmark.masking import parse_ratio_range  # imports torch: only when used

    return parse_ratio_range(text)


@dataclass(frozen=True)
class Option:
    """How one :class:`RunConfig` field appears on the command line, in TOML and in results."""

    help: str
    role: Role = "execution"
    #: Part of the rule for whether two runs can be compared (see :data:`COMPARABLE_KEYS`).
    comparable: bool = False
    #: Text -> value for the command line and TOML strings (default: the field's type).
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    minimum: float | None = None
    #: The command-line flag when it is not ``--field-name``; ``""``: not on the command line.
    flag: str | None = None
    #: Accepted as a key of the gate's TOML configuration.
    toml: bool = True
    #: Written to ``run.json``'s ``config``.
    recorded: bool = True


def option(default: Any = MISSING, *, factory: Callable[[], Any] | None = None, **kw: Any) -> Any:
    """A dataclass field of :class:`RunConfig` with its :class:`Option`."""
    meta = {"option": Option(**kw)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    """Everything that defines a run (stored in ``run.json``)."""

    methods: list[str] = option(
        help="comma-separated methods (name or name:key=value), or 'all'",
        role="selection",
        parse=_specs,
    )
    masks: list[str] = option(
        factory=list,
        help="comma-separated mask generators (name or name:key=value); required unless "
        "--protocol sets them",
        role="selection",
        parse=_specs,
    )
    protocol: str | None = option(
        None,
        help="a named, versioned evaluation protocol (python -m benchmark list protocols): it "
        "sets the data set, split, size, masks and seed; --limit and a subset of its masks "
        "make the results partial",
        role="identity",
        comparable=True,
        metavar="NAME[@VERSION]",
    )
    dataset: str = option(
        "skimage-patches",
        help="data set: skimage-patches (offline default), cifar10, folder:PATH",
        role="identity",
        comparable=True,
    )
    split: str = option(
        "test",
        help="which split of the data set to evaluate (default: test)",
        role="identity",
        comparable=True,
        choices=SPLITS,
    )
    data_dir: str | None = option(None, help="where data set files live (cifar10)", role="identity")
    limit: int | None = option(
        None, help="evaluate the first N images only", role="selection", minimum=1
    )
    seed: int = option(0, help="mask seed (default 0)", role="identity", comparable=True, minimum=0)
    size: int | None = option(
        None,
        help="image side in pixels (default: the data set's own)",
        role="identity",
        comparable=True,
        minimum=1,
    )
    mask_ratio: tuple[float, float] | None = option(
        None,
        help="only masks whose hole ratio lies in [LOW, HIGH], e.g. 0.1-0.2 (part of the run)",
        role="identity",
        comparable=True,
        parse=_ratio,
        metavar="LOW-HIGH",
    )
    metrics: list[str] = option(
        factory=list,
        help="comma-separated metrics to compute besides the pixel metrics: per image "
        "(lpips-alex, ms-ssim, installed plug-in metrics) or per table entry (fid, fid-clean, "
        "kid, p-ids, u-ids); python -m benchmark list metrics. Default: the pixel metrics only. "
        "Records keep every value: adding a metric measures only the records lacking it",
        role="selection",
        parse=_names,
        metavar="NAMES",
    )
    weights_dir: str | None = option(
        None,
        help="folder of the perceptual metrics' weight files under their reference names "
        "(searched before the torch hub cache)",
        metavar="DIR",
    )
    allow_unverified_weights: bool = option(
        False,
        help="use weight files whose sha256 is not the published one (fine-tuned backbones, "
        "tests); printed when used and recorded in run.json",
    )
    batch_size: int | None = option(
        None,
        help="images per batch (default 256, fewer above 256x256 so a batch stays near 256 MiB); "
        "results do not depend on it",
        minimum=1,
    )
    workers: int = option(
        factory=default_workers,
        help="worker processes for the CPU work: decoding, masks, CPU methods and metrics "
        "(default: all cores; with --executor ray: Ray CPUs of a local cluster)",
        minimum=1,
    )
    device: str = option(
        "auto",
        help="where torch methods and metrics run (default auto: CUDA when present)",
        choices=DEVICES,
    )
    timeout: float = option(
        DEFAULT_TIMEOUT,
        help="time limit of one method on one batch; past it the batch is recorded as failed "
        "and the run goes on (default 600; 0 = none)",
        metavar="SECONDS",
        minimum=0,
    )
    max_memory: str | None = option(
        None,
        help="memory each worker process may take beyond what it starts with, e.g. 2G or 512M "
        "(address space); a method that needs more fails its batch (default: no limit)",
        metavar="SIZE",
        role="execution",
    )
    max_pixels: int | None = option(
        None,
        help="largest image the run decodes, in pixels (data set, mask files, predictions), "
        "checked from each file's header before decoding (default 50,000,000, or the "
        "INPAINT_BENCH_MAX_PIXELS environment variable)",
        metavar="PIXELS",
        minimum=1,
    )
    verify_data: bool = option(
        False,
        help="fingerprint data-set and mask files by their content instead of size and "
        "modification time (copies made with cp -p or rsync -a are then noticed); costs one "
        "read of every file per run",
    )
    executor: str = option(
        "local",
        help="local: this machine; ray: tasks on a Ray cluster (pip install 'inpaint-bench[ray]')",
        choices=EXECUTORS,
    )
    ray_address: str | None = option(
        None,
        help="address of a running Ray cluster (host:port or 'auto'); default: start a local one",
        metavar="ADDR",
    )
    out: str | None = option(
        None,
        help="run folder (default: results/runs/<dataset>-<split>-s<seed>-<hash>)",
        toml=False,
    )
    save_images: bool = option(
        False, help="write original, mask and every composite as lossless PNGs"
    )
    progress: bool = option(
        True, help="no progress bars", flag="--quiet", toml=False, recorded=False
    )

    def __post_init__(self) -> None:
        if self.mask_ratio is not None:
            self.mask_ratio = (float(self.mask_ratio[0]), float(self.mask_ratio[1]))

    def validate(self) -> None:
        """Check every bound the option table states; one :class:`UsageError` per problem."""
        for f in fields(self):
            opt: Option = f.metadata["option"]
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if value is None:
                continue
            if opt.minimum is not None and not (
                value >= opt.minimum and (not isinstance(value, float) or math.isfinite(value))
            ):
                raise UsageError(f"{flag} must be at least {opt.minimum:g}, got {value}")
            if opt.choices and value not in opt.choices:
                raise UsageError(f"unknown {f.name} {value!r}; valid: {', '.join(opt.choices)}")
        if self.ray_address and self.executor != "ray":
            raise UsageError("--ray-address needs --executor ray")
        if self.metrics:
            from benchmark.perceptual.selection import check_metric_names

            check_metric_names(self.metrics)

    def apply_image_limits(self) -> None:
        """Set ``--max-pixels`` and ``--verify-data`` for this process and the workers it
        starts (through the environment); the runner calls this once, after :meth:`validate`."""
        from benchmark.images import set_max_pixels, set_verify_data

        set_max_pixels(self.max_pixels)
        set_verify_data(self.verify_data)

    def identity(self) -> dict[str, Any]:
        """The settings that decide every record's value (besides method and mask)."""
        from benchmark.datasets.base import dataset_spec

        identity = {
            "dataset": str(dataset_spec(self.dataset)),
            "data_dir": str(Path(self.data_dir).expanduser().resolve()) if self.data_dir else None,
            "split": self.split,
            "size": self.size,
            "seed": self.seed,
            "version": benchmark.__version__,
        }
        if self.mask_ratio is not None:  # absent otherwise: older run folders keep their name
            identity["mask_ratio"] = [float(v) for v in self.mask_ratio]
        if self.protocol is not None:  # name@version, fingerprint, coverage; absent otherwise
            from benchmark.protocols import protocol_identity

            identity.update(protocol_identity(self))
        return identity

    def run_dir(self, root: str | Path = "results/runs") -> Path:
        """The records folder: ``--out`` if given, else
        ``results/runs/<dataset>-<split>-s<seed>-<hash>``, shared (and its records reused) by
        every run of the same data set, split, seed, size and hole-ratio range."""
        if self.out:
            return Path(self.out)
        from benchmark.names import readable  # the digest makes the name unique

        identity = self.identity()
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        slug = readable(identity["dataset"])[:40]
        return Path(root) / f"{slug}-{self.split}-s{self.seed}-{digest[:8]}"

    def results_dir(self, run_dir: Path) -> Path:
        """Where this run's ``leaderboard.json``, ``leaderboard.md`` and ``run.json`` go.

        With ``--out``: ``run_dir`` itself. Otherwise a folder per selection (methods, masks,
        ``--limit``) inside the shared ``run_dir``, ``<methods>-<masks>-<all|nN>-<hash>``, so a
        run with another selection never replaces this one's leaderboard.
        """
        if self.out:
            return Path(run_dir)
        from benchmark.names import readable  # the digest makes the name unique

        methods, masks = sorted(self.methods), sorted(self.masks)
        selection = {"methods": methods, "masks": masks, "limit": self.limit}
        digest = hashlib.sha256(json.dumps(selection, sort_keys=True).encode()).hexdigest()
        limit = "all" if self.limit is None else f"n{self.limit}"
        name = f"{readable('_'.join(methods))[:32]}-{readable('_'.join(masks))[:24]}-{limit}"
        return Path(run_dir) / f"{name}-{digest[:8]}"

    def to_json(self, **resolved: Any) -> dict[str, Any]:
        """The recorded options (``run.json``'s ``config``), with ``resolved`` values."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata["option"].recorded:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return {**out, **resolved}


def prepare_results_dir(config: RunConfig, run_dir: Path) -> Path:
    """Create :meth:`RunConfig.results_dir` with a ``records.jsonl`` link to the shared
    records (so every reader finds the leaderboard, run.json and records in one folder); with
    ``--out``, say on stderr when the folder's leaderboard of another selection is replaced."""
    import sys

    results = config.results_dir(run_dir)
    if results == Path(run_dir):
        previous = _previous_selection(results / "run.json")
        current = {k: getattr(config, k) for k in ("methods", "masks", "limit")}
        if previous is not None and previous != current:
            print(
                f"note: {results} held the leaderboard of another selection "
                f"({', '.join(f'{k} {v}' for k, v in previous.items() if current[k] != v)}); "
                "it is replaced (records are kept; without --out every selection gets a folder)",
                file=sys.stderr,
            )
        return results
    results.mkdir(parents=True, exist_ok=True)
    link, shared = results / "records.jsonl", Path(run_dir) / "records.jsonl"
    if not link.is_symlink() and not link.exists():
        try:
            link.symlink_to(Path("..") / "records.jsonl")
        except OSError:  # no symbolic links on this file system: a hard link (appends are in place)
            shared.touch()
            os.link(shared, link)
    return results


def _previous_selection(run_json: Path) -> dict[str, Any] | None:
    """methods, masks and limit of the run recorded in ``run_json`` (None if unreadable)."""
    try:
        recorded = json.loads(run_json.read_text(encoding="utf-8"))["config"]
        return {k: recorded.get(k) for k in ("methods", "masks", "limit")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


#: Options of every run, by field name.
OPTIONS: dict[str, Option] = {f.name: f.metadata["option"] for f in fields(RunConfig)}
#: Keys whose values must agree for two runs to be compared (besides the data's content).
COMPARABLE_KEYS: tuple[str, ...] = tuple(k for k, o in OPTIONS.items() if o.comparable)
#: Keys of the gate's TOML configuration.
TOML_KEYS: tuple[str, ...] = tuple(k for k, o in OPTIONS.items() if o.toml)


def _flag(name: str, opt: Option) -> str:
    return opt.flag or "--" + name.replace("_", "-")


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def add_run_arguments(parser: argparse.ArgumentParser, cls: type = RunConfig) -> None:
    """One argparse option per field of ``cls`` (defaults stay ``None``: the dataclass's own
    defaults apply when an option is not given)."""
    for f in fields(cls):
        opt: Option = f.metadata["option"]
        if opt.flag == "":
            continue
        kwargs: dict[str, Any] = {"help": opt.help, "dest": f.name, "default": None}
        if f.type in ("bool",):
            # a flag flips the default: --save-images sets True, --quiet sets progress False
            kwargs["action"] = "store_const"
            kwargs["const"] = not f.default
        else:
            kwargs["type"] = opt.parse or _scalar_type(f.type)
            if opt.choices:
                kwargs["choices"] = opt.choices
            if opt.metavar:
                kwargs["metavar"] = opt.metavar
            if _required(f):
                kwargs["required"] = True
        parser.add_argument(_flag(f.name, opt), **kwargs)


def _scalar_type(annotation: str) -> Callable[[str], Any]:
    base = annotation.split("|")[0].strip()
    return {"int": int, "float": float, "str": str}.get(base, str)


def config_from_args(args: argparse.Namespace, cls: type = RunConfig, **overrides: Any) -> Any:
    """A ``cls`` (:class:`RunConfig`) from parsed ``run`` options; options not given keep
    their defaults."""
    given = {
        f.name: getattr(args, f.name)
        for f in fields(cls)
        if getattr(args, f.name, None) is not None
    }
    return cls(**{**given, **overrides})


def config_from_mapping(
    data: Mapping[str, Any], where: str, cls: type = RunConfig, **overrides: Any
) -> Any:
    """A ``cls`` (:class:`RunConfig`) from a TOML table (the gate's configuration): unknown
    keys, missing required keys and wrong types are one :class:`UsageError` naming ``where``."""
    accepted = [f.name for f in fields(cls) if f.metadata["option"].toml]
    unknown = sorted(set(data) - set(accepted))
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(accepted)}"
        )
    missing = [f.name for f in fields(cls) if _required(f) and f.name not in data]
    if missing:
        raise UsageError(f"{where}: missing key(s) {', '.join(missing)}")
    values = {
        f.name: _toml_value(f.name, f.metadata["option"], f.type, data[f.name], where)
        for f in fields(cls)
        if f.name in data
    }
    return cls(**{**values, **overrides})


def _toml_value(name: str, opt: Option, annotation: str, value: Any, where: str) -> Any:
    base = annotation.split("|")[0].strip()
    if base.startswith("list"):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise UsageError(
                f"{where}: {name} must be a list of names (a non-empty list), got {value!r}"
            )
        return list(value)
    if opt.parse is not None and isinstance(value, str):
        return opt.parse(value)
    expected = {"int": int, "float": (int, float), "str": str, "bool": bool}.get(base, str)
    if (isinstance(value, bool) and base != "bool") or not isinstance(value, expected):
        label = "number" if base == "float" else base
        raise UsageError(f"{where}: {name} must be a {label}, got {value!r}")
    return float(value) if base == "float" else value


def command_line(recorded: Mapping[str, Any], cls: type = RunConfig) -> str:
    """The ``python -m benchmark run`` command that reproduces a recorded configuration
    (``run.json``'s ``config``): every option that decides or selects records, and the device,
    whenever it is set."""
    import shlex

    words = ["python", "-m", "benchmark", "run"]
    for f in fields(cls):
        opt: Option = f.metadata["option"]
        value = recorded.get(f.name)
        wanted = opt.role in ("identity", "selection") or f.name == "device"
        if not wanted or value in (None, []) or opt.flag == "" or isinstance(value, bool):
            continue
        if isinstance(value, list):
            value = "-".join(map(str, value)) if f.name == "mask_ratio" else ",".join(value)
        words += [_flag(f.name, opt), str(value)]
    return shlex.join(words)
