"""``ffhq``: Flickr-Faces-HQ (70,000 faces, 1024x1024 PNG) as distributed.

Layout (``--data-dir DIR``): ``DIR/images1024x1024/NNNNN/NNNNN.png`` (folders of 1,000, as on the
dataset's drive: image 12345 is ``12000/12345.png``) or the flat ``DIR/images1024x1024/NNNNN.png``
of its zip; ``DIR`` may be ``images1024x1024`` itself. ``subset=validation`` follows the
dataset's README: images 60000..69999 are the evaluation images (``split=test``), 0..59999 the
training images; ``subset=all`` gives all 70,000 for both.

``verify=true`` checks each image it reads against the published ``ffhq-dataset-v2.json``
(its file size and MD5, the JSON itself by its published size) found in ``DIR``. The images are
on a quota-limited drive rather than a stable URL, so nothing is downloaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from benchmark.datasets.base import DATASETS, resolve_size
from benchmark.datasets.places365 import ListedImages
from benchmark.errors import DataError, UsageError

COUNT = 70_000
TRAINING = 60_000
SUBSETS = ("validation", "all")
FOLDER = "images1024x1024"
METADATA = ("ffhq-dataset-v2.json", 267_793_842)
LICENCE = (
    "get FFHQ with the download script of github.com/NVlabs/ffhq-dataset (CC BY-NC-SA 4.0, "
    "images under their Flickr licences; non-commercial research: never redistribute or commit it)"
)


def _root(data_dir: Path) -> Path:
    if (data_dir / FOLDER).is_dir():
        return data_dir / FOLDER
    if data_dir.name == FOLDER:
        return data_dir
    raise DataError(f"ffhq: no {FOLDER}/ in {data_dir}; {LICENCE}")


def _paths(root: Path, numbers: list[int]) -> list[Path]:
    """Each image's path: nested when the first image's folder of 1,000 exists, else flat."""
    if numbers and (root / f"{numbers[0] // 1000 * 1000:05d}").is_dir():
        return [root / f"{k // 1000 * 1000:05d}" / f"{k:05d}.png" for k in numbers]
    return [root / f"{k:05d}.png" for k in numbers]


def _numbers(subset: str, split: str) -> list[int]:
    if subset == "all":
        return list(range(COUNT))
    return list(range(TRAINING, COUNT)) if split == "test" else list(range(TRAINING))


def _check(subset: str, verify: bool, data_dir: str | Path | None) -> Path:
    if subset not in SUBSETS:
        raise UsageError(f"ffhq: unknown subset {subset!r}; valid: {', '.join(SUBSETS)}")
    if not isinstance(verify, bool):
        raise UsageError(f"ffhq: verify must be true or false, got {verify!r}")
    if data_dir is None:
        raise UsageError(f"ffhq: give --data-dir, the folder holding {FOLDER}/")
    return Path(data_dir).expanduser()


def planned_files(params: dict[str, Any], split: str, data_dir: str | Path | None) -> list[Path]:
    """The files ``ffhq:<params>`` reads for ``split`` from ``data_dir``, present or not."""
    subset = params.get("subset", "validation")
    root = _root(_check(subset, params.get("verify", False), data_dir))
    return _paths(root, _numbers(subset, split))


class VerifiedImages(ListedImages):
    """FFHQ images checked against the published metadata as they are read."""

    def __init__(self, *args: Any, sums: dict[str, tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sums = sums

    def read(self, index: int) -> Any:
        path = self.files[index]
        size, md5 = self.sums[f"{path.parent.name}/{path.name}"]
        data = path.read_bytes()
        if len(data) != size or hashlib.md5(data).hexdigest() != md5:
            raise DataError(
                f"{self.label}: '{path.name}' differs from ffhq-dataset-v2.json (size or MD5); "
                f"{LICENCE}"
            )
        return super().read(index)


def _published_sums(data_dir: Path) -> dict[str, tuple[int, str]]:
    """``folder/name`` -> (file size, MD5) of every image, from ``ffhq-dataset-v2.json``."""
    import msgspec

    name, size = METADATA
    path = data_dir / name
    if not path.is_file() or path.stat().st_size != size:
        raise DataError(
            f"ffhq verify=true: {name} ({size:,} bytes) is not in {data_dir}; {LICENCE}"
        )
    entries = msgspec.json.decode(path.read_bytes())
    sums = {}
    for entry in entries.values():
        image = entry["image"]
        nested = Path(image["file_path"])
        sums[f"{nested.parent.name}/{nested.name}"] = (image["file_size"], image["file_md5"])
        sums[f"{FOLDER}/{nested.name}"] = sums[f"{nested.parent.name}/{nested.name}"]
    return sums


@DATASETS.register("ffhq")
def ffhq(
    *,
    subset: str = "validation",
    verify: bool = False,
    split: str = "test",
    size: int | None = None,
    data_dir: str | Path | None = None,
) -> ListedImages:
    """FFHQ faces; ``subset=validation``: test = images 60000..69999, train = the first 60,000."""
    base = _check(subset, verify, data_dir)
    root = _root(base)
    side = resolve_size(size, 1024, "ffhq")
    files = _paths(root, _numbers(subset, split))
    label = f"ffhq {FOLDER} in '{data_dir}'"
    if verify:
        return VerifiedImages(root, files, side, split, label, LICENCE, sums=_published_sums(base))
    return ListedImages(root, files, side, split, label, LICENCE)
