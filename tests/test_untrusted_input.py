"""Hostile input files and values: a clear one-line error, never a crash or a silent acceptance.

CIFAR-10 batches crafted to make numpy build object or oversized arrays, image folders with
huge, corrupt or looping entries, damaged records and weights files, and method parameters that
OpenCV would silently clamp.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmark.datasets import build_dataset
from benchmark.datasets import folder as folder_module
from benchmark.datasets.base import MAX_SIZE
from benchmark.datasets.cifar10 import MAX_BATCH_IMAGES, read_batch
from benchmark.datasets.pickle_reader import PickleFormatError, read_plain_pickle
from benchmark.errors import DataError, UsageError
from benchmark.method import METHODS
from benchmark.records import RecordStore, read_json, truncate_reason
from benchmark.weights import load_tensors

BATCHES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
RECONSTRUCT = np.zeros(1).__reduce__()[0]
UINT8_STATE = (3, "|", None, None, None, -1, -1, 0)

# ---------------------------------------------------------------------------------------------
# Crafted CIFAR-10 batches: objects whose __reduce__ makes pickle write exactly the opcodes a
# hostile file would hold (numpy's dtype and array reconstruction with chosen arguments).


class FakeDtype:
    def __init__(self, kind: str = "u1", state: tuple = UINT8_STATE) -> None:
        self.kind, self.state = kind, state

    def __reduce__(self) -> tuple:
        return (np.dtype, (self.kind, False, True), self.state)


class FakeArray:
    """``_reconstruct(ndarray, ...)`` with a chosen shape, dtype, byte string and order."""

    def __init__(
        self,
        shape: tuple,
        raw: bytes | None,
        dtype: FakeDtype | None = None,
        fortran: bool = False,
    ) -> None:
        self.shape, self.raw, self.dtype, self.fortran = shape, raw, dtype or FakeDtype(), fortran

    def __reduce__(self) -> tuple:
        if self.raw is None:  # no state: numpy hands back uninitialised memory of that shape
            return (RECONSTRUCT, (np.ndarray, self.shape, "B"))
        state = (1, self.shape, self.dtype, self.fortran, self.raw)
        return (RECONSTRUCT, (np.ndarray, (0,), b"b"), state)


def batch_bytes(data: object, labels: object, protocol: int = 2) -> bytes:
    batch = {b"batch_label": b"crafted", b"labels": labels, b"data": data, b"filenames": []}
    return pickle.dumps(batch, protocol=protocol)


def write_cifar(folder: Path, test_batch: bytes, rows: int = 4) -> Path:
    """A ``cifar-10-batches-py`` whose train batches are fine and whose test batch is given."""
    folder.mkdir(parents=True, exist_ok=True)
    good = np.random.default_rng(0).integers(0, 256, (rows, 3072), dtype=np.uint8)
    for name in BATCHES[:-1]:
        (folder / name).write_bytes(batch_bytes(good, [i % 10 for i in range(rows)]))
    (folder / "test_batch").write_bytes(test_batch)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}, protocol=2))
    return folder


def pixels(rows: int, value: int = 7) -> bytes:
    return bytes([value]) * (rows * 3072)


OBJECT_FLAGS = FakeArray((4, 3072), pixels(4, 0x41), FakeDtype(state=(*UINT8_STATE[:-1], 1)))

CRAFTED: dict[str, tuple[bytes, str]] = {
    # numpy's dtype state with made-up flags: items read as object pointers
    "object-flags": (batch_bytes(OBJECT_FLAGS, [0] * 4), "unexpected flags"),
    "object-dtype": (
        batch_bytes(FakeArray((4, 3072), pixels(4), FakeDtype("O")), [0] * 4),
        "got dtype O",
    ),
    "structured-dtype": (
        batch_bytes(
            FakeArray((4, 3072), pixels(4), FakeDtype(state=(3, "|", None, ("a",), {}, 1, 1, 0))),
            [0] * 4,
        ),
        "unexpected flags or fields",
    ),
    # ~240 bytes declaring 2,000,000 images: numpy would allocate 6 GB of uninitialised memory
    "huge-uninitialised": (
        batch_bytes(FakeArray((2_000_000, 3072), None), FakeArray((2_000_000,), None)),
        "without its pixel bytes",
    ),
    "small-uninitialised": (batch_bytes(FakeArray((4, 3072), None), [0] * 4), "without its"),
    "more-images-than-bytes": (
        batch_bytes(FakeArray((4, 3072), pixels(1)), [0] * 4),
        r"needs 12288 bytes of pixels, the file holds 3072",
    ),
    "more-bytes-than-images": (
        batch_bytes(FakeArray((1, 3072), pixels(4)), [0]),
        r"needs 3072 bytes",
    ),
    "too-many-images": (
        batch_bytes(FakeArray((MAX_BATCH_IMAGES + 1, 3072), pixels(1)), [0]),
        "1 <= N <= 10000",
    ),
    "fortran-order": (
        batch_bytes(FakeArray((4, 3072), pixels(4), fortran=True), [0] * 4),
        "Fortran",
    ),
    "labels-out-of-range": (batch_bytes(FakeArray((2, 3072), pixels(2)), [3, 10]), "0..9, got 10"),
    "labels-negative": (batch_bytes(FakeArray((2, 3072), pixels(2)), [-1, 0]), "0..9, got -1"),
    "labels-count": (batch_bytes(FakeArray((2, 3072), pixels(2)), [1]), "expected 2 labels"),
    "labels-array": (
        batch_bytes(FakeArray((2, 3072), pixels(2)), np.zeros(2, np.uint8)),
        "labels as a list of integers",
    ),
    "trailing-bytes": (batch_bytes(FakeArray((2, 3072), pixels(2)), [0, 1]) + b"x", "after the"),
    "foreign-global": (
        b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00truep\x85R.",
        "unexpected object os.system",
    ),
    "protocol-0-opcode": (b"(dp0\nS'data'\np1\nI1\ns.", "unexpected pickle opcode"),
    # 200,000 nested lists: a recursive reader would die with RecursionError
    "deep-nesting": (b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b".", "expected a dict"),
    # one 1,000-character string encoded 5,000 times through the memo: 5 MB from 41 kB
    "expansion-bomb": (
        b"\x80\x02c_codecs\nencode\nq\x00X\xe8\x03\x00\x00"
        + b"a" * 1000
        + b"q\x01X\x06\x00\x00\x00latin1q\x02](" * 1
        + b"h\x00h\x01h\x02\x86R" * 5000
        + b"e.",
        "expands to more bytes than it holds",
    ),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_cifar_batch_is_a_data_error(case: str, tmp_path: Path) -> None:
    data, message = CRAFTED[case]
    folder = write_cifar(tmp_path / "cifar-10-batches-py", data)
    with pytest.raises(DataError, match=message) as info:
        build_dataset("cifar10", data_dir=tmp_path)
    assert "test_batch" in str(info.value) and "\n" not in str(info.value)
    build_dataset("cifar10", split="train", data_dir=folder)  # the other batches are fine


def test_huge_declared_batch_is_tiny_on_disk() -> None:
    assert len(CRAFTED["huge-uninitialised"][0]) < 300


@pytest.mark.slow
def test_crafted_cifar_batch_fails_cleanly_in_a_process(tmp_path: Path, run_cli) -> None:
    """The whole CLI, in its own process: exit 1 with one line, never a signal or exit 0."""
    write_cifar(tmp_path / "data" / "cifar-10-batches-py", CRAFTED["object-flags"][0])
    code, _, stderr = run_cli(
        "run", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
        "--methods", "mean", "--masks", "square", "--limit", "2", "--quiet",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CIFAR-10 batch"), stderr
    assert "unexpected flags" in lines[0]


def test_unequal_batches_are_refused(tmp_path: Path) -> None:
    folder = write_cifar(
        tmp_path / "cifar-10-batches-py", batch_bytes(FakeArray((2, 3072), pixels(2)), [0, 1])
    )
    (folder / "data_batch_3").write_bytes(batch_bytes(FakeArray((3, 3072), pixels(3)), [0, 1, 2]))
    with pytest.raises(DataError, match=r"different numbers of images \(4, 4, 3, 4, 4\)"):
        build_dataset("cifar10", split="train", data_dir=tmp_path)


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_real_format_batches_load_exactly(protocol: int, tmp_path: Path) -> None:
    """The release's layout (a dict of bytes keys holding a uint8 numpy array) at protocols
    2 (the release), 3 and 4 (re-pickled by Python 3): exact pixels, labels and order."""
    rows = np.random.default_rng(protocol).integers(0, 256, (5, 3072), dtype=np.uint8)
    labels = [9, 0, 3, 3, 1]
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": labels,
        b"data": rows,
        b"filenames": [b"frog_%d.png" % i for i in range(5)],
    }
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    images, loaded = read_batch(path)
    assert images.dtype == np.uint8 and images.shape == (5, 32, 32, 3)
    assert np.array_equal(images, rows.reshape(5, 3, 32, 32).transpose(0, 2, 3, 1))
    assert loaded.tolist() == labels


def test_plain_pickle_values_and_refusals() -> None:
    value = {"a": [1, (2, None, True)], b"b": "text", "c": b"\x00\xff"}
    for protocol in (2, 3, 4):
        assert read_plain_pickle(pickle.dumps(value, protocol=protocol)) == value
    with pytest.raises(PickleFormatError, match="unexpected pickle opcode BINFLOAT"):
        read_plain_pickle(pickle.dumps(1.5, protocol=2))
    with pytest.raises(PickleFormatError, match="STOP"):
        read_plain_pickle(pickle.dumps(value, protocol=2)[:-1])
    with pytest.raises(PickleFormatError):
        read_plain_pickle(pickle.dumps(value, protocol=2)[:20])


# ---------------------------------------------------------------------------------------------
# Image folders.


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def photo(height: int = 96, width: int = 96) -> np.ndarray:
    """A smooth colour image (JPEG-friendly), deterministic."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 2 % 256, cols * 2 % 256, (rows + cols) % 256], -1).astype(np.uint8)


def test_wide_image_is_cropped_before_resizing(tmp_path: Path, monkeypatch) -> None:
    """A 1 x 1,000,000 strip must never be resized whole (the old loader asked for 49 GB)."""
    write_png(tmp_path / "strip.png", np.full((1, 1_000_000, 3), 90, np.uint8))
    requested: list[tuple[int, int]] = []
    real_resize = cv2.resize

    def spy(image: np.ndarray, dsize: tuple[int, int], *args: object, **kwargs: object):
        requested.append((image.shape[1], image.shape[0]))
        requested.append(tuple(dsize))
        if dsize[0] * dsize[1] > 128 * 128:
            raise AssertionError(f"resize to {dsize} requested")
        return real_resize(image, dsize, *args, **kwargs)

    monkeypatch.setattr(folder_module.cv2, "resize", spy)
    image = build_dataset(f"folder:path={tmp_path},small=upscale", size=128).images([0])
    assert image.shape == (1, 3, 128, 128) and bool((image * 255 == 90).all())
    assert max(w * h for w, h in requested) <= 128 * 128


def png_with_header_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header (with a valid CRC) claims ``width`` x ``height`` pixels."""
    data = bytearray(write_png(path, np.zeros((4, 4, 3), np.uint8)).read_bytes())
    ihdr = 8 + 8  # signature, then chunk length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_image_above_the_pixel_limit_is_refused_before_decoding(
    tmp_path: Path, monkeypatch
) -> None:
    png_with_header_size(tmp_path / "bomb.png", 10_000, 6_000)
    dataset = build_dataset(f"folder:{tmp_path}", size=32)

    def no_decode(*args: object) -> None:
        raise AssertionError("decoded an image above the limit")

    monkeypatch.setattr(folder_module.cv2, "imdecode", no_decode)
    with pytest.raises(DataError) as info:
        dataset.images([0])
    assert str(info.value) == (
        f"folder '{tmp_path}': image 'bomb.png' has 10000x6000 pixels, more than the "
        f"limit of {folder_module.MAX_PIXELS:,}"
    )


def test_pixel_limit_also_applies_when_the_header_is_unknown(tmp_path: Path, monkeypatch) -> None:
    import benchmark.images as images_module

    write_png(tmp_path / "a.png", photo(40, 30))
    monkeypatch.setattr(folder_module, "header_size", lambda *args: None)
    monkeypatch.setattr(images_module, "header_size", lambda *args: None)
    monkeypatch.setenv(images_module.MAX_PIXELS_ENV, "1000")
    with pytest.raises(DataError, match=r"'a.png' has 30x40 pixels, more than the limit of 1,000"):
        build_dataset(f"folder:{tmp_path}", size=16).images([0])


@pytest.mark.parametrize("name", ["folder", "skimage-patches", "cifar10"])
def test_size_above_the_maximum_is_a_usage_error(name: str, tmp_path: Path) -> None:
    spec = f"folder:{tmp_path}" if name == "folder" else name
    with pytest.raises(UsageError, match=f"integer from 11 to {MAX_SIZE}, got {MAX_SIZE + 1}"):
        build_dataset(spec, size=MAX_SIZE + 1, data_dir=tmp_path)


def test_size_option_above_the_maximum_is_one_line(run_cli, tmp_path: Path) -> None:
    code, _, stderr = run_cli("run", "--methods", "mean", "--masks", "square", "--size", "5000")
    assert code == 2 and stderr.strip().startswith("error:") and "4096" in stderr
    assert len(stderr.strip().splitlines()) == 1


def jpeg_bytes(image: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


def corrupt_entropy(data: bytes) -> bytes:
    """Overwrite 100 bytes in the middle of the compressed data with zeros (keeps EOI)."""
    start = (data.index(b"\xff\xda") + len(data)) // 2
    return data[:start] + bytes(100) + data[start + 100 :]


JPEG_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) * 2 // 3],
    "no-end-marker": lambda data: data[:-2],
    "corrupt-entropy": corrupt_entropy,
}


@pytest.mark.parametrize("damage", sorted(JPEG_DAMAGE))
def test_corrupt_jpeg_is_refused_naming_the_file(damage: str, tmp_path: Path) -> None:
    good = jpeg_bytes(photo(128, 128))
    broken = JPEG_DAMAGE[damage](good)
    if damage == "corrupt-entropy":  # OpenCV alone decodes it into a half-garbage image
        assert cv2.imdecode(np.frombuffer(broken, np.uint8), cv2.IMREAD_COLOR) is not None
    (tmp_path / "good.jpg").write_bytes(good)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.jpg").write_bytes(broken)
    dataset = build_dataset(f"folder:{tmp_path}", size=32)
    dataset.images([0])
    with pytest.raises(DataError) as info:
        dataset.images([1])
    message = str(info.value)
    assert "'sub/bad.jpg'" in message and "\n" not in message
    assert ("corrupt JPEG" in message) or ("cannot decode" in message)


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK", "progressive"])
def test_valid_jpeg_variants_still_load(mode: str, tmp_path: Path) -> None:
    image = Image.fromarray(photo(64, 80))
    image = image.convert("RGB" if mode == "progressive" else mode)
    image.save(tmp_path / "x.jpg", quality=95, progressive=mode == "progressive")
    loaded = build_dataset(f"folder:{tmp_path}", size=64).images([0])
    assert loaded.shape == (1, 3, 64, 64)
    expected = cv2.cvtColor(
        cv2.imread(str(tmp_path / "x.jpg"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    assert np.array_equal(
        (loaded[0] * 255).round().byte().permute(1, 2, 0).numpy(), expected[:, 8:72]
    )


def test_dangling_symlink_is_an_error_naming_it(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", photo())
    os.symlink(tmp_path / "gone.png", tmp_path / "b.png")
    with pytest.raises(DataError, match=r"broken symbolic link 'b.png'"):
        build_dataset(f"folder:{tmp_path}")


def test_self_looping_symlink_is_an_error_naming_it(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", photo())
    (tmp_path / "sub").mkdir()
    os.symlink("loop.png", tmp_path / "sub" / "loop.png")
    with pytest.raises(DataError, match=r"broken symbolic link 'sub/loop.png'"):
        build_dataset(f"folder:{tmp_path}")


def test_directory_link_loop_is_an_error(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", photo())
    (tmp_path / "sub").mkdir()
    os.symlink("..", tmp_path / "sub" / "up")
    with pytest.raises(DataError, match=r"directory 'sub/up' is the same as '.'"):
        build_dataset(f"folder:{tmp_path}")


def test_valid_links_are_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_png(outside / "x.png", photo())
    write_png(outside / "more" / "y.png", photo())
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "x.png", root / "a.png")
    os.symlink(outside / "more", root / "linked")
    dataset = build_dataset(f"folder:{root}", size=32)
    assert [p.relative_to(root).as_posix() for p in dataset.files] == ["a.png", "linked/y.png"]


def test_fingerprint_covers_added_files_and_the_working_directory(
    tmp_path: Path, monkeypatch
) -> None:
    for place in ("one", "two"):
        write_png(tmp_path / place / "imgs" / "a.png", photo())
        os.utime(tmp_path / place / "imgs" / "a.png", ns=(10**18, 10**18))
    monkeypatch.chdir(tmp_path / "one")
    first = build_dataset("folder:imgs", size=64).fingerprint()
    assert build_dataset("folder:imgs", size=64).fingerprint() == first  # stable
    monkeypatch.chdir(tmp_path / "two")  # same relative path, same file names, sizes, mtimes
    assert build_dataset("folder:imgs", size=64).fingerprint() != first
    monkeypatch.chdir(tmp_path / "one")
    write_png(tmp_path / "one" / "imgs" / "b.png", photo())
    assert build_dataset("folder:imgs", size=64).fingerprint() != first


def test_fingerprint_follows_a_retargeted_link(tmp_path: Path) -> None:
    for name in ("x.png", "y.png"):
        write_png(tmp_path / "store" / name, photo())
        os.utime(tmp_path / "store" / name, ns=(10**18, 10**18))
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path / "store" / "x.png", root / "a.png")
    first = build_dataset(f"folder:{root}", size=64).fingerprint()
    (root / "a.png").unlink()
    os.symlink(tmp_path / "store" / "y.png", root / "a.png")
    assert build_dataset(f"folder:{root}", size=64).fingerprint() != first


def test_cifar_fingerprint_covers_the_pixels(tmp_path: Path) -> None:
    folder = write_cifar(
        tmp_path / "cifar-10-batches-py", batch_bytes(FakeArray((2, 3072), pixels(2, 5)), [0, 1])
    )
    first = build_dataset("cifar10", data_dir=tmp_path).fingerprint()
    (folder / "test_batch").write_bytes(batch_bytes(FakeArray((2, 3072), pixels(2, 6)), [0, 1]))
    assert build_dataset("cifar10", data_dir=tmp_path).fingerprint() != first


def test_image_beyond_pillows_own_limit_is_refused(tmp_path: Path) -> None:
    png_with_header_size(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(
        DataError, match=r"'bomb.png' has 10,000,000,000 pixels, more than the limit of 50,000,000"
    ):
        build_dataset(f"folder:{tmp_path}", size=32).images([0])


# ---------------------------------------------------------------------------------------------
# Records and JSON files.

GOOD_LINE = '{"method": "telea", "mask": "lines", "index": 0, "status": "ok", "psnr": 30.5}'
BAD_RECORD_LINES = {
    "deep-nesting": "[" * 100_000 + "]" * 100_000,
    "deep-nesting-in-a-field": GOOD_LINE[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "list-as-method": '{"method": ["telea"], "mask": "lines", "index": 1, "status": "ok"}',
    "dict-as-mask": '{"method": "telea", "mask": {"a": 1}, "index": 1, "status": "ok"}',
    "number-as-status": '{"method": "telea", "mask": "lines", "index": 1, "status": 1}',
    "list-as-fingerprint": GOOD_LINE[:-1] + ', "fingerprint": []}',
    "index-1e400": '{"method": "telea", "mask": "lines", "index": 1e400, "status": "ok"}',
    "index-float": '{"method": "telea", "mask": "lines", "index": 1.5, "status": "ok"}',
    "index-integral-float": '{"method": "telea", "mask": "lines", "index": 1.0, "status": "ok"}',
    "index-bool": '{"method": "telea", "mask": "lines", "index": true, "status": "ok"}',
    "index-negative": '{"method": "telea", "mask": "lines", "index": -1, "status": "ok"}',
    "index-huge-digits": '{"method": "t", "mask": "l", "index": '
    + "9" * 5000
    + ', "status": "ok"}',
    "nan-metric": '{"method": "telea", "mask": "lines", "index": 1, "status": "ok", "psnr": NaN}',
    "infinity-metric": GOOD_LINE[:-1] + ', "ssim": -Infinity}',
    "overflowing-metric": '{"method": "t", "mask": "l", "index": 1, "status": "ok", "psnr": 1e999}',
}


@pytest.mark.parametrize("case", sorted(BAD_RECORD_LINES))
def test_bad_record_line_is_a_data_error_naming_file_and_line(case: str, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(GOOD_LINE + "\n" + BAD_RECORD_LINES[case] + "\n")
    with pytest.raises(DataError) as info:
        RecordStore(path)
    message = str(info.value)
    assert str(path) in message and "line 2" in message
    assert "\n" not in message and len(message) < 500


def test_good_records_still_load(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    RecordStore(path).append(
        [{"method": "telea", "mask": "lines", "index": 3, "status": "ok", "psnr": float("nan")}]
    )
    path.write_text(path.read_text() + GOOD_LINE + "\n")
    store = RecordStore(path, truncate=False)  # a reader sees the null; a run recomputes it
    assert store.get(("telea", "", "lines", 3))["psnr"] is None
    assert store.get(("telea", "", "lines", 0))["psnr"] == 30.5
    assert RecordStore(path).get(("telea", "", "lines", 3)) is None


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, '{"a": ' + "1" * 5000 + "}"])
def test_read_json_of_hostile_content_is_a_data_error(content: str, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(content)
    with pytest.raises(DataError, match="not valid JSON") as info:
        read_json(path, "run file")
    assert "\n" not in str(info.value) and len(str(info.value)) < 500


def test_truncate_reason() -> None:
    assert truncate_reason("RuntimeError: boom") == "RuntimeError: boom"
    assert truncate_reason("a\n\n  b\tc") == "a b c"
    long = truncate_reason("ValueError: " + "x" * 100_000)
    assert len(long) == 300 and long.endswith("…") and long.startswith("ValueError: xx")
    assert len(truncate_reason("y" * 1000, limit=80)) == 80
    assert truncate_reason(ValueError("from an exception")) == "from an exception"


# ---------------------------------------------------------------------------------------------
# Weights files (safetensors headers).


def safetensors_with_header(path: Path, header: bytes) -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


DEEP = "[" * 100_000 + "]" * 100_000
BAD_HEADERS = {
    "deep-header": DEEP.encode(),
    "deep-metadata-value": json.dumps({"__metadata__": {"format": DEEP}}).encode(),
    "header-is-a-list": b"[1, 2]",
    "metadata-is-a-list": b'{"__metadata__": [1]}',
    "metadata-value-not-text": b'{"__metadata__": {"format": 5}}',
    "long-integer": b'{"__metadata__": {"format": "' + b"1" * 5000 + b'"}}',
    "not-utf8": b'{"__metadata__": {"\xff": "1"}}',
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_hostile_safetensors_header_is_one_line(case: str, tmp_path: Path) -> None:
    path = safetensors_with_header(tmp_path / "w.safetensors", BAD_HEADERS[case])
    with pytest.raises(DataError) as info:
        load_tensors(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and len(message) < 500


# ---------------------------------------------------------------------------------------------
# Method parameters: refused when not finite, out of range, or silently rounded or clamped.

BAD_PARAMETERS = [
    "telea:radius=inf",
    "ns:radius=nan",
    "telea:radius=-inf",
    "telea:radius=101",  # cv2.inpaint clamps to 100
    "ns:radius=1000",
    "telea:radius=4.4",  # cv2.inpaint rounds to 4
    "ns:radius=2.5",
    "telea:radius=5.0",  # a second label for radius=5
    "telea:radius=0",
    "telea:radius=true",
    "telea:radius=abc",
    "diffusion:tol=inf",
    "diffusion:tol=nan",
    "diffusion:tol=0",
    "diffusion:tol=1",  # every tolerance >= 1 stops after one sweep
    "diffusion:tol=1e-9",  # below float32 resolution: same stop as any smaller tolerance
    "diffusion:iterations=inf",
    "diffusion:iterations=2.5",
    "diffusion:iterations=0",
    "diffusion:iterations=10000001",
    "diffusion:iterations=false",
]


@pytest.mark.parametrize("spec", BAD_PARAMETERS)
def test_bad_method_parameter_is_a_one_line_usage_error(spec: str) -> None:
    with pytest.raises(UsageError) as info:
        METHODS.build(spec)
    message = str(info.value)
    assert "\n" not in message and spec.split(":")[0] in message
    assert spec.split(":")[1].split("=")[0] in message


@pytest.mark.parametrize(
    "spec, attribute, value",
    [
        ("telea:radius=1", "radius", 1),
        ("ns:radius=100", "radius", 100),
        ("diffusion:tol=1e-7", "tol", 1e-7),
        ("diffusion:tol=0.5", "tol", 0.5),
    ],
)
def test_method_parameters_at_the_limits_are_accepted(spec: str, attribute: str, value) -> None:
    """A limit value is accepted and reaches the method unchanged (not clamped, not replaced
    by the default)."""
    method = METHODS.build(spec)
    assert getattr(method, attribute) == value
    assert getattr(METHODS.build(spec.split(":")[0]), attribute) != value  # not the default


def test_opencv_rounds_the_radius() -> None:
    """Why fractional radii are refused: cv2.inpaint gives 4.4 the result of 4 (and 4.6 that of
    5). Its clamp to 100 was measured once (300 x 300 image, 100 x 100 hole: 99 differs from
    100, 101 and 1000 equal 100); too slow to repeat here."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hole = np.zeros((64, 64), np.uint8)
    hole[20:44, 20:44] = 255
    for flag in (cv2.INPAINT_TELEA, cv2.INPAINT_NS):
        at = {r: cv2.inpaint(image, hole, r, flag) for r in (4, 4.4, 4.6, 5)}
        assert np.array_equal(at[4], at[4.4]) and np.array_equal(at[5], at[4.6])
        assert not np.array_equal(at[4], at[5])
