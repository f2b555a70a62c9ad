"""Leaderboards: per-mask tables of methods ranked by mean PSNR, built from per-image records.

``leaderboard.json`` is the source of truth; the Markdown and console tables are rendered from it
by :mod:`benchmark.tables`.

**A method never gains rank by failing.** Methods are ranked on the images that *every ranked
method* completed (the table's ``common`` images), so a method that fails the hard images is
measured on the same easy images as everyone else. Which methods are ranked: methods are taken
in order of how many images they completed (the given method order breaks ties); each joins the
ranking while the images completed by all methods taken so far still number at least
``MIN_COMMON_FRACTION`` (half) of the table's images. A method that does not join (it completed
no image, or so few that the common set would shrink below half) is listed *unranked* below the
ranked ones, with its means over its own images and the reason. An entry that failed (or has not
evaluated) any image is marked incomplete (``†``), and every entry's failures are shown beside
the ranking: the count and the most frequent reason with its count.

**Every "leads", "tie" and ``≈`` is decided by one rule** (:mod:`benchmark.decision`) on the
mean per-image difference over the common images: significant iff its bootstrap 95 % CI
excludes 0 (the p-value printed agrees by construction); else "no change" or "inconclusive".

Per table (format 4): ``images`` (images evaluated by any method), ``common`` (``n`` and the
ranked ``methods``), ``entries``, ``comparisons`` (each pair ``a`` ranked above ``b``: per
metric the decision on ``a - b``, :meth:`benchmark.decision.Decision.as_dict`), ``verdict``
(``psnr``: the decision on leader minus runner-up; ``tied``: not significant; ``decision``),
and ``buckets`` (NVIDIA mask-ratio bins, each method on its own images, with counts).

Per entry: ``rank`` (``None`` when unranked), ``ranked``, ``complete``, ``n`` (images the
method measured), ``failed``, ``failures`` (``[{"reason", "count"}]``, most frequent first),
``metrics`` (means with 95 % bootstrap CIs over the common images when ranked, over its own
images otherwise), ``own_metrics`` (always over its own images), ``images_per_s`` (method time
only), ``vs_leader`` (per metric the decision on the method minus the leader) and
``tied_with_leader`` (its PSNR CI includes 0, marked ``≈``; format 3 decided by Wilcoxon).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from benchmark.decision import ResampleCounts
from benchmark.device import available_cores
from benchmark.marks import MIN_COMMON_FRACTION
from benchmark.records import STATUS_OK
from benchmark.results.schema import LEADERBOARD_FORMAT
from benchmark.significance import BUCKET_METRICS, PAIRED_METRICS, compare_pairs, ratio_buckets
from benchmark.stats import Resamples, summarize

#: Metrics shown with a confidence interval in the tables, in column order.
TABLE_METRICS = ("psnr", "ssim", "hole_psnr", "hole_l1")
#: How many distinct failure reasons an entry keeps.
MAX_REASONS = 5


def build_leaderboard(
    records: Iterable[dict[str, Any]],
    methods: Sequence[str],
    masks: Sequence[str],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Aggregate records into ``{"format", "config", "tables": [...]}``: one table per mask.

    See the module docstring for the ranking rule and the fields of tables and entries.
    """
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault((record["mask"], record["method"]), []).append(record)
    from benchmark.metrics import BUILTIN_METRICS
    from benchmark.perceptual.selection import is_set_metric

    metric_names = list(BUILTIN_METRICS)
    metric_names += [  # --metrics: per-image extras (set metrics are added per entry by the run)
        m for m in config.get("metrics") or () if m not in metric_names and not is_set_metric(m)
    ]
    masks = list(dict.fromkeys(masks))
    # one thread per table: the bootstrap gathers and means release the GIL, and the tables
    # share nothing (each draws its own resamples), so the numbers are those of a plain loop
    threads = max(1, min(len(masks), available_cores()))
    counts = ResampleCounts()  # the decisions' resamples, drawn once per number of images
    with ThreadPoolExecutor(threads, thread_name_prefix="inpaint-bench-leaderboard") as pool:
        tables = list(
            pool.map(lambda m: _build_table(m, methods, grouped, metric_names, counts), masks)
        )
    return {"format": LEADERBOARD_FORMAT, "config": config, "tables": tables}


def _build_table(
    mask: str,
    methods: Sequence[str],
    grouped: dict[tuple[str, str], list[dict[str, Any]]],
    metric_names: Sequence[str],
    counts: ResampleCounts | None = None,
) -> dict[str, Any]:
    rows = {m: grouped.get((mask, m), []) for m in methods}
    ok = {
        m: sorted((r for r in rs if r["status"] == STATUS_OK), key=lambda r: int(r["index"]))
        for m, rs in rows.items()
    }
    images = len({int(r["index"]) for rs in rows.values() for r in rs})
    ranked, common = choose_ranked(
        {m: {int(r["index"]) for r in ok[m]} for m in methods}, methods, images
    )
    common_indices = np.array(sorted(common), dtype=np.int64)
    resamples = Resamples()

    entries, series = [], {}
    for method in methods:
        own = _summaries(ok[method], metric_names, resamples(len(ok[method])))
        entry = _entry(method, rows[method], ok[method], own, images)
        if ok[method] and all(r.get("hole_l1") == 0 for r in ok[method]):
            entry["oracle"] = True  # the ground truth in every hole: it saw the answers
        series[method] = _series(ok[method], metric_names)
        if method in ranked:
            entry["ranked"] = True
            if len(common) == len(ok[method]):
                entry["metrics"] = own  # the same images and resamples: the same numbers
            else:
                keep = np.isin(series[method]["index"], common_indices)
                inside = [r for r, k in zip(ok[method], keep) if k]
                entry["metrics"] = _summaries(inside, metric_names, resamples(len(inside)))
        else:
            entry["metrics"] = own
            entry["unranked_reason"] = _unranked_reason(entry, images)
        entries.append(entry)

    order = {m: i for i, m in enumerate(methods)}
    ranked_entries = sorted(
        (e for e in entries if e["ranked"]),
        # equal means: the method that completed more images first, then the given order
        key=lambda e: (
            -_finite_or(e["metrics"]["psnr"]["mean"], -np.inf),
            -e["n"],
            order[e["method"]],
        ),
    )
    unranked_entries = [e for e in entries if not e["ranked"]]
    for rank, entry in enumerate(ranked_entries, start=1):
        entry["rank"] = rank
    entries = ranked_entries + unranked_entries

    on_common = {
        m: {k: v[np.isin(series[m]["index"], common_indices)] for k, v in series[m].items()}
        for m in ranked
    }
    ranked_names = [e["method"] for e in ranked_entries]
    comparisons, against_leader = _comparisons(on_common, ranked_names, counts)
    _mark_leader_ties(entries, against_leader)
    bucket_metrics = [m for m in BUCKET_METRICS if m in metric_names]
    return {
        "mask": mask,
        "images": images,
        "common": {"n": len(common), "methods": [e["method"] for e in ranked_entries]},
        "entries": entries,
        "comparisons": comparisons,
        "verdict": _verdict(ranked_entries, comparisons),
        "buckets": ratio_buckets(series, bucket_metrics) if "mask_ratio" in metric_names else [],
    }


def choose_ranked(
    completed: dict[str, set[int]], methods: Sequence[str], images: int
) -> tuple[list[str], set[int]]:
    """The ranked methods and their common images (see the module docstring).

    >>> choose_ranked({"a": {0, 1, 2, 3}, "b": {0, 1, 2}, "c": {3}}, ["a", "b", "c"], 4)
    (['a', 'b'], {0, 1, 2})
    """
    order = sorted(methods, key=lambda m: -len(completed[m]))  # stable: given order breaks ties
    ranked: list[str] = []
    common: set[int] = set()
    for method in order:
        if not completed[method]:
            break
        candidate = set(completed[method]) if not ranked else common & completed[method]
        if len(candidate) >= MIN_COMMON_FRACTION * images:
            ranked.append(method)
            common = candidate
    return ranked, common


def _entry(
    method: str,
    rows: list[dict[str, Any]],
    ok: list[dict[str, Any]],
    own: dict[str, dict[str, Any]],
    images: int,
) -> dict[str, Any]:
    failed = [r for r in rows if r["status"] != STATUS_OK]
    seconds = sum(float(r.get("seconds") or 0.0) for r in rows)
    fingerprints = sorted({str(r.get("fingerprint", "")) for r in rows})
    failures = failure_summary(failed)
    return {
        "method": method,
        "fingerprint": fingerprints[0] if len(fingerprints) == 1 else None,
        "rank": None,
        "ranked": False,
        "complete": len(ok) == images and not failed,
        "n": len(ok),
        "failed": len(failed),
        "failures": failures,
        "failure_reasons": [f["status"] for f in failures],
        "images_per_s": len(rows) / seconds if seconds > 0 else None,
        "metrics": own,
        "own_metrics": own,
        "unranked_reason": None,
    }


def failure_summary(failed: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{"reason", "count", "status"}]`` of failed records: most frequent first, then first
    seen (by image index); ``reason`` is the status without its ``failed:`` prefix."""
    by_index = sorted(failed, key=lambda r: int(r["index"]))
    counts = Counter(str(r["status"]) for r in by_index)  # insertion order = first seen
    return [
        {"reason": failure_reason(k), "count": v, "status": k}
        for k, v in counts.most_common(MAX_REASONS)
    ]


def failure_reason(status: str) -> str:
    return status.removeprefix("failed:").strip() or status


def _unranked_reason(entry: dict[str, Any], images: int) -> str:
    if entry["n"] == 0:
        return "completed no image" if images else "not evaluated"
    return f"completed {entry['n']} of {images} images: too few in common with the ranked methods"


def _summaries(
    ok: list[dict[str, Any]], metric_names: Sequence[str], indices: np.ndarray | None
) -> dict[str, dict[str, Any]]:
    return {
        name: summarize(np.array([r.get(name) for r in ok], dtype=float), indices).__dict__
        for name in metric_names
    }


def _series(ok: list[dict[str, Any]], metric_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-image values of one method (records sorted by index) for the paired statistics."""
    wanted = {*PAIRED_METRICS, *BUCKET_METRICS, "mask_ratio"} & set(metric_names)
    series = {"index": np.array([int(r["index"]) for r in ok], dtype=np.int64)}
    for name in wanted:
        series[name] = np.array([r.get(name) for r in ok], dtype=float)
    return series


def _finite_or(value: Any, default: float) -> float:
    return float(value) if value is not None and np.isfinite(value) else default


def _comparisons(
    series: dict[str, dict[str, np.ndarray]], ranked: Sequence[str], counts: ResampleCounts | None
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every pair of ranked methods (higher rank first) and each method against the leader
    (method minus leader), all decided on one resampling of the common images."""
    pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1 :]]
    leader_pairs = [(m, ranked[0]) for m in ranked[1:]]
    rows = compare_pairs(series, pairs + leader_pairs, counts=counts) if pairs else []
    return rows[: len(pairs)], {row["a"]: row for row in rows[len(pairs) :]}


def _mark_leader_ties(entries: list[dict[str, Any]], against: dict[str, dict[str, Any]]) -> None:
    """Set each entry's ``vs_leader`` (method minus leader) and ``tied_with_leader`` (its PSNR
    difference is not significant)."""
    for entry in entries:
        comparison = against.get(entry["method"])
        entry["vs_leader"] = None
        entry["tied_with_leader"] = None
        if comparison is None:
            continue
        entry["vs_leader"] = {"n": comparison["n"]}
        entry["vs_leader"].update({m: comparison[m] for m in PAIRED_METRICS if m in comparison})
        if "psnr" in comparison:
            entry["tied_with_leader"] = not comparison["psnr"]["significant"]


def _verdict(
    ranked: list[dict[str, Any]], comparisons: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Leader versus runner-up: the decision on PSNR (leader − runner-up), common images."""
    if len(ranked) < 2:
        return None
    leader, runner_up = ranked[0]["method"], ranked[1]["method"]
    pair = next(c for c in comparisons if c["a"] == leader and c["b"] == runner_up)
    return {
        "leader": leader,
        "runner_up": runner_up,
        "n": pair["n"],
        "psnr": pair["psnr"],
        "tied": not pair["psnr"]["significant"],
        "decision": pair["psnr"]["verdict"],
    }
