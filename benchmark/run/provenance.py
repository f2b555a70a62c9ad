"""What a run records about where it ran: package versions, git revision, plug-in packages."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path

import benchmark
from benchmark.registry import Registry


def _version(distribution: str, module: str) -> str:
    """The installed version of ``distribution`` from its metadata, without importing it (a
    run that never uses kornia or scikit-image does not pay their 0.1-0.3 s of import); the
    module's ``__version__`` where the metadata is missing."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return str(importlib.import_module(module).__version__)


def versions() -> dict[str, str]:
    import cv2  # these three every run imports anyway
    import numpy as np
    import torch

    return {
        "inpaint-bench": benchmark.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "kornia": _version("kornia", "kornia"),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scikit-image": _version("scikit-image", "skimage"),
    }


def git_revision() -> str | None:
    root = Path(benchmark.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> installed distributions (scans every installed package: cached)."""
    try:
        return importlib.metadata.packages_distributions()
    except Exception:  # broken metadata of some unrelated package
        return {}


def plugin_versions(names: dict[str, str], registry: Registry) -> dict[str, dict[str, str]]:
    """Package name and version of every entry ``names`` (spec -> canonical name) that comes
    from an installed distribution other than this project (an entry-point plug-in)."""
    own = {"benchmark", "methods", "masks"}
    found: dict[str, dict[str, str]] = {}
    for spec, name in names.items():
        module = getattr(registry.get(name), "__module__", "") or ""
        top = module.split(".")[0]
        if not top or top in own:
            continue
        for dist in _distributions().get(top, []):
            try:
                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
            found[f"{registry.kind} {spec}"] = {"package": dist, "version": version}
            break
        else:
            found[f"{registry.kind} {spec}"] = {"package": f"(module {module})", "version": ""}
    return found
