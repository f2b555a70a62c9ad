"""``python -m benchmark``: see :mod:`benchmark.cli`."""

import os
import sys
from pathlib import Path

# OpenMP threads that spin while waiting collapse torch's speed when another process is busy
# (training fell from 84 to 14 images/s); must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _drop_working_directory() -> None:
    """Take the working directory that ``python -m`` puts first on ``sys.path`` off it again.

    Otherwise a ``methods.py``, ``masks.py`` (or ``numpy.py``) in the folder the command runs
    from would be imported instead of the real module. The ``benchmark`` package is already
    imported at this point; the folder stays only when the harness itself lives there.
    """
    if sys.flags.safe_path or not sys.path:  # python -P: nothing was added
        return
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the working directory was deleted: nothing importable there anyway
        cwd = None
    first = sys.path[0]
    if first == "" or (cwd is not None and Path(first).resolve() == cwd):
        if cwd != Path(__file__).resolve().parent.parent:
            del sys.path[0]


_drop_working_directory()

from benchmark.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
