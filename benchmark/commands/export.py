"""``python -m benchmark export``: the benchmark's inputs as lossless PNGs for outside models.

For each mask type and image the export writes the masked input (hole pixels 0) and the mask
(255 = hole) exactly as the harness draws them, each image's original once, and a manifest
(``manifest.json`` and ``manifest.csv``) naming every file with its mask spec, index, hole
ratio, the seed and the data set's identity. A model that lives elsewhere fills the masked
inputs, writes its images in the same layout, and ``--methods predictions:DIR`` scores them
like a native method.

The originals are the answers: they go to ``DIR/_ground_truth/<index:06d>.png``, apart from
the mask folders a model reads, in both layouts, so that a model pointed at a mask folder (or
a script that globs one) never sees them.

Layouts (``<mask>`` is the mask spec as a file name, as in run folders):

``native``  ``DIR/<mask>/<index:06d>_masked.png`` and ``<index:06d>_mask.png``; predictions
            go to ``PRED/<mask>/<index:06d>.png``.
``lama``    ``DIR/<mask>/<index:06d>.png`` (the masked input) and
            ``DIR/<mask>/<index:06d>_mask000.png``, the layout LaMa's ``bin/predict.py`` reads
            (images ``<name>.png``, masks ``*mask*.png`` in the same folder). LaMa writes
            ``PRED/<mask>/<index:06d>_mask000.png``, which ``predictions:PRED,layout=lama`` reads.

The same command always writes byte-identical files: fixed PNG parameters, no timestamps.

Nothing is written or deleted outside ``DIR``: the files a previous export's manifest names
are deleted only when they lie inside ``DIR`` (absolute paths, ``..`` and symbolic links
leading out are refused, one line), and every file is written only after its folder was
checked not to lead out of ``DIR`` through a symbolic link.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.results.export_layout import (
    CSV_FIELDS,
    GROUND_TRUTH,
    LAYOUTS,
    MANIFEST_CSV,
    MANIFEST_JSON,
    MANIFEST_KIND,
    file_names,
    mask_folder,
    prediction_name,
    read_manifest,
)
from benchmark.results.paths import confined, is_within

EXAMPLES = """\
examples:
  python -m benchmark export --masks lines,square --limit 100 --out exported
  python -m benchmark export --dataset cifar10 --data-dir ~/data --masks lines --out ex
  python -m benchmark export --masks square --mask-ratio 0.1-0.2 --layout lama --out ex-lama

Fill exported/<mask>/<index>_masked.png with your model, write the results as
preds/<mask>/<index>.png, then score them with the same options (export= checks that they are):
  python -m benchmark run --methods telea,predictions:preds,export=exported --masks lines,square \\
      --limit 100
The originals are in exported/_ground_truth/, apart from what the model reads.
"""

#: Fixed PNG encoder settings: the same pixels always give the same bytes.
PNG_PARAMS = (16, 3)  # (cv2.IMWRITE_PNG_COMPRESSION, level 3); cv2 writes no time chunk


def encode_png(pixels: np.ndarray) -> bytes:
    """``uint8 (H, W, 3)`` RGB or ``(H, W)`` gray -> PNG bytes (fixed settings)."""
    import cv2

    if pixels.ndim == 3:
        pixels = pixels[..., ::-1]  # OpenCV writes BGR
    ok, data = cv2.imencode(".png", np.ascontiguousarray(pixels), list(PNG_PARAMS))
    if not ok:
        raise OSError("OpenCV could not encode a PNG")
    return data.tobytes()


def _prepare_out(out: Path) -> None:
    """Refuse a non-empty folder that is not an export; clear a previous export's files."""
    from benchmark.errors import UsageError

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file, expected a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    previous = read_manifest(out)
    if previous is None:
        raise UsageError(
            f"--out {str(out)!r} is not empty and holds no export manifest; "
            "choose a new or empty folder"
        )
    # files of the previous export only: a smaller --limit must not leave stale images behind.
    # Every name is checked first (all or nothing): a tampered manifest deletes nothing.
    what = f"export manifest {str(out / MANIFEST_JSON)!r} (delete the folder or choose a new --out)"
    stale = [
        confined(out, row[key], what)
        for row in previous.get("files", [])
        for key in ("original", "masked", "mask_file")
    ]
    for path in stale:
        path.unlink(missing_ok=True)  # a link itself, never what it points to
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
        if not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()


def _check_folder(out: Path, folder: str) -> None:
    """Refuse to write into ``out/folder`` when it leads out of ``out`` (a symbolic link)."""
    from benchmark.errors import DataError

    if not is_within(out / folder, out):
        raise DataError(
            f"--out {str(out)!r}: '{folder}' is a symbolic link leading outside the export "
            "folder; nothing is written through it (remove it, or choose a new --out)"
        )


def export(
    dataset: str,
    split: str,
    size: int | None,
    masks: Sequence[str],
    out: str | Path,
    data_dir: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    mask_ratio: str | None = None,
    layout: str = "native",
) -> dict[str, Any]:
    """Write the export of ``masks`` over ``dataset`` to ``out``; return the manifest."""
    import benchmark
    from benchmark.datasets import build_dataset
    from benchmark.datasets.base import dataset_spec
    from benchmark.errors import UsageError
    from benchmark.masking import MASKS, build_mask, parse_ratio_range
    from benchmark.method import to_uint8_hwc
    from benchmark.records import write_atomic, write_json

    if layout not in LAYOUTS:
        raise UsageError(f"--layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    if seed < 0:
        raise UsageError(f"--seed must be non-negative, got {seed}")
    ratio = parse_ratio_range(mask_ratio) if mask_ratio else None
    specs = [str(MASKS.normalize(m)) for m in masks]
    if not specs:
        raise UsageError("--masks needs at least one name")
    repeated = sorted({s for s in specs if specs.count(s) > 1})
    if repeated:
        raise UsageError(f"masks listed twice (after aliases and defaults): {', '.join(repeated)}")
    generators = {s: build_mask(s) for s in specs}
    data = build_dataset(dataset, split, size, data_dir)
    count = len(data) if limit is None else min(limit, len(data))
    out = Path(out)
    _prepare_out(out)

    rows: list[dict[str, Any]] = []
    written: set[str] = set()  # originals written by this export (once per image)
    checked: set[str] = set()  # folders checked not to lead out of ``out``
    batch_size = 256
    for start in range(0, count, batch_size):
        indices = list(range(start, min(start + batch_size, count)))
        originals = data.images(indices)
        height, width = originals.shape[-2:]
        originals_u8 = to_uint8_hwc(originals)
        for spec, generator in generators.items():
            holes = generator.batch(indices, height, width, seed, ratio)
            masked_u8 = to_uint8_hwc(originals.masked_fill(holes, 0.0))
            holes_u8 = holes[:, 0].numpy().astype(np.uint8) * 255
            ratios = holes.flatten(1).float().mean(1).tolist()
            folder = mask_folder(spec)
            for j, index in enumerate(indices):
                names = file_names(layout, folder, index)
                for key, pixels in (
                    ("original", originals_u8[j]),
                    ("masked", masked_u8[j]),
                    ("mask_file", holes_u8[j]),
                ):
                    if key == "original" and names[key] in written:  # once per image
                        continue
                    folder_name = names[key].rpartition("/")[0]
                    if folder_name not in checked:
                        _check_folder(out, folder_name)
                        checked.add(folder_name)
                    write_atomic(out / names[key], encode_png(pixels))
                    written.add(names[key])
                rows.append(
                    {
                        "mask": spec,
                        "mask_folder": folder,
                        "index": index,
                        **names,
                        "mask_ratio": ratios[j],
                    }
                )
    rows.sort(key=lambda r: (specs.index(r["mask"]), r["index"]))
    manifest = {
        "kind": MANIFEST_KIND,
        "version": benchmark.__version__,
        "layout": layout,
        "dataset": {
            "spec": str(dataset_spec(dataset)),
            "split": split,
            "size": size,
            "data_dir": str(Path(data_dir).expanduser().resolve()) if data_dir else None,
            "fingerprint": data.fingerprint(),
            "images": count,
            "image_size": list(data.image_size),
        },
        "seed": seed,
        "mask_ratio": list(ratio) if ratio else None,
        "limit": limit,
        "masks": {
            s: {"folder": mask_folder(s), "fingerprint": g.fingerprint()}
            for s, g in generators.items()
        },
        "prediction_file": "<mask_folder>/"
        + prediction_name(layout, 0).replace("000000", "<index>"),
        "files": rows,
    }
    write_json(out / MANIFEST_JSON, manifest)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in CSV_FIELDS} for row in rows)
    write_atomic(out / MANIFEST_CSV, text.getvalue())
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``export``."""
    parser.add_argument("--dataset", default="skimage-patches", help="data set (as for run)")
    parser.add_argument("--data-dir", default=None, help="where data set files live (cifar10)")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--size", type=int, default=None, help="image side (as for run)")
    parser.add_argument("--masks", required=True, help="comma-separated mask generators")
    parser.add_argument(
        "--mask-ratio", default=None, help="keep only masks whose hole ratio is in LOW-HIGH"
    )
    parser.add_argument("--limit", type=int, default=None, help="export the first N images only")
    parser.add_argument("--seed", type=int, default=0, help="mask seed (default 0)")
    parser.add_argument("--out", required=True, help="export folder (new, empty or an export)")
    parser.add_argument(
        "--layout",
        default="native",
        choices=LAYOUTS,
        help="native (<index>_masked.png, <index>_mask.png) or lama (<name>_mask000.png)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="PIXELS",
        help="largest image decoded (data, mask files), checked from each header (as for run)",
    )
    parser.add_argument(
        "--verify-data",
        action="store_true",
        help="fingerprint data and mask files by content (as for run; use it for both)",
    )


def run(args: argparse.Namespace) -> int:
    """``export`` subcommand: write the files and print a one-line summary."""
    from benchmark.images import set_max_pixels, set_verify_data
    from benchmark.registry import split_specs

    set_max_pixels(args.max_pixels)
    set_verify_data(args.verify_data)

    manifest = export(
        dataset=args.dataset,
        split=args.split,
        size=args.size,
        masks=split_specs(args.masks),
        out=args.out,
        data_dir=args.data_dir,
        limit=args.limit,
        seed=args.seed,
        mask_ratio=args.mask_ratio,
        layout=args.layout,
    )
    images = manifest["dataset"]["images"]
    print(
        f"exported {images} images x {len(manifest['masks'])} mask types "
        f"({args.layout} layout) to {args.out}; manifest: {Path(args.out) / MANIFEST_JSON}"
    )
    print(
        f"originals (the answers) are in {Path(args.out) / GROUND_TRUTH}, apart from the model's "
        f"inputs; write predictions as PRED/{manifest['prediction_file']}, then score them with "
        f"--methods predictions:PRED,export={args.out} and the same "
        "--dataset/--split/--size/--seed/--limit"
    )
    return 0
