"""What ``--verify-data`` (content-hash fingerprints) costs, against the default size+mtime
fingerprints measured in the same session.

* ``fingerprint_stat_500`` / ``fingerprint_content_500``: the fingerprint of a folder of 500
  JPEG photos (512x512, quality 90, cut from scikit-image's colour photographs) by each file's
  size and mtime, and by a BLAKE2b hash of each file's bytes (page cache warm, as on a second
  run).
* ``run_stat_500`` / ``run_content_500``: a whole run (``mean`` on ``square`` masks, size 128,
  one worker) of that folder; a fresh run folder each round, so nothing is reused.
* ``run_stat_default`` / ``run_content_default``: the same run on the first 500 images of the
  default data set (``skimage-patches``), whose fingerprint hashes its pixels either way.

The summary shows content / size+mtime for each pair.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from benchmark.datasets import build_dataset
from benchmark.images import VERIFY_DATA_ENV
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark

FILES = 500
SIDE = 512
#: Median seconds of this file's benchmarks, by name (for the content / size+mtime ratios).
SEEN: dict[str, float] = {}


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """500 JPEG crops of the colour photographs shipped with scikit-image."""
    import cv2
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(0)
    for k in range(FILES):
        photo = photos[k % len(photos)]
        top = int(rng.integers(0, photo.shape[0] - SIDE // 2))
        left = int(rng.integers(0, photo.shape[1] - SIDE // 2))
        crop = photo[top : top + SIDE // 2, left : left + SIDE // 2]
        crop = cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{k:04d}.jpg"), crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder


@pytest.mark.parametrize("mode", ["stat", "content"])
def test_folder_fingerprint(benchmark, remember, figure, photo_folder, monkeypatch, mode):
    monkeypatch.delenv(VERIFY_DATA_ENV, raising=False)
    if mode == "content":
        monkeypatch.setenv(VERIFY_DATA_ENV, "1")
    dataset = build_dataset(f"folder:{photo_folder}", size=128)
    fingerprint = benchmark.pedantic(dataset.fingerprint, rounds=7, warmup_rounds=1)
    assert ("contents" in fingerprint) == (mode == "content")
    remember(benchmark, f"fingerprint_{mode}_500")
    SEEN[f"fingerprint_{mode}_500"] = benchmark.stats.stats.median
    megabytes = sum(p.stat().st_size for p in photo_folder.iterdir()) / 1e6
    figure("folder of 500 JPEGs: MB on disk", megabytes)
    _ratio(figure, "fingerprint of 500 files: content / size+mtime", "fingerprint", "500")


@pytest.mark.parametrize("data", ["500", "default"])
@pytest.mark.parametrize("mode", ["stat", "content"])
def test_whole_run(benchmark, remember, figure, photo_folder, tmp_path, monkeypatch, data, mode):
    monkeypatch.delenv(VERIFY_DATA_ENV, raising=False)  # a run sets it for its workers
    counter = itertools.count()
    dataset = f"folder:{photo_folder}" if data == "500" else "skimage-patches"

    def run() -> None:
        config = RunConfig(
            methods=["mean"],
            masks=["square"],
            dataset=dataset,
            size=128 if data == "500" else None,
            limit=FILES,
            workers=1,
            progress=False,
            verify_data=mode == "content",
            out=str(tmp_path / f"run{next(counter)}"),
        )
        result = run_benchmark(config)
        assert result.computed == FILES and result.reused == 0

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    remember(benchmark, f"run_{mode}_{data}")
    SEEN[f"run_{mode}_{data}"] = benchmark.stats.stats.median
    label = "folder of 500 JPEGs" if data == "500" else "default data set, 500 images"
    _ratio(figure, f"whole run, {label}: --verify-data / default", "run", data)


def _ratio(figure, label: str, kind: str, data: str) -> None:
    top, bottom = f"{kind}_content_{data}", f"{kind}_stat_{data}"
    if top in SEEN and bottom in SEEN:
        figure(label, SEEN[top] / SEEN[bottom])
        figure(f"{label}: ms added", (SEEN[top] - SEEN[bottom]) * 1000)
