"""``celebahq``: CelebA-HQ (30,000 faces) in the layouts it is distributed in.

Layouts found in ``--data-dir DIR`` (image ``k`` is CelebA-HQ image ``k``, 0-based):

- CelebAMask-HQ: ``DIR/CelebA-HQ-img/k.jpg`` (1024x1024), with ``CelebA-HQ-to-CelebA-mapping.txt``;
- LaMa's download: ``DIR/data256x256/{k+1:05d}.jpg`` (256x256, numbered from 1);
- LaMa after ``fetch_data/celebahq_dataset_prepare.sh``: ``k.jpg`` spread over
  ``DIR/train_256/``, ``val_source_256/`` and ``visual_test_source_256/``.

``subset`` picks the evaluation images (``split=test``) and the training images (``split=train``):

- ``all``: all 30,000 for both (like a folder);
- ``lama``: test = the 2,000 of LaMa's ``fetch_data/val_shuffled.flist``, train = the other
  28,000 (LaMa's ``train_shuffled.flist``). Copy ``val_shuffled.flist`` from the LaMa repository
  into ``DIR``; its SHA-256 is checked;
- ``celeba-val``: test = the 2,993 images whose CelebA source is in CelebA's validation partition
  (files 162771..182637 of CelebA), train = the 24,183 of its training partition (files up to
  162770), read through ``DIR/CelebA-HQ-to-CelebA-mapping.txt`` (MAT's CelebA-HQ split).

Images are brought to ``size`` (default: the layout's side) by Pillow's bicubic filter.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from benchmark.datasets.base import DATASETS, resolve_size
from benchmark.datasets.places365 import ListedImages
from benchmark.errors import DataError, UsageError

COUNT = 30_000
SUBSETS = ("all", "lama", "celeba-val")
#: SHA-256 of LaMa's fetch_data/val_shuffled.flist (advimman/lama, commit 786f593): 2,000 names.
LAMA_TEST_LIST = (
    "val_shuffled.flist",
    "cdde2843dfce0e11b5711a0e4ae12674cf2d01a9dffc967538a2237eb0966ebf",
)
MAPPING = "CelebA-HQ-to-CelebA-mapping.txt"
#: CelebA's partitions by 1-based file number (list_eval_partition.txt): train, validation, test.
CELEBA_VAL = (162_771, 182_637)
#: Images per part of the celeba-val subset: (test = CelebA validation, train = CelebA training).
CELEBA_VAL_COUNTS = (2_993, 24_183)
LICENCE = (
    "CelebA-HQ is for non-commercial research only: never redistribute or commit it "
    "(CelebAMask-HQ from its authors' page, or LaMa's data256x256.zip as its README says)"
)
LAMA_FOLDERS = ("train_256", "val_source_256", "visual_test_source_256")


def _layout(data_dir: Path) -> tuple[str, dict[int, Path], int]:
    """``(layout name, image number -> path, native side)`` of the first layout found."""
    if (data_dir / "CelebA-HQ-img").is_dir():
        root = data_dir / "CelebA-HQ-img"
        return "CelebA-HQ-img", {k: root / f"{k}.jpg" for k in range(COUNT)}, 1024
    if (data_dir / "data256x256").is_dir():
        root = data_dir / "data256x256"
        return "data256x256", {k: root / f"{k + 1:05d}.jpg" for k in range(COUNT)}, 256
    folders = [data_dir / name for name in LAMA_FOLDERS if (data_dir / name).is_dir()]
    if folders:
        where: dict[int, Path] = {}
        for folder in folders:
            for path in folder.glob("*.jpg"):
                if path.stem.isdigit() and int(path.stem) < COUNT:
                    where[int(path.stem)] = path
        first = folders[0]  # files missing from every folder are reported under the first
        paths = {k: where.get(k, first / f"{k}.jpg") for k in range(COUNT)}
        return "LaMa's *_256 folders", paths, 256
    raise DataError(
        f"celebahq: no CelebA-HQ-img/, data256x256/ or LaMa's {'/, '.join(LAMA_FOLDERS)}/ in "
        f"{data_dir}; {LICENCE}"
    )


def _lama_test(data_dir: Path) -> list[int]:
    name, sha = LAMA_TEST_LIST
    path = next((p for p in (data_dir / name, data_dir / "fetch_data" / name) if p.is_file()), None)
    get = (
        f"copy fetch_data/{name} from the LaMa repository (github.com/advimman/lama, Apache-2.0) "
        f"into {data_dir}"
    )
    if path is None:
        raise DataError(
            f"celebahq subset=lama: LaMa's split file {name} is not in {data_dir}; {get}"
        )
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha:
        raise DataError(
            f"celebahq subset=lama: {path} is not LaMa's {name} (SHA-256 differs); {get}"
        )
    return [int(line.strip().removesuffix(".jpg")) for line in data.decode().split()]


def _celeba_parts(data_dir: Path) -> tuple[list[int], list[int]]:
    """``(validation, training)`` image numbers by the CelebA partition of each image's source."""
    path = data_dir / MAPPING
    if not path.is_file():
        raise DataError(
            f"celebahq subset=celeba-val: {MAPPING} is not in {data_dir} (it ships with "
            f"CelebAMask-HQ); {LICENCE}"
        )
    val, train = [], []
    try:
        for line in path.read_text().splitlines()[1:]:
            idx, _, orig_file = line.split()
            number = int(Path(orig_file).stem)
            if CELEBA_VAL[0] <= number <= CELEBA_VAL[1]:
                val.append(int(idx))
            elif number < CELEBA_VAL[0]:
                train.append(int(idx))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"celebahq: cannot read {path} ({exc})") from exc
    if (len(val), len(train)) != CELEBA_VAL_COUNTS:
        raise DataError(
            f"celebahq: {path} gives {len(val):,} validation and {len(train):,} training images, "
            f"expected {CELEBA_VAL_COUNTS[0]:,} and {CELEBA_VAL_COUNTS[1]:,}: not CelebAMask-HQ's"
        )
    return sorted(val), sorted(train)


def _numbers(subset: str, split: str, data_dir: Path) -> list[int]:
    if subset == "all":
        return list(range(COUNT))
    if subset == "lama":
        test = _lama_test(data_dir)
        if split == "test":
            return test
        chosen = set(test)
        return [k for k in range(COUNT) if k not in chosen]
    val, train = _celeba_parts(data_dir)
    return val if split == "test" else train


def _check(subset: str, data_dir: str | Path | None) -> Path:
    if subset not in SUBSETS:
        raise UsageError(f"celebahq: unknown subset {subset!r}; valid: {', '.join(SUBSETS)}")
    if data_dir is None:
        raise UsageError("celebahq: give --data-dir, the folder holding CelebA-HQ-img/ (or LaMa's)")
    return Path(data_dir).expanduser()


def planned_files(params: dict[str, Any], split: str, data_dir: str | Path | None) -> list[Path]:
    """The files ``celebahq:<params>`` reads for ``split`` from ``data_dir``, present or not."""
    base = _check(params.get("subset", "all"), data_dir)
    _, paths, _ = _layout(base)
    return [paths[k] for k in _numbers(params.get("subset", "all"), split, base)]


@DATASETS.register("celebahq")
def celebahq(
    *,
    subset: str = "all",
    split: str = "test",
    size: int | None = None,
    data_dir: str | Path | None = None,
) -> ListedImages:
    """CelebA-HQ faces; ``subset`` = all, lama (LaMa's 2,000 test images) or celeba-val (2,993)."""
    base = _check(subset, data_dir)
    layout, paths, native = _layout(base)
    side = resolve_size(size, native, "celebahq")
    files = [paths[k] for k in _numbers(subset, split, base)]
    root = files[0].parent if layout != "LaMa's *_256 folders" else base
    label = f"celebahq ({layout}) in '{data_dir}'"
    return ListedImages(root, files, side, split, label, LICENCE)
