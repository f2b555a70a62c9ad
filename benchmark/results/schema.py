"""The typed, versioned schema of the results files: ``leaderboard.json`` (and baselines),
``run.json``, the records of ``records.jsonl`` and an export's ``manifest.json``.

Every writer checks what it writes with :func:`validated` and every reader decodes through
:func:`read_file`, so a tampered or foreign file is one :class:`~benchmark.errors.DataError`
line naming the file and the first field that is wrong (msgspec's path, e.g.
``$.tables[0].entries[2].n``), never a traceback deep in a reader. The files stay plain JSON:
the code that builds and reads them keeps working on dicts, and the schema states what those
dicts must hold. Fields not named here are allowed (they are extra information, e.g. a
leaderboard entry's ``images_per_s``), so newer files stay readable by older readers of the
same format.

Formats: ``leaderboard.json`` carries ``format`` (:data:`LEADERBOARD_FORMAT`; the gate reads
from :data:`MIN_LEADERBOARD_FORMAT`); ``run.json`` carries ``format`` from
:data:`RUN_FORMAT` on (files without it are format 1, read as before); ``manifest.json`` has its
own ``format`` (:data:`MANIFEST_FORMAT`). A file of a newer format, or of a format too old to
read, is refused with a one-line "re-run with this version" message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from benchmark.errors import DataError

#: Version of ``leaderboard.json`` written by this code (3: ranking on common images, failures,
#: verdict; 4: comparisons, ties and verdict decided by :mod:`benchmark.decision`).
LEADERBOARD_FORMAT = 4
#: Oldest leaderboard format the readers accept (2 has every field the gate compares).
MIN_LEADERBOARD_FORMAT = 2
#: Version of ``run.json`` written by this code (files without ``format`` are format 1).
RUN_FORMAT = 2
#: Version of an export's ``manifest.json``.
MANIFEST_FORMAT = 1

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]
Ratio = Annotated[float, msgspec.Meta(ge=0, le=1)]
Scalar = str | int | float | bool | None
#: A configuration value: a scalar or a flat list (e.g. a list of mask names, a ratio range).
ConfigValue = Scalar | list[Scalar]


class Summary(msgspec.Struct):
    """One metric of one entry: mean with its 95 % CI over ``n`` images (null: none)."""

    mean: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: NonNegative = 0


class SetValue(msgspec.Struct):
    """One set metric (FID, KID, ...) of one entry over ``n`` images (value null: not computed,
    ``note`` says why; KID adds its standard deviation over ``subsets`` of ``subset_size``)."""

    value: float | None
    n: NonNegative
    std: float | None = None
    subset_size: NonNegative | None = None
    subsets: NonNegative | None = None
    note: str | None = None


class Entry(msgspec.Struct):
    """A method's row in one mask's table."""

    method: str
    metrics: dict[str, Summary]
    n: NonNegative
    failed: NonNegative = 0
    fingerprint: str | None = None
    rank: int | None = None
    set_metrics: dict[str, SetValue] = {}


class Table(msgspec.Struct):
    """One mask type's table."""

    mask: str
    entries: list[Entry]


#: ``per_image[mask][method][metric]``: one value per image index, null = not measured; the
#: ``_about`` key holds a sentence.
PerImage = dict[str, str | dict[str, dict[str, list[float | None]]]]


class SetReplicates(msgspec.Struct):
    """A baseline's gated set metric of one entry: the image indices it was measured on, its
    value there (null below 3 images) and its bootstrap replicates over those images."""

    indices: list[NonNegative]
    value: float | None
    replicates: list[float]


#: ``per_set[mask][method][metric]``: a gated set metric's replicates (``_about``: a sentence).
PerSet = dict[str, str | dict[str, dict[str, SetReplicates]]]


class Leaderboard(msgspec.Struct):
    """``leaderboard.json`` of a run, or a baseline (with ``baseline`` and ``per_image``)."""

    format: Annotated[int, msgspec.Meta(ge=1)]
    tables: list[Table]
    config: dict[str, ConfigValue] = {}
    baseline: dict[str, Any] | None = None
    per_image: PerImage | None = None
    #: feature mode -> the run folder's file of the real images' features (row = image index)
    real_features: dict[str, str] | None = None
    per_set: PerSet | None = None


class RunFile(msgspec.Struct):
    """``run.json``: what a run was asked to do, where it ran, and how it ended."""

    identity: dict[str, ConfigValue]
    config: dict[str, ConfigValue]
    status: Literal["running", "complete", "interrupted"]
    format: Annotated[int, msgspec.Meta(ge=1)] = 1
    images: NonNegative | None = None
    methods: dict[str, Any] = {}
    masks: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    started: str | None = None
    finished: str | None = None


class Record(msgspec.Struct):
    """The identity fields of one line of ``records.jsonl`` (the metric values beside them are
    numbers or null, checked by the readers that use them)."""

    method: str
    mask: str
    index: NonNegative
    status: str
    fingerprint: str = ""
    provenance: str | None = None
    seconds: Seconds | None = None
    mask_ratio: Ratio | None = None


#: PSNR in dB on [0, 1] data: MSE <= 1 gives >= 0, the MSE floor of 1e-10 caps it at 100.
Decibels = Annotated[float, msgspec.Meta(ge=0, le=100)]


class RecordValues(msgspec.Struct):
    """The pixel metrics of a successful record that a run may reuse: numbers within their
    ranges (never text, a bool, null, NaN or 1e308). Other metrics are numbers or null."""

    psnr: Decibels | msgspec.UnsetType = msgspec.UNSET
    ssim: Annotated[float, msgspec.Meta(ge=-1, le=1)] | msgspec.UnsetType = msgspec.UNSET
    hole_psnr: Decibels | None = None
    hole_l1: Ratio | None = None


class ManifestRow(msgspec.Struct):
    """One row of an export's manifest: the files of one (mask, image), relative to the export."""

    mask: str
    mask_folder: str
    index: NonNegative
    original: str
    masked: str
    mask_file: str
    mask_ratio: Ratio | None = None


class ManifestData(msgspec.Struct):
    """The data set an export was made from (what ``predictions:`` compares with its run)."""

    spec: str | None = None
    split: str | None = None
    size: NonNegative | None = None
    data_dir: str | None = None
    fingerprint: str | None = None
    images: NonNegative | None = None
    image_size: list[NonNegative] | None = None


class ManifestMask(msgspec.Struct):
    """One mask type of an export: its folder (a plain name) and its generator's fingerprint."""

    folder: str | None = None
    fingerprint: str | None = None


class Manifest(msgspec.Struct):
    """An export's ``manifest.json`` (``kind`` tells it from other files of that name)."""

    kind: str
    layout: Literal["native", "lama"]
    masks: dict[str, ManifestMask]
    files: list[ManifestRow]
    dataset: ManifestData = msgspec.field(default_factory=ManifestData)
    seed: NonNegative | None = None
    mask_ratio: list[Ratio] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1)] | None = None
    format: Annotated[int, msgspec.Meta(ge=1)] = 1


T = TypeVar("T")

#: File kind -> (schema, newest format this code reads, oldest).
_FORMATS: dict[type, tuple[int, int]] = {
    Leaderboard: (LEADERBOARD_FORMAT, MIN_LEADERBOARD_FORMAT),
    RunFile: (RUN_FORMAT, 1),
    Manifest: (MANIFEST_FORMAT, 1),
}


def _one_line(error: Exception, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validated(data: Any, schema: type[T], what: str = "data") -> Any:
    """``data`` unchanged when it fits ``schema``; else a one-line :class:`DataError`.

    Writers call this before writing, readers after decoding: both sides of a file agree.
    """
    try:
        typed = msgspec.convert(data, schema, strict=True)
    except msgspec.ValidationError as exc:
        raise DataError(
            f"{what} does not fit the {schema.__name__} schema: {_one_line(exc)}"
        ) from None
    _check_format(typed, schema, what)
    return data


def _check_format(typed: Any, schema: type, what: str) -> None:
    if schema not in _FORMATS:
        return
    newest, oldest = _FORMATS[schema]
    version = typed.format
    if version > newest:
        raise DataError(
            f"{what} is format {version}, newer than this version reads ({newest}); "
            "upgrade inpaint-bench to read it"
        )
    if version < oldest:
        hint = " (a baseline: `python -m benchmark gate --update`)" if schema is Leaderboard else ""
        raise DataError(
            f"{what} is format {version}, older than this version reads ({oldest}); "
            f"re-run it with this version{hint}"
        )


def decode(raw: bytes | str, schema: type[T], what: str) -> Any:
    """JSON text -> plain data (dicts and lists) checked against ``schema``."""
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise DataError(f"{what} is not valid JSON: {_one_line(exc)}") from None
    except RecursionError:
        raise DataError(f"{what} is not usable JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise DataError(f"{what} is not a JSON object (got {type(data).__name__})")
    return validated(data, schema, what)


def read_file(path: str | Path, schema: type[T], what: str) -> Any:
    """Read and check the results file ``path``; every problem is one :class:`DataError`."""
    path = Path(path)
    label = f"{what} {str(path)!r}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{label} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"{label} is a folder, not a file") from None
    except OSError as exc:
        raise DataError(f"{label} cannot be read: {exc.strerror or exc}") from None
    return decode(raw, schema, label)
