"""Same data or no comparison: what ``compare`` and ``gate`` check before they pair images.

Two sides are compared image by image, so both must have measured the same images with the same
holes. The configurations must agree on the options that decide every value (data set, split,
size, seed, mask-ratio range, protocol, the number of images and each mask's parameters:
:func:`benchmark.commands.sides.configuration_differences`), and beyond that text, on the data:

- the image size each side evaluated (``image_size`` of ``run.json``);
- the **data set's content**: its fingerprint in the run's provenance without the part that
  hashes the data set's code (the pixels' hash of an in-memory set; the listing of a folder
  with resolved paths, sizes and modification times, so the same folder name in two working
  directories is two data sets);
- the **masks' content**: each mask's fingerprint without its code hash (parameters, and the
  listing of a ``folder:`` mask's files), and, where both sides are run folders, every image's
  hole ratio (a mask generator whose code changed what it draws);
- the metrics' code: a difference is only noted (the values may differ for that reason alone).

Method code and weights may differ: that is what a gate tests. ``--allow-data-change`` accepts
a deliberate data change and says so. A side without fingerprints (a baseline written before
they were stored) cannot be checked on content; a note says so.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.commands.sides import Side, configuration_differences, series_from_records
from benchmark.errors import UsageError

#: Hole ratios that differ by more than this are different masks (ratios are float32 sums).
RATIO_TOLERANCE = 1e-6


def data_differences(base: Side, new: Side) -> tuple[list[str], list[str]]:
    """``(differences, notes)``: what differs in the data the two sides measured (empty:
    the same data as far as the files tell), and what could not be checked or only differs
    in ways that do not refuse the comparison."""
    diffs = configuration_differences(base, new)
    notes: list[str] = []
    before, after = (base.run or {}).get("image_size"), (new.run or {}).get("image_size")
    if before is not None and after is not None and list(before) != list(after):
        diffs.append(f"image size {_size(before)} -> {_size(after)}")
    base_prov, new_prov = _provenance(base), _provenance(new)
    if base_prov is None or new_prov is None:
        missing = [s.what for s, p in ((base, base_prov), (new, new_prov)) if p is None]
        notes.append(
            f"{' and '.join(missing)} records no data fingerprints: the data set's and masks' "
            "content were not compared (regenerate a baseline with --update to record them)"
        )
    else:
        diffs += _fingerprint_differences(base_prov, new_prov, notes)
    diffs += _ratio_differences(base, new)
    return diffs, notes


def check_same_data(base: Side, new: Side, allow_data_change: bool = False) -> list[str]:
    """Refuse (one-line :class:`UsageError`, exit 2) two sides that measured different data,
    unless ``allow_data_change``; returns the lines to print (notes, and the override)."""
    diffs, notes = data_differences(base, new)
    lines = [f"note: {n}" for n in notes]
    if diffs and not allow_data_change:
        raise UsageError(
            f"cannot compare {base.path} with {new.path}: different data "
            f"({'; '.join(diffs)}); rerun with the baseline's data and configuration, use "
            "--update for a new baseline, or --allow-data-change to compare anyway"
        )
    if diffs:
        lines.append(f"warning: --allow-data-change: comparing different data ({'; '.join(diffs)})")
    return lines


def _size(value: Any) -> str:
    return "x".join(str(v) for v in value) if isinstance(value, list) else reprlib.repr(value)


def _provenance(side: Side) -> dict[str, dict[str, Any]] | None:
    """Per mask, the provenance parts of the side's records (``None``: not recorded)."""
    masks = ((side.run or {}).get("provenance") or {}).get("masks")
    if not isinstance(masks, dict) or not masks:
        return None
    return {k: v for k, v in masks.items() if isinstance(v, dict)}


def content(fingerprint: Any) -> str:
    """A fingerprint without its code hash: what identifies the data, not the code reading it.

    >>> content("code 2a74cabdee6f; pixels 076560fe6742294c")
    'pixels 076560fe6742294c'
    >>> content("code 2c991f933267; params 0abf4a0cdfc1; files 8 5d0e3c1a2b4f6a7e")
    'params 0abf4a0cdfc1; files 8 5d0e3c1a2b4f6a7e'
    """
    parts = [p.strip() for p in str(fingerprint).split(";")]
    return "; ".join(p for p in parts if not p.startswith("code "))


def _fingerprint_differences(
    base: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], notes: list[str]
) -> list[str]:
    diffs = []
    for mask in sorted(set(base) & set(new)):
        before, after = base[mask], new[mask]
        if content(before.get("dataset")) != content(after.get("dataset")):
            diffs.append(
                f"data set content ({content(before.get('dataset'))} -> "
                f"{content(after.get('dataset'))})"
            )
        if content(before.get("mask")) != content(after.get("mask")):
            diffs.append(f"mask {mask!r} content ({content(before.get('mask'))} -> "
                         f"{content(after.get('mask'))})")  # fmt: skip
        for key in ("seed", "size", "split", "mask_ratio"):
            if before.get(key) != after.get(key):
                diffs.append(
                    f"mask {mask!r} {key} {reprlib.repr(before.get(key))} -> "
                    f"{reprlib.repr(after.get(key))}"
                )
        if before.get("metrics") != after.get("metrics"):
            note = "the metrics' code differs between the sides (values may differ for that alone)"
            if note not in notes:
                notes.append(note)
    return list(dict.fromkeys(diffs))  # one data set: named once, not once per mask


def _ratio_differences(base: Side, new: Side) -> list[str]:
    """Masks whose per-image hole ratios differ (both sides run folders only)."""
    before, after = _ratios(base), _ratios(new)
    if before is None or after is None:
        return []
    diffs = []
    for mask in sorted(set(before) & set(after)):
        common = sorted(set(before[mask]) & set(after[mask]))
        a = np.array([before[mask][i] for i in common])
        b = np.array([after[mask][i] for i in common])
        differ = np.flatnonzero(np.abs(a - b) > RATIO_TOLERANCE)
        if len(differ):
            i = common[differ[0]]
            diffs.append(
                f"mask {mask!r} content (hole ratio of image {i} {before[mask][i]:.4f} -> "
                f"{after[mask][i]:.4f}; {len(differ)} of {len(common)} images differ)"
            )
    return diffs


def _ratios(side: Side) -> dict[str, dict[int, float]] | None:
    """Per mask, each image's hole ratio from a run folder's records (``None``: a baseline)."""
    if "per_image" in side.leaderboard:
        return None
    folder = side.path if side.path.is_dir() else Path(side.path).parent
    series = series_from_records(folder / "records.jsonl", side.leaderboard, ("mask_ratio",))
    ratios: dict[str, dict[int, float]] = {}
    for (mask, _), values in series.items():
        known = ratios.setdefault(mask, {})
        for i, r in zip(values["index"].tolist(), values["mask_ratio"].tolist()):
            known.setdefault(i, r)
    return ratios
