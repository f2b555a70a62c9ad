"""Per-image result records (``records.jsonl``) and atomic file writes.

Each record is one JSON line for one (method, mask, image index). Lines are appended a whole
batch at a time with a single write and flushed to disk, so an interrupted run loses at most
the batch in flight; a partial last line left by a crash is dropped when the file is reopened.
Every other file of a run is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from benchmark.errors import DataError

STATUS_OK = "ok"
#: Longest failure reason stored in a record (exception messages can be megabytes long).
REASON_LIMIT = 300
#: :meth:`RecordStore.append` calls ``fsync`` at most this often (seconds).
SYNC_SECONDS = 1.0


def truncate_reason(text: object, limit: int = REASON_LIMIT) -> str:
    r"""``text`` on one line (whitespace runs become one space), at most ``limit`` characters.

    A longer text is cut and ends with ``…`` so the cut is visible.

    >>> truncate_reason("ValueError: bad\n  value")
    'ValueError: bad value'
    >>> len(truncate_reason("x" * 1000, limit=50))
    50
    """
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN, Infinity and numbers beyond float range.

    Raises ``ValueError`` for anything invalid, including nesting too deep to parse.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def write_atomic(path: str | Path, text: str | bytes) -> None:
    """Write ``text`` (str or bytes) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON (NaN written as null)."""
    write_atomic(path, json.dumps(finite(data), indent=2) + "\n")


def read_json(path: str | Path, what: str = "file") -> Any:
    """Read a JSON file; a missing or corrupt file is a :class:`DataError` naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{what} {str(path)!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {str(path)!r} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise DataError(f"{what} {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise DataError(f"{what} {str(path)!r} is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        detail = truncate_reason(exc, 200)
        raise DataError(f"{what} {str(path)!r} is not valid JSON: {detail}") from None


def finite(data: Any) -> Any:
    """Replace NaN/inf floats by None so the JSON is standard."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data


_STRICT_JSON = json.JSONEncoder(allow_nan=False)


def _json_line(record: dict[str, Any]) -> str:
    """``record`` as one JSON line, NaN and infinities written as null (see :func:`finite`)."""
    try:  # the common case, without walking the record first
        return _STRICT_JSON.encode(record) + "\n"
    except ValueError:
        return json.dumps(finite(record)) + "\n"


def record_key(record: dict[str, Any]) -> tuple[str, str, str, int]:
    """Identity of a record: (method, method fingerprint, mask, image index)."""
    return (record["method"], record.get("fingerprint", ""), record["mask"], int(record["index"]))


#: Fields of a record that are not metric values.
_NOT_METRICS = frozenset(
    {
        "method",
        "mask",
        "index",
        "status",
        "fingerprint",
        "provenance",
        "metric_provenance",  # per extra metric (run --metrics): its code and weights' hash
        "features",  # per feature mode: the reference of the record's stored features
        "seconds",
        "mask_ratio",
    }
)


def invalid_values(record: dict[str, Any]) -> str | None:
    """Why the metric values of a record that says ``ok`` cannot be reused, or None.

    PSNR and hole PSNR must be numbers in [0, 100] dB, SSIM in [-1, 1], hole L1 in [0, 1]
    (:class:`benchmark.results.schema.RecordValues`); any other metric a number or null.
    Failed records carry no values and are always fine.
    """
    import msgspec

    from benchmark.results.schema import RecordValues

    if record.get("status") != STATUS_OK:
        return None
    try:
        msgspec.convert(record, RecordValues, strict=True)
    except msgspec.ValidationError as exc:
        return truncate_reason(exc, 120)
    for key, value in record.items():
        if key not in _NOT_METRICS and not (
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
        ):
            return truncate_reason(f"{key} is {value!r}, expected a number or null", 120)
    return None


def check_record(record: Any) -> None:
    """Raise ``ValueError`` unless ``record`` fits the record schema
    (:class:`benchmark.results.schema.Record`): text ``method``, ``mask``, ``status`` and
    ``fingerprint``, a non-negative integer ``index`` (not a float, not a bool), ``seconds`` >= 0
    and ``mask_ratio`` in [0, 1] when present."""
    import msgspec

    from benchmark.results.schema import Record

    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    try:
        msgspec.convert(record, Record, strict=True)
    except msgspec.ValidationError as exc:
        raise ValueError(truncate_reason(exc, 200)) from None


class RecordStore:
    """The records of one run directory, loaded once and appended batch by batch."""

    def __init__(
        self, path: str | Path, truncate: bool = True, drop_invalid: bool | None = None
    ) -> None:
        """Load ``path`` if any; ``truncate=False`` (for readers) leaves a partial tail on disk.

        ``drop_invalid`` (default: ``truncate``, i.e. for the run that owns the file) leaves out
        successful records whose values are invalid (:func:`invalid_values`), with one warning
        line counting them, so a resumed run recomputes them and never reuses them; readers
        see every record and judge the values themselves (the gate fails closed on them).
        """
        self.path = Path(path)
        self._truncate = truncate
        self._drop_invalid = truncate if drop_invalid is None else drop_invalid
        self._records: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        self._synced_at, self._unsynced = 0.0, False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        complete_end = raw.rfind(b"\n") + 1
        if complete_end < len(raw) and self._truncate:  # a crash mid-write left a partial line
            with open(self.path, "r+b") as handle:
                handle.truncate(complete_end)
        invalid: list[tuple[int, str]] = []
        for number, line in enumerate(raw[:complete_end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = loads_strict(line)
                check_record(record)
            except (ValueError, UnicodeDecodeError) as exc:
                raise DataError(
                    f"records file {str(self.path)!r} is corrupt at line {number}: "
                    f"{truncate_reason(exc, 200)}"
                ) from None
            key = record_key(record)
            problem = invalid_values(record) if self._drop_invalid else None
            if problem is not None:  # never reused: the run recomputes it
                invalid.append((number, problem))
                self._records.pop(key, None)
                continue
            self._records[key] = record
        if invalid:
            number, problem = invalid[0]
            print(
                f"warning: records file {str(self.path)!r}: {len(invalid)} records with invalid "
                f"values are ignored and recomputed by the next run (line {number}: {problem})",
                file=sys.stderr,
            )

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: tuple[str, str, str, int]) -> bool:
        return key in self._records

    def get(self, key: tuple[str, str, str, int]) -> dict[str, Any] | None:
        return self._records.get(key)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._records.values())

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append ``records`` with one write; later records replace earlier keys.

        Each batch reaches the operating system at once, so a crash or kill of the run loses
        nothing written; ``fsync`` (against a crash of the machine itself) runs at most once per
        :data:`SYNC_SECONDS` and in :meth:`sync`. At 2.3 ms per call, once per (method, mask)
        pair of every batch, it had cost 0.52 s of a 4.8 s run of four fast methods.
        """
        records = list(records)
        if not records:
            return
        text = "".join(_json_line(r) for r in records)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if time.monotonic() - self._synced_at >= SYNC_SECONDS:
                os.fsync(handle.fileno())
                self._synced_at, self._unsynced = time.monotonic(), False
            else:
                self._unsynced = True
        for record in records:
            self._records[record_key(record)] = record

    def sync(self) -> None:
        """``fsync`` what :meth:`append` wrote since its last one (the end of a run calls this)."""
        if self._unsynced and self.path.exists():
            with open(self.path, "rb") as handle:
                os.fsync(handle.fileno())
            self._synced_at, self._unsynced = time.monotonic(), False
