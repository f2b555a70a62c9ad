"""The two sides of a comparison: a baseline file or a run folder, read through the results
schema, with per-image values, and the checks that decide whether they can be compared.

``compare``, ``gate`` and ``report`` read results through here. Every problem with a file is one
:class:`~benchmark.errors.DataError` line naming it (the gate turns it into exit 2).
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import DataError, UsageError
from benchmark.records import STATUS_OK, RecordStore
from benchmark.results.schema import Leaderboard, RunFile, read_file
from benchmark.run.config import COMPARABLE_KEYS
from benchmark.significance import Series

#: Metrics every gate compares, with their labels and display decimals (higher is better);
#: ``compare --metrics`` adds others (:mod:`benchmark.commands.gate_rules`).
GATED_METRICS = {"psnr": ("PSNR", 2), "ssim": ("SSIM", 4)}
#: Leaderboard ``config`` keys that must be equal for two sides to be compared: the run
#: options that decide every value (:data:`benchmark.run.config.COMPARABLE_KEYS`) and
#: ``images``, the number of images evaluated (``limit`` is represented by it).
COMPARED_CONFIG_KEYS = (*COMPARABLE_KEYS, "images")


# -- loading ----------------------------------------------------------------------------------
@dataclass
class Side:
    """One input of the comparison: its leaderboard and, when known, per-image values."""

    path: Path
    what: str
    leaderboard: dict[str, Any]
    series: dict[tuple[str, str], Series] | None = None  # (mask, method) -> per-image values
    run: dict[str, Any] | None = None  # run.json (or the run information of a baseline)
    #: gated set metrics: a baseline's ``per_set`` samples, or a run folder's records (with
    #: their feature references) by entry and image index (:mod:`benchmark.commands.set_gate`)
    sets: dict[tuple[str, str], dict[str, Any]] | None = None
    records: dict[tuple[str, str], dict[int, dict[str, Any]]] | None = None

    @property
    def config(self) -> dict[str, Any]:
        return self.leaderboard.get("config") or {}

    def entries(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (table["mask"], entry["method"]): entry
            for table in self.leaderboard["tables"]
            for entry in table["entries"]
        }


def load_side(path: str | Path, what: str, metrics: Sequence[str] = tuple(GATED_METRICS)) -> Side:
    """Load a baseline file or a run directory with its per-image values of ``metrics`` (fail
    closed).

    Any problem (missing or corrupt file, no per-image values, a metric it did not measure,
    NaN values, counts that do not match the leaderboard) is a :class:`DataError` naming the
    file. Set metrics among ``metrics`` (FID, KID) are checked and attached by
    :func:`benchmark.commands.set_gate.attach_sets`.
    """
    from benchmark.perceptual.selection import SET_TABLE

    sets = [m for m in metrics if m in SET_TABLE]
    side = _load_side(Path(path), what, [m for m in metrics if m not in SET_TABLE])
    if sets:
        from benchmark.commands.set_gate import attach_sets

        attach_sets(side, sets)
    return side


def _load_side(path: Path, what: str, metrics: Sequence[str]) -> Side:
    """:func:`load_side` for per-image ``metrics``."""
    if path.is_dir():
        board_path = path / "leaderboard.json"
        if not board_path.exists():
            raise DataError(f"{what} {str(path)!r} is a folder without a leaderboard.json")
    elif path.exists():
        board_path = path
    else:
        raise DataError(f"{what} {str(path)!r} does not exist")
    leaderboard = read_file(board_path, Leaderboard, what)
    side = Side(path, what, leaderboard)
    run_dir = board_path.parent
    if "per_image" in leaderboard:
        side.series = _decode_per_image(leaderboard, board_path, what, metrics)
        run = (leaderboard.get("baseline") or {}).get("run")
        side.run = run if isinstance(run, dict) else None
        return side
    if board_path.name != "leaderboard.json":
        fix = (
            "regenerate it with `python -m benchmark gate --update`"
            if what == "baseline"
            else "it must be a run directory with records.jsonl and run.json"
        )
        raise DataError(
            f"{what} {str(path)!r} has no per-image values (no 'per_image' section) and the "
            f"gate compares image by image: {fix}"
        )
    for name in ("run.json", "records.jsonl"):
        if not (run_dir / name).exists():
            raise DataError(
                f"{what} run folder {str(run_dir)!r} has no {name}: the gate needs the run's "
                "per-image records and configuration"
            )
    side.run = read_file(run_dir / "run.json", RunFile, f"{what} run file")
    side.series = series_from_records(
        run_dir / "records.jsonl", leaderboard, metrics, strict=True, what=what
    )
    return side


def _decode_per_image(
    leaderboard: dict[str, Any], path: Path, what: str, metrics: Sequence[str]
) -> dict[tuple[str, str], Series]:
    """``per_image`` of a baseline -> {(mask, method): {"index", metric: values}}, strictly:
    every entry has a list per metric, one value per image, each a finite number or null (not
    measured) at the same positions, and as many measured values as the entry's ``n``."""

    def bad(reason: str) -> DataError:
        return DataError(f"{what} {str(path)!r} has unusable per-image values: {reason}")

    data = leaderboard["per_image"]
    if not isinstance(data, dict):
        raise bad("'per_image' must be an object")
    images = (leaderboard.get("config") or {}).get("images")
    series: dict[tuple[str, str], Series] = {}
    for table in leaderboard["tables"]:
        for entry in table["entries"]:
            mask, method = table["mask"], entry["method"]
            where = f"{method}/{mask}"
            values = (
                (data.get(mask) or {}).get(method) if isinstance(data.get(mask), dict) else None
            )
            if not isinstance(values, dict):
                raise bad(f"none for {where}")
            arrays = {}
            for metric in metrics:
                column = values.get(metric)
                if column is None and metric not in GATED_METRICS:
                    raise DataError(
                        f"{what} {str(path)!r} has no per-image {metric!r} values ({where}): "
                        f"the gate decides on {', '.join(metrics)}; write a baseline that has "
                        f"them with --update and the same metrics"
                    )
                if not isinstance(column, list):
                    raise bad(f"no {metric!r} list for {where}")
                if isinstance(images, int) and len(column) != images:
                    raise bad(f"{where} {metric}: {len(column)} values for {images} images")
                if not all(v is None or _is_number(v) for v in column):
                    raise bad(f"{where} {metric}: values must be numbers or null")
                array = np.array([np.nan if v is None else v for v in column], dtype=float)
                nulls = np.array([v is None for v in column], dtype=bool)
                if not np.all(np.isfinite(array) | nulls):
                    raise bad(f"{where} {metric}: NaN or infinite values (null = not measured)")
                arrays[metric] = array
            measured = [np.isfinite(a) for a in arrays.values()]
            if any(not np.array_equal(measured[0], m) for m in measured[1:]):
                raise bad(f"{where}: the metrics were measured on different images")
            index = np.flatnonzero(measured[0])
            if len(index) != entry["n"]:
                raise bad(
                    f"{where}: {len(index)} measured values but the entry says n = {entry['n']}"
                )
            series[(mask, method)] = {"index": index} | {m: a[index] for m, a in arrays.items()}
    return series


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_for_gate(
    path: str | Path, what: str, metrics: Sequence[str] = tuple(GATED_METRICS)
) -> Side:
    """``load_side`` whose file problems exit 2: distinct from a regression's exit 1."""
    try:
        return load_side(path, what, metrics)
    except DataError as exc:
        raise UsageError(str(exc)) from None


def series_from_records(
    path: Path,
    leaderboard: dict[str, Any],
    metrics: Sequence[str] = tuple(GATED_METRICS),
    strict: bool = False,
    what: str = "run",
) -> dict[tuple[str, str], Series]:
    """Per-image ``metrics`` of the leaderboard's entries, from a run's ``records.jsonl``.

    Only successful records of the method version (fingerprint) the leaderboard reports, and
    of its first ``images`` indices, are used. ``strict`` (the gate): a successful record
    without a finite value of every metric, or an entry whose measured images do not number
    its ``n``, is a :class:`DataError` (one naming a metric the run did not measure at all);
    otherwise such images are left out.
    """
    entries = {
        (table["mask"], entry["method"]): entry
        for table in leaderboard["tables"]
        for entry in table["entries"]
    }
    series: dict[tuple[str, str], Series] = {}
    for key, chosen in chosen_records(path, leaderboard).items():
        entry = entries[key]
        order = sorted(chosen)
        arrays = {
            m: np.array([_float(chosen[i].get(m)) for i in order], dtype=float) for m in metrics
        }
        keep = (
            np.all([np.isfinite(a) for a in arrays.values()], axis=0)
            if order
            else np.array([], bool)
        )
        if strict:
            where = f"{key[1]}/{key[0]}"
            absent = [m for m in metrics if order and all(m not in chosen[i] for i in order)]
            if absent:
                raise DataError(
                    f"{what} run {str(path.parent)!r} did not measure {absent[0]!r} ({where} "
                    f"has no values): rerun it with --metrics {absent[0]}, or gate without it"
                )
            if not np.all(keep):
                raise DataError(
                    f"records file {str(path)!r}: {where} has a successful record without a "
                    f"finite {' and '.join(metrics)} (image {order[int(np.argmin(keep))]})"
                )
            if len(order) != entry.get("n"):
                raise DataError(
                    f"records file {str(path)!r} holds {len(order)} measured images of {where} "
                    f"but its leaderboard says n = {entry.get('n')}"
                )
        if not order:
            continue
        series[key] = {"index": np.array(order, dtype=np.int64)[keep]} | {
            m: a[keep] for m, a in arrays.items()
        }
    return series


def chosen_records(
    path: Path, leaderboard: dict[str, Any]
) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """Per entry of the leaderboard, its successful records by image index: those of the
    method version (fingerprint) the entry reports and of the first ``images`` indices (an
    entry without a fingerprint: the records when they are of one version only)."""
    entries = {
        (table["mask"], entry["method"]): entry
        for table in leaderboard["tables"]
        for entry in table["entries"]
    }
    images = (leaderboard.get("config") or {}).get("images")
    rows: dict[tuple[str, str], dict[str, dict[int, dict[str, Any]]]] = {}
    try:
        store = RecordStore(path, truncate=False)  # read-only: a run may still be writing
        for record in store:
            key = (record["mask"], record["method"])
            index = int(record["index"])
            if key not in entries or record["status"] != STATUS_OK:
                continue
            if images is not None and index >= images:
                continue
            fingerprint = str(record.get("fingerprint", ""))
            rows.setdefault(key, {}).setdefault(fingerprint, {})[index] = record
    except RecursionError:
        raise DataError(f"records file {str(path)!r} is not usable: nested too deeply") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"records file {str(path)!r} is not usable: {exc}") from None
    chosen_by_entry = {}
    for key, entry in entries.items():
        by_fingerprint = rows.get(key, {})
        wanted = entry.get("fingerprint")
        if wanted is not None:
            chosen_by_entry[key] = by_fingerprint.get(str(wanted), {})
        else:  # mixed versions: usable only when there is no doubt which records it used
            chosen_by_entry[key] = (
                next(iter(by_fingerprint.values())) if len(by_fingerprint) == 1 else {}
            )
    return chosen_by_entry


def _float(value: Any) -> float:
    return float(value) if _is_number(value) else float("nan")


def configuration_differences(base: Side, new: Side) -> list[str]:
    """What differs between the two sides' configurations (empty: comparable)."""
    diffs = []
    for key in COMPARED_CONFIG_KEYS:
        if base.config.get(key) != new.config.get(key):
            before, after = reprlib.repr(base.config.get(key)), reprlib.repr(new.config.get(key))
            diffs.append(f"{key} {before} -> {after}")
    base_masks, new_masks = _run_masks(base), _run_masks(new)
    for mask in sorted(set(base_masks) & set(new_masks)):
        before = base_masks[mask].get("parameters")
        after = new_masks[mask].get("parameters")
        if before != after:
            diffs.append(
                f"mask {mask!r} parameters {reprlib.repr(before)} -> {reprlib.repr(after)}"
            )
    return diffs


def _run_masks(side: Side) -> dict[str, dict[str, Any]]:
    masks = (side.run or {}).get("masks")
    if not isinstance(masks, dict):
        return {}
    return {k: v for k, v in masks.items() if isinstance(v, dict)}


def baseline_gaps(side: Side) -> list[str]:
    """Why a baseline is empty or partial (empty list: every entry covers every image)."""
    tables = side.leaderboard["tables"]
    if not tables:
        return ["it has no tables"]
    images = side.config.get("images")
    gaps = []
    for table in tables:
        if not table["entries"]:
            gaps.append(f"mask {table['mask']!r} has no entries")
        for entry in table["entries"]:
            covered = entry["n"] + entry["failed"]
            if not isinstance(images, int) or covered != images:
                gaps.append(
                    f"{entry['method']}/{table['mask']} covers {covered} of {images} images"
                )
    return gaps


def check_complete_run(side: Side) -> None:
    """A NEW run directory must have finished: an unfinished run is no evidence either way."""
    if "per_image" in side.leaderboard:
        return  # a baseline file: checked by baseline_gaps
    status = (side.run or {}).get("status")
    if status != "complete":
        raise UsageError(
            f"new run {str(side.path)!r} is not complete (status {status!r}); rerun its command "
            "to finish it"
        )


def parse_pairs(texts: Sequence[str]) -> dict[str, str]:
    """``--pair OLD=NEW`` options -> ``{NEW: OLD}``; a malformed or repeated one is a one-line
    :class:`UsageError`."""
    renames: dict[str, str] = {}
    for text in texts:
        old, sep, new = text.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise UsageError(
                f"--pair takes OLD=NEW (a baseline method = a new method), got {text!r}"
            )
        old, new = old.strip(), new.strip()
        if new in renames or old in renames.values():
            raise UsageError(f"--pair {text!r}: each method may be paired once")
        renames[new] = old
    return renames


def rename_methods(side: Side, renames: dict[str, str]) -> list[str]:
    """Call each method ``NEW`` of ``side`` by the baseline's name ``OLD`` (``--pair``), so a
    renamed method is compared with its old self; returns the note lines to print."""
    if not renames:
        return []
    present = {method for _, method in side.entries()}
    missing = sorted(set(renames) - present)
    if missing:
        raise UsageError(
            f"--pair: {', '.join(missing)} is not a method of {side.what} {str(side.path)!r}; "
            f"its methods: {', '.join(sorted(present))}"
        )
    clash = sorted(old for old in renames.values() if old in present and old not in renames)
    if clash:
        raise UsageError(
            f"--pair: {side.what} {str(side.path)!r} already has a method {clash[0]!r}; "
            "pair that one too or leave it out"
        )
    for table in side.leaderboard["tables"]:
        for entry in table["entries"]:
            entry["method"] = renames.get(entry["method"], entry["method"])
    for name in ("series", "sets", "records"):
        by_entry = getattr(side, name)
        if by_entry is not None:
            setattr(side, name, {(mask, renames.get(m, m)): v for (mask, m), v in by_entry.items()})
    return [f"note: --pair: baseline {old} compared with new {new}" for new, old in renames.items()]
