"""Set metrics (FID, fid-clean, KID, P-IDS, U-IDS) of a run: features stored as records arrive,
values computed per (method, mask) table entry when the run finishes.

An entry's set is the images its other metrics are summarised on: for a ranked entry the
table's common images (every ranked method completed them), for an unranked one its own. The
real set is the ground truth of the same images, in the same order (P-IDS pairs them). Each
entry gets ``set_metrics[name] = {"value", "n", ...}`` (KID also ``std``, ``subset_size``,
``subsets``); the leaderboard's config says which variant each metric is and where it is
comparable (:func:`set_metric_notes`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.perceptual import PERCEPTUAL_METRICS
from benchmark.perceptual.feature_store import FeatureStore, real_features
from benchmark.perceptual.selection import ExtraMetrics
from benchmark.perceptual.sets import FID_COMPARABLE_N, set_values
from benchmark.records import STATUS_OK


def store_features(store: FeatureStore, records: list[dict[str, Any]]) -> None:
    """Move the feature arrays of ``records`` (``_features``) into ``store``, one file per mode,
    leaving their references in each record's ``features`` (before the records are written)."""
    carrying = [r for r in records if "_features" in r]
    if not carrying:
        return
    for mode in dict.fromkeys(m for r in carrying for m in r["_features"]):
        rows = [r for r in carrying if mode in r["_features"]]
        references = store.write(mode, np.stack([r["_features"][mode] for r in rows]))
        for record, reference in zip(rows, references):
            record.setdefault("features", {})[mode] = reference
    for record in carrying:
        del record["_features"]


def has_features(store: FeatureStore, record: dict[str, Any], extra: ExtraMetrics) -> bool:
    """The record refers to stored features of every mode its run's set metrics need."""
    references = record.get("features") or {}
    return all(store.resolves(references.get(mode)) for mode in extra.modes)


def add_set_metrics(
    leaderboard: dict[str, Any],
    records: Iterable[dict[str, Any]],
    extra: ExtraMetrics,
    store: FeatureStore,
    real: dict[str, np.ndarray],
) -> None:
    """Compute every set metric of ``extra`` for each entry of ``leaderboard`` (in place).

    ``records``: the run's current records; ``store``: the run folder's features (the one
    the run checked its records against, so no file is read twice); ``real``: per mode, the
    real images' features indexed by image index (:func:`compute_real_features`).
    """
    by_pair: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for record in records:
        if record.get("status") == STATUS_OK:
            pair = (record["mask"], record["method"])
            by_pair.setdefault(pair, {})[int(record["index"])] = record
    for table in leaderboard["tables"]:
        ranked = set(table["common"]["methods"])
        own = {e["method"]: by_pair.get((table["mask"], e["method"]), {}) for e in table["entries"]}
        common = set.intersection(*(set(own[m]) for m in ranked)) if ranked else set()
        for entry in table["entries"]:
            chosen = own[entry["method"]]
            indices = sorted(common if entry["method"] in ranked else chosen)
            missing = [i for i in indices if not has_features(store, chosen[i], extra)]
            if missing:  # records from before features were stored: not measured, not guessed
                entry["set_metrics"] = {
                    name: {"value": None, "n": len(indices), "note": "features missing"}
                    for name in extra.set_names
                }
                continue
            fake = {
                mode: store.rows([chosen[i]["features"][mode] for i in indices])
                for mode in extra.modes
            }
            reals = {mode: real[mode][indices] for mode in extra.modes}
            entry["set_metrics"] = set_values(extra.set_names, reals, fake)


def keep_real_features(store: FeatureStore, real: dict[str, np.ndarray]) -> dict[str, str]:
    """Store the real images' features in the run folder too (row = image index), so the run
    folder alone can be compared (``compare --metrics fid``); returns mode -> file."""
    return {
        mode: store.write(mode, rows)[0].split("#")[0] for mode, rows in real.items() if len(rows)
    }


def entry_features(
    run_dir: Path,
    leaderboard: dict[str, Any],
    records: dict[int, dict[str, Any]],
    indices: list[int],
    mode: str,
    store: FeatureStore | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(real, fake)`` features of ``indices`` for one entry of a finished run folder
    (``records``: the entry's successful records by image index), rows in that order.
    ``store``: the folder's :class:`FeatureStore`, to read each file once over many entries.

    Raises :class:`~benchmark.errors.DataError` when the run stored no features of ``mode``
    (it was not asked for a set metric of that mode) or an image's features are missing.
    """
    from benchmark.errors import DataError

    store = store if store is not None else FeatureStore(run_dir)
    real_file = (leaderboard.get("real_features") or {}).get(mode)
    if not isinstance(real_file, str):
        raise DataError(
            f"{run_dir}: no stored real-image features of mode {mode!r} (run it with "
            "--metrics fid, fid-clean or kid)"
        )
    try:
        fake = store.rows([records[i]["features"][mode] for i in indices])
    except (KeyError, TypeError):
        raise DataError(f"{run_dir}: records without stored {mode!r} features") from None
    real = store.rows([f"{real_file}#{i}" for i in indices])
    return real, fake


def compute_real_features(
    extra: ExtraMetrics, dataset: Any, count: int, data: dict[str, Any], device: Any
) -> dict[str, np.ndarray]:
    """Per mode, the features of real images ``0 .. count - 1`` (cached, see
    :func:`benchmark.perceptual.feature_store.real_features`), computed on ``device``."""
    import torch

    def note(line: str) -> None:
        print(line, file=sys.stderr)

    out = {}
    for mode in extra.modes:
        stamp = f"{extra.feature_stamps[mode]}; device {torch.device(device).type}"
        out[mode] = real_features(
            data,
            stamp,
            count,
            lambda indices: dataset.images(indices).to(device),
            lambda batch, mode=mode: extra.mode_features(batch, mode),
            note,
        )
    return out


def set_metric_notes(names: Iterable[str], n_values: Iterable[int]) -> list[str]:
    """The leaderboard's lines about its set metrics: variant and reference of each, and the
    small-n warning for FID (with the smallest n of the tables)."""
    names = list(names)
    lines = [
        f"{name}: {PERCEPTUAL_METRICS[name]['variant']} ({PERCEPTUAL_METRICS[name]['reference']})"
        for name in names
    ]
    smallest = min(n_values, default=0)
    if any(n in ("fid", "fid-clean") for n in names) and smallest < FID_COMPARABLE_N:
        lines.append(
            f"warning: FID over {smallest:,} images (fewer than {FID_COMPARABLE_N:,}) is biased "
            "upward and not comparable with published figures; compare runs of the same n, or "
            "use KID, which is unbiased at small n"
        )
    return lines
