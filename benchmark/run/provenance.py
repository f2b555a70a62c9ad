"""What a run records about where it ran: package versions, git revision, plug-in packages."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

import benchmark
from benchmark.registry import Registry


def versions() -> dict[str, str]:
    import cv2
    import kornia
    import numpy as np
    import skimage
    import torch

    return {
        "inpaint-bench": benchmark.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "kornia": kornia.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scikit-image": skimage.__version__,
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
