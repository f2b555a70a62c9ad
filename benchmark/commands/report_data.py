"""What the report reads from a run folder: ``leaderboard.json``, ``run.json`` and the records.

Both files are read through the results schema (:mod:`benchmark.results.schema`), then checked
against the further fields the report draws (the comparisons, the verdict, the buckets, the
difference to the leader, the parameters and versions), so a tampered or foreign file is one
:class:`~benchmark.errors.DataError` line naming it, never a traceback halfway through the HTML.
The structs here only validate: the report keeps reading the plain dicts, which the leaderboard
module's own table functions take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec

from benchmark.commands.sides import series_from_records
from benchmark.errors import DataError
from benchmark.results.schema import Leaderboard, RunFile, read_file
from benchmark.significance import BUCKET_EDGES, BUCKET_METRICS, ratio_buckets

#: Colours of the methods, in the run's method order (matplotlib's tab10, then tab20's light
#: halves); the same method has the same colour everywhere in the report.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
#: How deep free-form values (parameters, plug-ins, versions) may nest.
MAX_VALUE_DEPTH = 6
#: The per-image metrics the report reads from the records.
SERIES_METRICS = ("psnr", "ssim", "hole_psnr", "mask_ratio")

Count = Annotated[int, msgspec.Meta(ge=0)]


def depth(value: Any, limit: int = MAX_VALUE_DEPTH) -> int:
    """Nesting depth of a JSON value, counting no further than ``limit + 1``."""
    if limit < 0 or not isinstance(value, (dict, list)):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((depth(v, limit - 1) for v in children), default=0)


def _shallow(**values: Any) -> None:
    for name, value in values.items():
        if depth(value) > MAX_VALUE_DEPTH:
            raise ValueError(f"{name!r} is nested deeper than {MAX_VALUE_DEPTH} levels")


# -- leaderboard.json: the fields the report reads ----------------------------------------------
class Interval(msgspec.Struct):
    """A metric's summary over images, or a paired difference: mean and 95 % interval."""

    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n: Count = 0

    def __post_init__(self) -> None:
        if self.mean is not None and (self.ci_low is None or self.ci_high is None):
            raise ValueError("a mean without its confidence interval")


class PairedDifference(msgspec.Struct):
    """A paired difference decided by the rule of :mod:`benchmark.decision`: its interval is
    unbounded (null bounds) when too few images can exclude 0 at all, and then it is never
    significant."""

    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n: Count = 0
    significant: bool = False

    def __post_init__(self) -> None:
        unbounded = self.ci_low is None or self.ci_high is None
        if self.mean is not None and unbounded and self.significant:
            raise ValueError("a significant difference without its confidence interval")


class Difference(PairedDifference):
    """The verdict's paired PSNR difference."""

    mean: float


class Failure(msgspec.Struct):
    reason: str
    count: Count


class VsLeader(msgspec.Struct):
    psnr: PairedDifference | None = None


class BoardEntry(msgspec.Struct):
    metrics: dict[str, Interval]
    ranked: bool | None = None
    complete: bool | None = None
    tied_with_leader: bool | None = None
    images_per_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    failures: list[Failure] | None = None
    failure_reasons: list[str] | None = None
    unranked_reason: str | None = None
    vs_leader: VsLeader | None = None


class Comparison(msgspec.Struct):
    a: str
    b: str
    n: Count | None = None
    psnr: PairedDifference | None = None
    ssim: PairedDifference | None = None


class Verdict(msgspec.Struct):
    leader: str
    runner_up: str
    n: Count
    psnr: Difference
    tied: bool


class Common(msgspec.Struct):
    methods: list[str]
    n: Count


class BucketCell(msgspec.Struct):
    n: Count = 0
    psnr: float | None = None
    ssim: float | None = None


class Bucket(msgspec.Struct):
    label: str
    methods: dict[str, BucketCell]


class BoardTable(msgspec.Struct):
    entries: list[BoardEntry]
    images: Count | None = None
    common: Common | None = None
    comparisons: list[Comparison] | None = None
    verdict: Verdict | None = None
    buckets: list[Bucket] | None = None


class BoardConfig(msgspec.Struct):
    images: Count | None = None


class ReportBoard(msgspec.Struct):
    """What the report draws beyond the schema's :class:`~benchmark.results.schema.Leaderboard`."""

    tables: list[BoardTable]
    config: BoardConfig = msgspec.field(default_factory=BoardConfig)


# -- run.json: the fields the report reads ------------------------------------------------------
class Described(msgspec.Struct):
    """A method or mask of the run as ``run.json`` describes it."""

    parameters: dict[str, Any] = {}


class RunInfo(msgspec.Struct):
    """What the report draws beyond the schema's :class:`~benchmark.results.schema.RunFile`."""

    methods: dict[str, Described] = {}
    masks: dict[str, Described] = {}
    plugins: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    dataset_size: Count | None = None
    image_size: list[Count] = []
    device: str | None = None
    git_revision: str | None = None

    def __post_init__(self) -> None:
        _shallow(plugins=self.plugins, versions=self.versions)
        for kind, described in (("method", self.methods), ("mask", self.masks)):
            for name, item in described.items():
                _shallow(**{f"parameters of {kind} {name}": item.parameters})


def _checked(path: Path, what: str, schema: type, view: type) -> dict[str, Any]:
    """The results file ``path`` read through ``schema``, then checked against the report's
    ``view`` of it; every problem is one DataError."""
    data = read_file(path, schema, what)
    try:
        msgspec.convert(data, view, strict=True)
    except msgspec.ValidationError as exc:
        raise DataError(f"{what} {str(path)!r} is not usable in a report: {exc}") from None
    return data


def load_leaderboard(path: Path) -> dict[str, Any]:
    """``leaderboard.json`` as a dict, checked (see :class:`ReportBoard`)."""
    return _checked(path, "leaderboard", Leaderboard, ReportBoard)


def load_run_info(path: Path) -> dict[str, Any]:
    """``run.json`` as a dict, checked (see :class:`RunInfo`)."""
    return _checked(path, "run file", RunFile, RunInfo)


# -- the run --------------------------------------------------------------------------------------
class Run:
    """A run directory: leaderboard, run.json and (when present) per-image records."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise DataError(f"run directory {str(self.dir)!r} does not exist")
        board_path = self.dir / "leaderboard.json"
        if not board_path.exists():
            runs = sorted(p.parent.as_posix() for p in self.dir.glob("*/leaderboard.json"))
            if runs:  # the shared records folder of several runs, not one run
                shown = ", ".join(runs[:3]) + (
                    f" and {len(runs) - 3} more" if len(runs) > 3 else ""
                )
                plural = "s" if len(runs) > 1 else ""
                raise DataError(
                    f"{str(self.dir)!r} holds the records of {len(runs)} run{plural}, each with "
                    f"its leaderboard in a folder of its own: report one of {shown}"
                )
            raise DataError(f"run directory {str(self.dir)!r} has no leaderboard.json")
        self.leaderboard = load_leaderboard(board_path)
        run_json = self.dir / "run.json"
        self.info: dict[str, Any] = load_run_info(run_json) if run_json.exists() else {}
        records = self.dir / "records.jsonl"
        self.series = (
            series_from_records(records, self.leaderboard, SERIES_METRICS)
            if records.exists()
            else {}
        )

    @property
    def name(self) -> str:
        """The run folder's name; ``<records folder>/<selection>`` for a folder that shares
        its records (a ``records.jsonl`` link), as under ``results/runs/``."""
        if (self.dir / "records.jsonl").is_symlink():
            return f"{self.dir.resolve().parent.name}/{self.dir.name}"
        return self.dir.name

    @property
    def records_dir(self) -> Path:
        """The folder of the run's records: the run folder, or the shared records folder just
        above it that a selection folder's ``records.jsonl`` link points to. A link leading
        anywhere else is not followed for images (the run folder itself is used)."""
        records = self.dir / "records.jsonl"
        if records.exists():
            shared = records.resolve().parent
            if shared in (self.dir.resolve(), self.dir.resolve().parent):
                return shared
        return self.dir

    @property
    def images_dir(self) -> Path:
        """Where ``--save-images`` wrote the PNGs: beside the records, which the run folders of
        ``results/runs/<data>/<selection>/`` share through their ``records.jsonl`` link."""
        return self.records_dir / "images"

    @property
    def tables(self) -> list[dict[str, Any]]:
        return self.leaderboard["tables"]

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration (``run.json``), empty without one."""
        return self.info.get("config") or {}

    @property
    def board_config(self) -> dict[str, Any]:
        """The leaderboard's configuration (data set, split, seed, version, images)."""
        return self.leaderboard.get("config") or {}

    @property
    def images(self) -> int:
        return int(self.board_config.get("images") or self.info.get("images") or 0)

    @property
    def methods(self) -> list[str]:
        """Every method of the run in the run's own order (not a table's ranking)."""
        order = list(self.info.get("methods") or {})
        for table in self.tables:
            order += [e["method"] for e in table["entries"]]
        return list(dict.fromkeys(order))

    @property
    def colours(self) -> dict[str, str]:
        """One colour per method for the whole report."""
        return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(self.methods)}

    def table_methods(self, table: dict[str, Any]) -> list[str]:
        """The methods of ``table`` in the run's order."""
        present = {e["method"] for e in table["entries"]}
        return [m for m in self.methods if m in present]

    def buckets(self, table: dict[str, Any]) -> list[dict[str, Any]]:
        """The table's mask-ratio buckets (NVIDIA bins), recomputed from the records for older
        leaderboards."""
        buckets = table.get("buckets") or []
        if buckets and len(buckets) == len(BUCKET_EDGES) - 1:
            return buckets
        series = {
            e["method"]: self.series[(table["mask"], e["method"])]
            for e in table["entries"]
            if (table["mask"], e["method"]) in self.series
        }
        return ratio_buckets(series, BUCKET_METRICS) if series else []
