"""Check the HTML report in a real browser; ``scripts/check-report`` runs this in ``.venv-run``.

Makes 24 photos of 256x256 pixels (crops of scikit-image's colour photographs), runs
``telea,ns,unet`` on ``lines`` and ``square`` masks over them, writes the report, checks its
size (at most 3 MB), then takes two headless-Chromium screenshots: the page as it opens, and
the same page with its first sample image clicked (enlarged). The first, scaled to fit
:data:`MAX_PICTURE_BYTES`, becomes ``docs/images/report.png``.

    python scripts/check_report.py [--keep DIR] [--no-picture]

Exit status: 0 checked; 1 a check failed; 2 Chromium is missing or failed to start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PICTURE = ROOT / "docs" / "images" / "report.png"
#: The report of this check may not exceed this (the issue's limit).
MAX_REPORT_BYTES = 3_000_000
#: The committed screenshot stays below this.
MAX_PICTURE_BYTES = 300_000
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
WINDOW = (1280, 1500)


def make_photos(folder: Path, per_photo: int = 6) -> int:
    """``len(PHOTOS) * per_photo`` square crops (three quarters of the shorter side) as PNGs."""
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in PHOTOS:
        photo = getattr(data, name)()
        height, width = photo.shape[:2]
        side = min(height, width) * 3 // 4
        for j in range(per_photo):
            y = (height - side) * (j % 3) // 2
            x = (width - side) * (j // 3)
            crop = np.ascontiguousarray(photo[y : y + side, x : x + side])
            Image.fromarray(crop).save(folder / f"{name}_{j}.png")
            count += 1
    return count


def chromium() -> str | None:
    """The Chromium executable (``CHROMIUM`` overrides the search)."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def screenshot(browser: str, page: Path, out: Path, size: tuple[int, int] = WINDOW) -> None:
    """A headless screenshot of ``page`` (a local file) at ``size`` CSS pixels."""
    command = [
        browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not out.exists():
        tail = " ".join(done.stderr.split()[-30:])
        raise RuntimeError(f"Chromium made no screenshot (exit {done.returncode}): {tail}")


def shrink(source: Path, target: Path, limit: int) -> int:
    """Save ``source`` as ``target``, scaled down until the PNG is under ``limit`` bytes."""
    from PIL import Image

    image = Image.open(source).convert("RGB")
    width = image.width
    while True:
        scaled = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        scaled = scaled.quantize(colors=256, method=Image.Quantize.FASTOCTREE)  # keeps swatches
        target.parent.mkdir(parents=True, exist_ok=True)
        scaled.save(target, optimize=True)
        if target.stat().st_size < limit or width < 400:
            return target.stat().st_size
        width = int(width * 0.85)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (default: a temp dir)")
    parser.add_argument("--no-picture", action="store_true", help="do not write docs/images/")
    args = parser.parse_args(argv)
    browser = chromium()
    if browser is None:
        print(
            "error: no Chromium found (install it, e.g. apt-get install -y chromium, or set "
            "CHROMIUM=/path/to/chrome)",
            file=sys.stderr,
        )
        return 2
    work = (args.keep or Path(tempfile.mkdtemp(prefix="check-report-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    count = make_photos(work / "photos")
    python = [sys.executable, "-m", "benchmark"]
    started = time.perf_counter()
    subprocess.run(  # relative paths: the picture shows no temporary folder
        [*python, "run", "--methods", "telea,ns,unet", "--masks", "lines,square", "--quiet",
         "--dataset", "folder:photos", "--size", "256", "--out", "run"],
        check=True, stdout=subprocess.DEVNULL, cwd=work,
    )  # fmt: skip
    report = work / "run" / "report.html"
    subprocess.run([*python, "report", "run"], check=True, cwd=work)
    size = report.stat().st_size
    print(
        f"{count} photos at 256 px: report {size / 1e6:.2f} MB "
        f"in {time.perf_counter() - started:.0f} s"
    )
    failures = []
    if size > MAX_REPORT_BYTES:
        failures.append(f"the report is {size:,} bytes, over {MAX_REPORT_BYTES:,}")
    text = report.read_text(encoding="utf-8")
    zoomed = work / "run" / "report-zoomed.html"
    zoomed.write_text(text.replace('<input type="checkbox">', '<input type="checkbox" checked>', 1))
    try:
        screenshot(browser, report, work / "page.png")
        screenshot(browser, zoomed, work / "zoomed.png")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures += check_zoom(work / "page.png", work / "zoomed.png")
    print(
        f"screenshots: {work / 'page.png'} (as opened), {work / 'zoomed.png'} (first image clicked)"
    )
    if not args.no_picture:
        written = shrink(work / "page.png", PICTURE, MAX_PICTURE_BYTES)
        print(f"wrote {PICTURE.relative_to(ROOT)} ({written / 1024:.0f} kB)")
    for failure in failures:
        print(f"check-report: FAIL: {failure}", file=sys.stderr)
    if not args.keep and not failures:
        shutil.rmtree(work)
    return 1 if failures else 0


def check_zoom(page: Path, zoomed: Path) -> list[str]:
    """The clicked page must show the enlarged image over a darkened page: its centre is the
    photo, its corners the dark backdrop, and it differs from the page as opened."""
    import numpy as np
    from PIL import Image

    before = np.asarray(Image.open(page).convert("RGB"), dtype=float)
    after = np.asarray(Image.open(zoomed).convert("RGB"), dtype=float)
    corner = after[:40, :40].mean()
    problems = []
    if corner > 80:  # the backdrop is rgba(0,0,0,0.8) over a white page: about 51
        problems.append(
            f"no dark backdrop behind the enlarged image (corner brightness {corner:.0f})"
        )
    if before.shape != after.shape or np.abs(before - after).mean() < 10:
        problems.append("clicking an image did not change the page")
    return problems


if __name__ == "__main__":
    sys.exit(main())
