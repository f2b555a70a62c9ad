"""Baseline files of the regression gate: a run's leaderboard with its per-image values and
where it came from, written atomically and diff-friendly."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import benchmark
from benchmark.commands.sides import GATED_METRICS, Side
from benchmark.errors import UsageError
from benchmark.records import finite, write_atomic
from benchmark.results.schema import Leaderboard, validated
from benchmark.run.config import command_line

#: Decimals of the per-image values embedded in a baseline.
PER_IMAGE_DECIMALS = 4


def baseline_from(
    side: Side, update_command: str, metrics: Sequence[str] = tuple(GATED_METRICS)
) -> dict[str, Any]:
    """A baseline: NEW's leaderboard, its per-image values of ``metrics`` (the gated ones),
    the bootstrap replicates of its gated set metrics (``per_set``:
    :mod:`benchmark.commands.set_gate`) and where it came from."""
    from benchmark.perceptual.selection import SET_TABLE

    set_metrics = [m for m in metrics if m in SET_TABLE]
    metrics = [m for m in metrics if m not in SET_TABLE]
    if side.series is None or side.run is None:
        raise UsageError(
            f"--update needs a run directory with run.json and records.jsonl as NEW, "
            f"got {str(side.path)!r}"
        )
    if side.run.get("status") != "complete":
        raise UsageError(
            f"--update needs a complete run; {str(side.path)!r} is {side.run.get('status')!r} "
            "(rerun its command to finish it)"
        )
    images = side.config.get("images")
    if images is None:
        images = 1 + max(
            (int(s["index"].max()) for s in side.series.values() if len(s["index"])), default=-1
        )
    per_image: dict[str, Any] = {
        "_about": (
            f"per-image values of every entry, rounded to {PER_IMAGE_DECIMALS} decimals; "
            "position = image index; null = not measured"
        )
    }
    for table in side.leaderboard["tables"]:
        for entry in table["entries"]:
            s = side.series.get((table["mask"], entry["method"]))
            if s is None:
                continue
            arrays = {}
            for metric in metrics:
                values: list[float | None] = [None] * images
                for i, v in zip(s["index"].tolist(), s[metric].tolist()):
                    if math.isfinite(v):
                        values[i] = round(v, PER_IMAGE_DECIMALS)
                arrays[metric] = values
            per_image.setdefault(table["mask"], {})[entry["method"]] = arrays
    run = side.run
    per_set = {}
    if set_metrics:
        from benchmark.commands.set_gate import per_set_section

        per_set = {"per_set": per_set_section(side, set_metrics, len(metrics) + len(set_metrics))}
    board = {k: v for k, v in side.leaderboard.items() if k != "real_features"}  # the run's files
    return {
        **board,
        "baseline": {
            "version": benchmark.__version__,
            "command": command_line(run.get("config") or {}),
            "updated_by": update_command,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_revision": run.get("git_revision"),
            "run": {
                k: run.get(k)
                for k in (
                    "masks",
                    "methods",
                    "image_size",
                    "device",
                    "versions",
                    "plugins",
                    "provenance",
                )
                if k in run or k not in ("plugins", "provenance")
            },
        },
        "per_image": per_image,
        **per_set,
    }


def baseline_text(baseline: dict[str, Any]) -> str:
    """Indented JSON with every per-image list on one line (the file stays diff-friendly)."""
    arrays: dict[str, str] = {}

    def compact(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: compact(v) for k, v in node.items()}
        if (
            isinstance(node, list)
            and len(node) > 16
            and all(v is None or isinstance(v, (int, float)) for v in node)
        ):
            token = f"@@{len(arrays)}@@"
            arrays[token] = json.dumps(node, separators=(",", ":"))
            return token
        return node

    body = {k: (compact(v) if k in ("per_image", "per_set") else v) for k, v in baseline.items()}
    text = json.dumps(finite(body), indent=2, ensure_ascii=False)
    for token, array in arrays.items():
        text = text.replace(f'"{token}"', array, 1)
    return text + "\n"


def write_baseline(
    path: str | Path, new: Side, update_command: str, metrics: Sequence[str] = tuple(GATED_METRICS)
) -> dict[str, Any]:
    """Atomically (re)write the baseline file ``path`` from ``new`` with the per-image values
    of ``metrics``; returns what was written."""
    baseline = validated(
        baseline_from(new, update_command, metrics), Leaderboard, "the new baseline"
    )
    write_atomic(path, baseline_text(baseline))
    return baseline
