"""Fixed mask sets that ship as files (the NVIDIA irregular-mask test set): checked by name,
count and size before a protocol run uses them.

No checksum list of the NVIDIA files is published, so the set is recognised by what is: its
file names (``00000.png`` .. ``11999.png``), their number and their pixel size, read from the
file headers (about a second for 12,000 files). The ``folder`` mask generator then records a hash
of every file's name, size and modification time with each record, as for any mask folder.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import DataError, UsageError
from benchmark.protocols.base import MaskFiles


def check_mask_files(path: str | Path, files: MaskFiles) -> None:
    """Refuse ``path`` with one line unless it holds exactly the mask set ``files``."""
    from PIL import Image

    from benchmark.datasets.folder import list_images

    root = Path(str(path)).expanduser()
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise UsageError(f"mask folder '{path}' {problem}; {files.name}: {files.get}")
    found = {p.relative_to(root).as_posix(): p for p in list_images(root, str(path))}
    by_name = {Path(rel).name: p for rel, p in found.items()}
    expected = [files.pattern.format(k) for k in range(files.count)]
    missing = [name for name in expected if name not in by_name]
    extra = sorted(set(by_name) - set(expected))
    if missing or extra or len(found) != len(by_name):
        what = []
        if missing:
            what.append(
                f"{len(missing):,} of its {files.count:,} files are missing (first: {missing[0]})"
            )
        if extra:
            what.append(f"it also holds {len(extra):,} other image files (first: {extra[0]})")
        if len(found) != len(by_name):
            what.append("a file name appears in two of its folders")
        raise DataError(
            f"mask folder '{path}' is not the {files.name}: {'; '.join(what)}; {files.get}"
        )
    for name in expected:
        with Image.open(by_name[name]) as image:
            size = image.size
        if size != (files.side, files.side):
            raise DataError(
                f"mask folder '{path}': '{name}' is {size[0]}x{size[1]}, the {files.name} has "
                f"{files.side}x{files.side} masks; {files.get}"
            )


def bin_of_file(number: int, files: MaskFiles) -> int:
    """The hole-ratio bin (0-based) that file ``number`` belongs to in the published order."""
    return number // files.per_bin
