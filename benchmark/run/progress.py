"""Progress of a run: one overall bar with an ETA beside the per-pair bars on a terminal, plain
lines (one every few seconds and one per finished pair) when stderr is a file or a pipe."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

#: Per-pair bars are shown up to this many (method, mask) pairs; beyond, the overall bar only.
MAX_PAIR_BARS = 12
#: Seconds between two plain progress lines when stderr is not a terminal.
LINE_INTERVAL = 10.0

Pair = tuple[str, str]


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Counts finished records per (method, mask) pair and shows them."""

    def __init__(
        self,
        totals: dict[Pair, int],
        done: dict[Pair, int],
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.totals, self.done = totals, dict(done)
        self.total, self.start_done = sum(totals.values()), sum(done.values())
        self.started = self.last_line = time.monotonic()
        self.tty = enabled and self.stream.isatty()
        self.bars: dict[Any, tqdm] = {}
        if self.tty:
            self.bars["all"] = tqdm(
                total=self.total,
                initial=self.start_done,
                desc="all",
                unit="img",
                file=self.stream,
                dynamic_ncols=True,
                leave=False,
            )
            if len(totals) <= MAX_PAIR_BARS:
                for pair, total in totals.items():
                    self.bars[pair] = tqdm(
                        total=total,
                        initial=self.done[pair],
                        desc=f"{pair[0]} / {pair[1]}",
                        unit="img",
                        file=self.stream,
                        dynamic_ncols=True,
                        leave=False,
                    )

    def update(self, records: list[dict[str, Any]]) -> None:
        counts: dict[Pair, int] = {}
        for record in records:
            pair = (record["method"], record["mask"])
            counts[pair] = counts.get(pair, 0) + 1
        for pair, n in counts.items():
            self.done[pair] = self.done.get(pair, 0) + n
            if pair in self.bars:
                self.bars[pair].update(n)
            if self.enabled and not self.tty and self.done[pair] == self.totals.get(pair):
                self._line(f"done: {pair[0]} / {pair[1]} ({self.totals[pair]} images)")
        if "all" in self.bars:
            self.bars["all"].update(sum(counts.values()))
        now = time.monotonic()
        if self.enabled and not self.tty and now - self.last_line >= LINE_INTERVAL:
            self.last_line = now
            self._line(self.summary())

    def summary(self) -> str:
        finished = sum(self.done.values())
        fresh = finished - self.start_done
        elapsed = time.monotonic() - self.started
        rate = fresh / elapsed if elapsed > 0 else 0.0
        left = self.total - finished
        eta = _duration(left / rate) if rate > 0 else "?"
        share = 100 * finished / self.total if self.total else 100.0
        return f"progress: {finished}/{self.total} ({share:.1f}%), {rate:.1f} img/s, ETA {eta}"

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
