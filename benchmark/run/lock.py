"""An exclusive lock on a run folder while a run writes to it.

The lock is ``fcntl.flock`` on ``<run>/.lock``, which holds the owner's PID for the message a
second run shows. The kernel drops a flock when its holder exits, however it exits, so a lock
left by a dead process never blocks anyone (the file stays; only the flock counts).
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.errors import UsageError

try:
    import fcntl
except ImportError:  # not on POSIX: no locking, as before
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunLock:
    """``with RunLock(run_dir): ...`` holds the run folder or raises :class:`UsageError` at once."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise UsageError(
                    f"run folder {str(self.path.parent)!r} is in use by another run "
                    f"(pid {holder}); wait for it to finish or choose another --out"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
