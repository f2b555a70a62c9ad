"""How ``compare`` and ``gate`` print a comparison: one table per mask, the line that explains
it, the verdict lines and the exit status."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from benchmark.commands.gate_rules import Rules
from benchmark.decision import INCONCLUSIVE, Decision, signed

if TYPE_CHECKING:
    from benchmark.commands.compare import EntryComparison


def _number(value: float | None, decimals: int, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) < 0.5 * 10**-decimals:
        value = 0.0  # no "-0.000"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def _interval(decision: Decision, decimals: int) -> str:
    if not (math.isfinite(decision.ci_low) and math.isfinite(decision.ci_high)):
        return "unbounded"
    return f"{signed(decision.ci_low, decimals)} to {signed(decision.ci_high, decimals)}"


def _p(decision: Decision) -> str:
    """Holm's adjusted p-value (below alpha exactly when the interval excludes 0)."""
    p = decision.p_adjusted if decision.p_adjusted is not None else decision.p
    if decision.p_is_bound:
        return f"≤{math.ceil(p * 1e4) / 1e4:.4f}"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def _mean(entry: dict[str, Any], metric: str) -> float | None:
    value = (entry.get("metrics", {}).get(metric) or {}).get("mean")
    return float(value) if value is not None and entry.get("n") else None


def render_comparison(results: list[EntryComparison], rules: Rules | None = None) -> str:
    """One plain-text table per mask: per metric the baseline and new means, the change with
    its interval, Holm's p and the broken images; then the image count and a marker."""
    rules = rules or Rules()
    header = ["method"]
    for metric in rules.metrics:
        label = metric.label
        header += [f"{label} base", f"{label} new", f"Δ {label}", "CI", "p", "broken"]
    header += ["n", "marker"]
    parts = []
    for mask in dict.fromkeys(r.mask for r in results):
        rows = []
        for r in (r for r in results if r.mask == mask):
            cells: list[Any] = [r.method]
            for metric in rules.metrics:
                decimals = metric.decimals
                d = r.metrics.get(metric.name)
                if d is None or d.decision is None:
                    new = _mean(r.new_entry, metric.name) if r.new_entry else None
                    cells += ["—", _number(new, decimals), "—", "—", "—", "—"]
                    continue
                counted = math.isfinite(rules.broken_at(metric.name))
                cells += [
                    _number(d.base, decimals),
                    _number(d.new, decimals),
                    _number(d.delta, decimals + 1, sign=True),
                    _interval(d.decision, decimals),
                    _p(d.decision),
                    d.decision.n_broken if counted else "—",
                ]
            n = r.metrics["psnr"].n if "psnr" in r.metrics else (r.new_entry or {}).get("n", "—")
            rows.append([*cells, n, r.marker])
        parts += [
            f"mask: {mask}",
            tabulate(rows, headers=header, tablefmt="simple", disable_numparse=True),
            "",
        ]
    return "\n".join(parts)


def explanation(results: list[EntryComparison], rules: Rules) -> str:
    """The line under the tables that says what every column and marker means."""
    decided = [d.decision for r in results for d in r.metrics.values() if d.decision]
    broken = (
        f", or more than {rules.max_broken} broken images" if rules.max_broken is not None else ""
    )
    drops = f"drop larger than {rules.tolerance_db:g} dB PSNR or {rules.tolerance_ssim:g} SSIM"
    if rules.extra:  # every gated metric, its tolerance and which way is worse
        drops = "change for the worse larger than " + ", ".join(
            metric.amount(rules.tolerance(metric.name))
            + ("" if metric.higher_is_better else " (a rise: lower is better)")
            for metric in rules.metrics
        )
    sets = [rules.metric(name).label for name in rules.set_names]
    resamples = {
        d.decision.resamples
        for r in results
        for name, d in r.metrics.items()
        if name in rules.set_names and d.decision is not None
    }
    set_note = (
        f" ({', '.join(sets)}: NEW − BASELINE of the set values on the baseline's images, CI "
        "and p from the paired bootstrap of those images"
        + "".join(f", {b:,} resamples" for b in sorted(resamples)[:1])
        + ")"
        if sets
        else ""
    )
    return (
        f"Δ = NEW − BASELINE, mean over the images both measured{set_note}; CI = its bootstrap "
        "confidence "
        f"interval at the level Holm's correction tested it ({len(decided)} comparisons, "
        f"family-wise α = {rules.alpha:g}); p = Holm-adjusted bootstrap p, below {rules.alpha:g} "
        "exactly when the CI excludes 0; broken = images worse by more than "
        f"{rules.broken_db:g} dB PSNR / {rules.broken_ssim:g} SSIM. REGRESSION = a significant "
        f"{drops}, more "
        f"failed images, images the baseline measured that are no longer measured{broken}."
    )


def summary_lines(
    results: list[EntryComparison], rules: Rules, allow_missing: bool
) -> tuple[list[str], int]:
    """Explanation and verdict lines under the tables, and the exit status (0, 1 or 2)."""
    regressions = [r for r in results if r.regression]
    missing = [r for r in results if r.status == "missing"]
    new = [r for r in results if r.status == "new"]
    compared = [r for r in results if r.status == "compared"]
    open_ = [
        (r, metric, d.decision)
        for r in compared
        for metric, d in r.metrics.items()
        if d.decision is not None and d.decision.verdict == INCONCLUSIVE
    ]
    lines = [explanation(results, rules)]
    if new:
        lines.append("new entries: " + ", ".join(f"{r.method}/{r.mask}" for r in new))
    if missing:
        names = ", ".join(f"{r.method}/{r.mask}" for r in missing)
        fix = (
            "(allowed by --allow-missing)" if allow_missing else "(pass --allow-missing to accept)"
        )
        lines.append(f"missing from NEW: {names} {fix}")
    if open_:
        named = ", ".join(
            f"{r.method}/{r.mask} {rules.metric(m).label}"
            + (f" (about {d.images_needed:,} images would decide it)" if d.images_needed else "")
            for r, m, d in open_
        )
        lines.append(f"inconclusive (the CI includes 0 and reaches beyond the tolerance): {named}")
    if regressions:
        names = ", ".join(f"{r.method}/{r.mask}" for r in regressions)
        lines.append(f"gate: FAIL — {len(regressions)} regression(s): {names}")
        return lines, 1
    if missing and not allow_missing:
        lines.append(
            f"gate: ERROR — {len(missing)} baseline entries missing from NEW: cannot decide"
        )
        return lines, 2
    if not compared:
        lines.append("gate: ERROR — nothing compared: cannot decide")
        return lines, 2
    if open_ and rules.fail_inconclusive:
        lines.append(
            f"gate: ERROR — {len(open_)} comparison(s) inconclusive (--fail-inconclusive): "
            "cannot decide"
        )
        return lines, 2
    lines.append(f"gate: PASS — {len(compared)} entries compared, no regression")
    return lines, 0
