"""Ctrl-C during training: the first one stops at the next step boundary, a second one at once."""

from __future__ import annotations

import signal
import threading
from typing import Any

import torch

from benchmark.train.distributed import Group


class Stop(KeyboardInterrupt):
    """A Ctrl-C taken at a step boundary: the model and optimiser are consistent."""


class CtrlC:
    """Defers the first Ctrl-C to the next step boundary; a second one interrupts at once.

    Only the main thread can handle signals; elsewhere Ctrl-C keeps its default behaviour.
    ``also_sigterm`` treats SIGTERM alike (torchrun passes a Ctrl-C on to its ranks as SIGTERM).
    """

    def __init__(self, also_sigterm: bool = False) -> None:
        self.requested = False
        self._signals = (signal.SIGINT, signal.SIGTERM) if also_sigterm else (signal.SIGINT,)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self._signals}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signum, self._previous[signum])

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def check(self, group: Group | None = None, device: torch.device | None = None) -> None:
        """Raise :class:`Stop` if Ctrl-C was pressed since the last check (on any rank)."""
        requested = group.any(self.requested, device) if group is not None else self.requested
        if requested:
            raise Stop
