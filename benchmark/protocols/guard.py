"""Never train on evaluation data: :func:`refuse_evaluation_data`.

A training set read from files is compared with the evaluation images of every protocol whose
data set can be found from the same place (the training ``--data-dir``, or the training folder
and the two folders above it). An image is identified by its file name and size, so a copy of an
evaluation file counts as well as the file itself. Any
overlap refuses the training run with one line (a set of these keys is the evaluation split's
fingerprint). Data sets held in memory (``cifar10``, ``skimage-patches``) have disjoint train and
test splits by construction.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError, UsageError

#: Data sets read from published layouts -> the module whose ``planned_files`` lists the files
#: a spec reads, whether or not they are all there.
PLANNERS = {
    "places365": "benchmark.datasets.places365",
    "celebahq": "benchmark.datasets.celebahq",
    "ffhq": "benchmark.datasets.ffhq",
}


def refuse_evaluation_data(dataset: Any, data_dir: str | Path | None) -> None:
    """Raise a one-line UsageError when ``dataset`` holds a protocol's evaluation images."""
    files = getattr(dataset, "files", None)
    if not files:
        return
    from benchmark.datasets.base import dataset_spec
    from benchmark.protocols.base import PROTOCOLS, resolve

    training = {_key(p) for p in files}
    training.discard(None)
    for name in PROTOCOLS.names():
        protocol = resolve(name)
        spec = dataset_spec(protocol.dataset)
        if spec.name not in PLANNERS:
            continue
        planner = importlib.import_module(PLANNERS[spec.name]).planned_files
        for root in _places(dataset, data_dir):
            try:
                planned = planner(spec.kwargs, protocol.split, root)
            except BenchmarkError:
                continue  # that protocol's data set is not there
            shared = training & {_key(p) for p in planned}
            shared.discard(None)
            if shared:
                raise UsageError(
                    f"training data {dataset.name!r} holds {len(shared):,} evaluation images "
                    f"of protocol {protocol.ref} (e.g. {min(shared)[0]}); "
                    "train on images no protocol evaluates"
                )


def _key(path: Path) -> tuple[str, int] | None:
    """``(file name, size in bytes)``, None for a file that is not there."""
    try:
        return os.path.basename(path), os.stat(path).st_size
    except OSError:
        return None


def _places(dataset: Any, data_dir: str | Path | None) -> list[Path]:
    """Where a protocol's data set could live: ``data_dir``, the folder and its two parents."""
    places = [Path(data_dir).expanduser()] if data_dir else []
    root = getattr(dataset, "root", None)
    if root is not None:
        root = Path(root).expanduser().resolve()
        places += [root, root.parent, root.parent.parent]
    unique: list[Path] = []
    for place in places:
        if place not in unique:
            unique.append(place)
    return unique
