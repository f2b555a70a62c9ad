"""``python -m benchmark``: see :mod:`benchmark.cli`.

Run with an interpreter that lacks the harness's dependencies (a system ``python`` after the
quick start, which installed them into ``.venv-run``), a command prints one line saying how to
get them and exits 2, instead of an import traceback.
"""

import os
import sys
from pathlib import Path

# OpenMP threads that spin while waiting collapse torch's speed when another process is busy
# (training fell from 84 to 14 images/s); must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: Top-level modules of the ``dependencies`` in pyproject.toml (import names, not distribution
#: names); a test keeps the two in step.
DEPENDENCY_MODULES = frozenset(
    {
        "torch", "kornia", "numpy", "cv2", "skimage", "scipy", "matplotlib", "tomli",
        "tabulate", "tqdm", "safetensors", "PIL", "simplejpeg", "msgspec", "jinja2",
    }
)  # fmt: skip
MIN_PYTHON = (3, 10)


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


def failing_dependency(exc: ImportError) -> str | None:
    """The dependency ``exc`` comes from: the missing module itself, or the first dependency
    whose own import raised it (a broken install); None for anything else."""
    if (exc.name or "") in DEPENDENCY_MODULES:
        return exc.name
    frame = exc.__traceback__
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", "")).split(".")[0]
        if module in DEPENDENCY_MODULES:
            return module
        frame = frame.tb_next
    return None


def missing_dependency(exc: ImportError) -> str | None:
    """The one-line message for an ImportError of one of the harness's dependencies, else None
    (a user's module or a bug of ours keeps its traceback)."""
    top = failing_dependency(exc)
    if top is None:
        return None
    what = (
        f"has no module {top!r}"
        if isinstance(exc, ModuleNotFoundError) and exc.name == top
        else f"cannot import {top!r} ({' '.join(str(exc).split())})"
    )
    return (
        f"error: this Python ({sys.executable}) {what}, a dependency of inpaint-bench: run "
        "./scripts/run-benchmark once (it installs everything into .venv-run), then use "
        ".venv-run/bin/inpaint-bench in place of `python -m benchmark`, or "
        "`pip install -e .` into an environment of your own"
    )


def _main() -> int:
    """Run the command line; a missing dependency is one line and exit 2."""
    if sys.version_info < MIN_PYTHON:
        print(
            f"error: inpaint-bench needs Python >= {'.'.join(map(str, MIN_PYTHON))}; this is "
            f"{sys.version.split()[0]} ({sys.executable}): run it with a newer python",
            file=sys.stderr,
        )
        return 2
    _drop_working_directory()
    try:
        from benchmark.cli import main

        return main()
    except ImportError as exc:
        message = missing_dependency(exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_main())
