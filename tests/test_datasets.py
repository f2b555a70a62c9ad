"""Built-in data sets: the image contract, the skimage split, CIFAR-10 files, image folders."""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmark.datasets import DATASETS, Dataset, build_dataset
from benchmark.datasets import cifar10 as cifar_module
from benchmark.datasets import folder as folder_module
from benchmark.datasets import skimage_patches as patches_module
from benchmark.errors import DataError, UnknownNameError, UsageError

# ---------------------------------------------------------------------------------------------
# Tiny CIFAR-10 files in the real format: pickled dicts with bytes keys, uint8 (N, 3072) rows
# holding the R, G and B planes of a 32 × 32 image.

N_PER_BATCH = 4
BATCH_NAMES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


def planes_image(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One CIFAR row from its three 32 × 32 planes."""
    return np.concatenate([r.ravel(), g.ravel(), b.ravel()]).astype(np.uint8)


def known_image() -> np.ndarray:
    """R depends on the row, G on the column, B is constant: catches swapped axes or planes."""
    rows, cols = np.mgrid[0:32, 0:32]
    return planes_image(10 + rows, 100 + cols, np.full((32, 32), 200))


def batch_rows(seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).integers(0, 256, (N_PER_BATCH, 3072), dtype=np.uint8)
    if seed == 5:  # test_batch: first image has the known layout
        rows[0] = known_image()
    return rows


def write_batch(path: Path, rows: np.ndarray, **extra: object) -> None:
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": [int(i) % 10 for i in range(len(rows))],
        b"data": rows,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(rows))],
    }
    batch.update({k.encode(): v for k, v in extra.items()})
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_cifar(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(BATCH_NAMES):
        write_batch(folder / name, batch_rows(seed))
    meta = {b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": N_PER_BATCH}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def make_archive(archive: Path, folder: Path, extra: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    """A data dir holding ``cifar-10-batches-py``."""
    write_cifar(tmp_path / "data" / "cifar-10-batches-py")
    return tmp_path / "data"


# ---------------------------------------------------------------------------------------------
# Small image folders.


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB(A) or grey uint8/uint16 array with cv2 (which expects BGR order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), rgb)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    write_image(root / "a.png", rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    write_image(root / "sub" / "b.JPG", rng.integers(0, 256, (50, 40, 3), dtype=np.uint8))
    write_image(root / "sub" / "deeper" / "c.bmp", np.full((20, 30), 77, np.uint8))
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[..., 3] = np.arange(40, dtype=np.uint8)[:, None] * 6  # alpha varies: must be ignored
    write_image(root / "d.png", rgba)
    (root / "notes.txt").write_text("not an image")
    write_image(root / ".hidden.png", np.zeros((8, 8, 3), np.uint8))
    return root


# ---------------------------------------------------------------------------------------------
# The contract, for every registered data set.


def _skimage(tmp_path: Path, split: str) -> Dataset:
    return build_dataset("skimage-patches", split=split)


def _cifar(tmp_path: Path, split: str) -> Dataset:
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    return build_dataset("cifar10", split=split, data_dir=folder)


def _folder(tmp_path: Path, split: str) -> Dataset:
    root = tmp_path / "imgs"
    write_image(root / "x.png", np.random.default_rng(1).integers(0, 256, (30, 50, 3), np.uint8))
    write_image(root / "y.jpg", np.full((70, 40, 3), 128, np.uint8))
    return build_dataset(f"folder:{root}", split=split, size=24)


OFFLINE_BUILDERS: dict[str, Callable[[Path, str], Dataset]] = {
    "skimage-patches": _skimage,
    "cifar10": _cifar,
    "folder": _folder,
}


@pytest.mark.parametrize("name", DATASETS.names())
@pytest.mark.parametrize("split", ["train", "test"])
def test_contract(name: str, split: str, tmp_path: Path) -> None:
    if name not in OFFLINE_BUILDERS:
        pytest.skip(f"no offline builder for data set {name!r}: add one to OFFLINE_BUILDERS")
    dataset = OFFLINE_BUILDERS[name](tmp_path, split)
    assert dataset.split == split and dataset.name.startswith(name)
    assert len(dataset) > 0
    indices = sorted({0, len(dataset) // 2, len(dataset) - 1})
    images = dataset.images(indices)
    assert images.dtype == torch.float32
    assert images.ndim == 4 and images.shape[:2] == (len(indices), 3)
    assert tuple(images.shape[2:]) == tuple(dataset.image_size)
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, torch.round(images * 255) / 255), "values must be exact k/255"
    # A stable index: an image does not depend on the batch it is fetched in.
    for position, index in enumerate(indices):
        assert torch.equal(dataset.images([index])[0], images[position])


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        build_dataset("cifar")
    message = str(info.value)
    assert "did you mean 'cifar10'" in message
    for name in ("cifar10", "folder", "skimage-patches"):
        assert name in message


def test_unknown_parameter_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no parameter 'colour'"):
        build_dataset("skimage-patches:colour=1")


# ---------------------------------------------------------------------------------------------
# skimage-patches


def test_skimage_split_by_photo() -> None:
    test = build_dataset("skimage-patches", split="test")
    train = build_dataset("skimage-patches", split="train")
    assert len(test) >= 2000
    test_photos = {photo for photo, _, _ in test.sources}
    train_photos = {photo for photo, _, _ in train.sources}
    assert test_photos == set(patches_module.TEST_PHOTOS)
    assert train_photos == set(patches_module.TRAIN_PHOTOS)
    assert not test_photos & train_photos
    assert {"motorcycle_left", "motorcycle_right"} <= train_photos
    assert len(test.sources) == len(test) and len(train.sources) == len(train)


def test_skimage_counts_are_pinned() -> None:
    # Changing the patches changes every committed baseline: update both together.
    assert len(build_dataset("skimage-patches", split="test")) == 3576
    assert len(build_dataset("skimage-patches", split="train")) == 11600


def test_skimage_patches_match_their_sources() -> None:
    dataset = build_dataset("skimage-patches", split="test")
    photos = {name: patches_module.load_photo(name) for name in patches_module.TEST_PHOTOS}
    for index in range(0, len(dataset), 97):
        photo, y, x = dataset.sources[index]
        assert y % 16 == 0 and x % 16 == 0
        expected = torch.from_numpy(photos[photo][y : y + 32, x : x + 32]).permute(2, 0, 1) / 255
        assert torch.equal(dataset.images([index])[0], expected.float())
    # Each patch is listed once, and a --limit prefix samples every photo, not only the first.
    assert len(set(dataset.sources)) == len(dataset)
    assert {p for p, _, _ in dataset.sources[:200]} == set(patches_module.TEST_PHOTOS)


@pytest.mark.parametrize("split", ["test", "train"])
def test_skimage_drops_near_flat_patches(split: str) -> None:
    pixels = build_dataset("skimage-patches", split=split).pixels
    for start in range(0, len(pixels), 2048):
        chunk = pixels[start : start + 2048].reshape(-1, 32 * 32 * 3) / 255.0
        assert chunk.std(axis=1).min() >= 0.04 - 1e-9
    everything = build_dataset("skimage-patches:min_std=0", split=split)
    assert len(everything) > len(pixels)  # the filter did drop some


def test_skimage_is_deterministic() -> None:
    first = build_dataset("skimage-patches", split="test")
    patches_module._build.cache_clear()
    second = build_dataset("skimage-patches", split="test")
    assert first.pixels is not second.pixels
    assert np.array_equal(first.pixels, second.pixels)
    assert first.sources == second.sources


def test_skimage_size_sets_side_and_stride() -> None:
    dataset = build_dataset("skimage-patches", split="test", size=48)
    assert dataset.image_size == (48, 48)
    assert all(y % 24 == 0 and x % 24 == 0 for _, y, x in dataset.sources)
    with pytest.raises(UsageError, match="size"):
        build_dataset("skimage-patches", size=1)


def test_skimage_cache_is_read_only() -> None:
    dataset = build_dataset("skimage-patches", split="test")
    with pytest.raises(ValueError):
        dataset.pixels[0, 0, 0, 0] = 0
    images = dataset.images([0])
    images.zero_()  # a returned batch is the caller's own copy
    assert dataset.images([0]).max() > 0


# ---------------------------------------------------------------------------------------------
# cifar10


def expected_images(seed: int) -> torch.Tensor:
    rows = batch_rows(seed).reshape(-1, 3, 32, 32)
    return torch.from_numpy(rows).float() / 255


def test_cifar_splits_and_order(cifar_dir: Path) -> None:
    test = build_dataset("cifar10", split="test", data_dir=cifar_dir)
    train = build_dataset("cifar10", split="train", data_dir=cifar_dir)
    assert len(test) == N_PER_BATCH and len(train) == 5 * N_PER_BATCH
    assert torch.equal(test.images(range(N_PER_BATCH)), expected_images(5))
    for batch in range(5):  # data_batch_1 .. 5, in order
        indices = range(batch * N_PER_BATCH, (batch + 1) * N_PER_BATCH)
        assert torch.equal(train.images(indices), expected_images(batch))
    assert test.labels.tolist() == [0, 1, 2, 3]


def test_cifar_pixel_order(cifar_dir: Path) -> None:
    image = build_dataset("cifar10", data_dir=cifar_dir).images([0])[0] * 255
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    assert torch.equal(image[0], 10 + rows)  # R plane: varies down the rows
    assert torch.equal(image[1], 100 + cols)  # G plane: varies along the columns
    assert torch.equal(image[2], torch.full((32, 32), 200.0))


def test_cifar_folder_may_be_data_dir_itself(cifar_dir: Path) -> None:
    dataset = build_dataset("cifar10", data_dir=cifar_dir / "cifar-10-batches-py")
    assert torch.equal(dataset.images(range(N_PER_BATCH)), expected_images(5))


def test_cifar_from_archive(tmp_path: Path, cifar_dir: Path) -> None:
    data_dir = tmp_path / "from-archive"
    data_dir.mkdir()
    make_archive(data_dir / "cifar-10-python.tar.gz", cifar_dir / "cifar-10-batches-py")
    dataset = build_dataset("cifar10:download=false", data_dir=data_dir)
    assert torch.equal(dataset.images(range(N_PER_BATCH)), expected_images(5))
    assert (data_dir / "cifar-10-batches-py" / "test_batch").is_file()
    assert sorted(p.name for p in data_dir.iterdir()) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
    ]


def test_cifar_archive_cannot_write_outside(tmp_path: Path, cifar_dir: Path) -> None:
    data_dir = tmp_path / "deep" / "data"
    data_dir.mkdir(parents=True)
    evil = {"../evil": b"x", "cifar-10-batches-py/../../evil2": b"x", "/tmp/evil3": b"x"}
    make_archive(data_dir / "cifar-10-python.tar.gz", cifar_dir / "cifar-10-batches-py", evil)
    build_dataset("cifar10", data_dir=data_dir)
    assert not (tmp_path / "deep" / "evil").exists()
    assert not (tmp_path / "evil2").exists() and not (tmp_path / "deep" / "evil2").exists()
    assert sorted(p.name for p in (data_dir / "cifar-10-batches-py").iterdir()) == sorted(
        [*BATCH_NAMES, "batches.meta"]
    )


def test_cifar_corrupt_archive(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08 not really gzip")
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*corrupt"):
        build_dataset("cifar10", data_dir=tmp_path)
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_cifar_resize(cifar_dir: Path) -> None:
    for size in (16, 64):
        dataset = build_dataset("cifar10", data_dir=cifar_dir, size=size)
        assert dataset.pixels.dtype == np.uint8
        assert dataset.images([0]).shape == (1, 3, size, size)
    # A constant image stays constant through both interpolations.
    rows = np.full((N_PER_BATCH, 3072), 90, np.uint8)
    write_batch(cifar_dir / "cifar-10-batches-py" / "test_batch", rows)
    for size in (16, 64):
        image = build_dataset("cifar10", data_dir=cifar_dir, size=size).images([0])
        assert torch.all(image == 90 / 255)


def test_cifar_truncated_batch_names_the_file(cifar_dir: Path) -> None:
    path = cifar_dir / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match=r"data_batch_3' is truncated or corrupt"):
        build_dataset("cifar10", split="train", data_dir=cifar_dir)
    build_dataset("cifar10", split="test", data_dir=cifar_dir)  # the test split is untouched


def test_cifar_missing_batch_names_the_file(cifar_dir: Path) -> None:
    (cifar_dir / "cifar-10-batches-py" / "data_batch_5").unlink()
    with pytest.raises(DataError, match=r"data_batch_5' is missing"):
        build_dataset("cifar10", split="train", data_dir=cifar_dir)


def test_cifar_missing_key_and_bad_shape(cifar_dir: Path) -> None:
    path = cifar_dir / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": batch_rows(5)}, protocol=2))
    with pytest.raises(DataError, match=r"test_batch': missing key b'labels'"):
        build_dataset("cifar10", data_dir=cifar_dir)
    write_batch(path, np.zeros((N_PER_BATCH, 1024), np.uint8))
    with pytest.raises(DataError, match=r"test_batch': expected .*3072.*got"):
        build_dataset("cifar10", data_dir=cifar_dir)
    write_batch(path, np.zeros((N_PER_BATCH, 3072), np.float32))
    with pytest.raises(DataError, match="expected uint8"):
        build_dataset("cifar10", data_dir=cifar_dir)


def test_cifar_pickle_cannot_build_other_objects(cifar_dir: Path) -> None:
    path = cifar_dir / "cifar-10-batches-py" / "test_batch"
    write_batch(path, batch_rows(5), evil=io.BytesIO(b"x"))
    with pytest.raises(DataError, match="unexpected object _io.BytesIO"):
        build_dataset("cifar10", data_dir=cifar_dir)


class Python2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python 2 ``str`` opcodes, as the real CIFAR-10 files (made with Python 2)."""

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]
    dispatch[bytes] = save_bytes


def test_cifar_reads_python2_numpy1_pickles(cifar_dir: Path) -> None:
    rows = batch_rows(5)
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump({b"data": rows, b"labels": [1, 2, 3, 4]})
    raw = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw
    (cifar_dir / "cifar-10-batches-py" / "test_batch").write_bytes(raw)
    dataset = build_dataset("cifar10", data_dir=cifar_dir)
    assert torch.equal(dataset.images(range(N_PER_BATCH)), expected_images(5))


def test_cifar_not_found_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="CIFAR-10 not found.*download=false"):
        build_dataset("cifar10:download=false", data_dir=tmp_path)


def test_cifar_offline_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(cifar_module.urllib.request, "urlopen", offline)
    data_dir = tmp_path / "new"
    with pytest.raises(DataError) as info:
        build_dataset("cifar10", data_dir=data_dir)
    message = str(info.value)
    assert message.startswith(f"cannot download {cifar_module.URL} (network error: Name or")
    assert message.endswith(f"put cifar-10-batches-py or cifar-10-python.tar.gz in {data_dir}")
    assert "\n" not in message
    assert list(data_dir.iterdir()) == []  # no temporary file left behind


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def test_cifar_download_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        cifar_module.urllib.request, "urlopen", lambda *a, **k: FakeResponse(b"an html error page")
    )
    with pytest.raises(DataError, match=f"has MD5 [0-9a-f]{{32}}, expected {cifar_module.MD5}"):
        build_dataset("cifar10", data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cifar_download_then_extract(
    tmp_path: Path, cifar_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = cifar_dir / "cifar-10-batches-py"
    archive = make_archive(tmp_path / "served.tar.gz", folder).read_bytes()
    requested = []

    def serve(url: str, timeout: float) -> FakeResponse:
        requested.append(url)
        return FakeResponse(archive)

    monkeypatch.setattr(cifar_module.urllib.request, "urlopen", serve)
    monkeypatch.setattr(cifar_module, "MD5", hashlib.md5(archive).hexdigest())
    data_dir = tmp_path / "downloads"
    dataset = build_dataset("cifar10", data_dir=data_dir)
    assert requested == [cifar_module.URL]
    assert torch.equal(dataset.images(range(N_PER_BATCH)), expected_images(5))
    assert (data_dir / "cifar-10-python.tar.gz").read_bytes() == archive
    build_dataset("cifar10", data_dir=data_dir)  # the second build finds the folder
    assert len(requested) == 1


# ---------------------------------------------------------------------------------------------
# folder


def relative_files(dataset: Dataset) -> list[str]:
    return [p.relative_to(dataset.root).as_posix() for p in dataset.files]  # type: ignore[attr-defined]


def test_folder_lists_images_recursively_sorted(image_dir: Path) -> None:
    dataset = build_dataset(f"folder:{image_dir}", size=16)
    assert relative_files(dataset) == ["a.png", "d.png", "sub/b.JPG", "sub/deeper/c.bmp"]
    assert dataset.name == f"folder:path={image_dir}"
    images = dataset.images(range(len(dataset)))
    assert images.shape == (4, 3, 16, 16)


def test_folder_same_images_for_both_splits(image_dir: Path) -> None:
    test = build_dataset(f"folder:path={image_dir},small=upscale", split="test")
    train = build_dataset(f"folder:path={image_dir},small=upscale", split="train")
    assert test.files == train.files and train.split == "train"  # type: ignore[attr-defined]
    assert test.image_size == (128, 128)


def test_folder_colour_order_and_centre_crop(tmp_path: Path) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    write_image(tmp_path / "wide.png", rgb)
    image = build_dataset(f"folder:{tmp_path}", size=32).images([0])[0]
    expected = torch.from_numpy(rgb[:, 8:40]).permute(2, 0, 1).float() / 255
    assert torch.equal(image, expected)


def test_folder_resizes_shorter_side_then_crops(tmp_path: Path) -> None:
    stripes = np.zeros((64, 128, 3), np.uint8)
    stripes[:, :32] = (255, 0, 0)
    stripes[:, 32:96] = (0, 200, 0)
    stripes[:, 96:] = (0, 0, 255)
    write_image(tmp_path / "stripes.png", stripes)
    write_image(tmp_path / "tall_small.png", np.full((24, 16, 3), 60, np.uint8))
    dataset = build_dataset(f"folder:path={tmp_path},small=upscale", size=32)
    images = dataset.images([0, 1]) * 255
    # 64×128 → 32×64, centre 32 columns lie inside the green middle stripe.
    assert torch.equal(images[0, 1], torch.full((32, 32), 200.0))
    assert images[0, 0].max() == 0 and images[0, 2].max() == 0
    assert torch.equal(images[1], torch.full((3, 32, 32), 60.0))  # upscaled 16×24 → 32×48 → crop


def test_folder_grey_rgba_and_16_bit(tmp_path: Path) -> None:
    write_image(tmp_path / "1_grey.png", np.full((20, 20), 77, np.uint8))
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[..., 3] = np.arange(20, dtype=np.uint8)[:, None] * 12
    write_image(tmp_path / "2_rgba.png", rgba)
    write_image(tmp_path / "3_deep.png", np.full((20, 20), 0x4000, np.uint16))
    images = build_dataset(f"folder:{tmp_path}", size=20).images([0, 1, 2]) * 255
    assert torch.equal(images[0], torch.full((3, 20, 20), 77.0))
    colour = torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1).expand(3, 20, 20)
    assert torch.equal(images[1], colour)
    assert torch.equal(images[2], torch.full((3, 20, 20), 64.0))


def test_folder_decodes_lazily(image_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = folder_module.cv2.imdecode

    def counting(*args: object) -> np.ndarray:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(folder_module.cv2, "imdecode", counting)
    dataset = build_dataset(f"folder:{image_dir}", size=16)
    assert calls == []
    dataset.images([2])
    assert len(calls) == 1


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n garbage", b""])
def test_folder_corrupt_file_names_it(image_dir: Path, content: bytes) -> None:
    (image_dir / "sub" / "x.png").write_bytes(content)
    dataset = build_dataset(f"folder:{image_dir}", size=16)  # listing does not decode
    index = relative_files(dataset).index("sub/x.png")
    dataset.images([0])
    with pytest.raises(DataError) as info:
        dataset.images([index])
    assert str(info.value) == (
        f"folder '{image_dir}': cannot decode image 'sub/x.png' (corrupt or unsupported)"
    )


def test_folder_empty_or_missing(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    looked_for = r"no image files \(looked recursively for \*\.png.*\*\.webp"
    with pytest.raises(DataError, match=looked_for):
        build_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="no such directory"):
        build_dataset(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(UsageError, match="folder:PATH"):
        build_dataset("folder")


def test_folder_shorthand_and_explicit_path_agree(image_dir: Path) -> None:
    short = build_dataset(f"folder:{image_dir}", size=12)
    explicit = build_dataset(f"folder:path={image_dir}", size=12)
    assert short.name == explicit.name
    assert torch.equal(short.images([0, 3]), explicit.images([0, 3]))


def test_folder_decodes_in_parallel_threads_with_serial_results(
    tmp_path: Path, monkeypatch
) -> None:
    """Files decode one per OpenCV thread; the batch, and the first bad file's error, are the
    serial decoder's."""
    rng = np.random.default_rng(5)
    for k in range(7):
        height, width = (int(v) for v in rng.integers(40, 90, 2))
        write_image(tmp_path / f"{k}.png", rng.integers(0, 256, (height, width, 3), np.uint8))
    dataset = build_dataset(f"folder:{tmp_path}", size=32)
    used: list[int] = []
    real_pool = folder_module.ThreadPoolExecutor

    def counting_pool(threads, **kwargs):
        used.append(threads)
        return real_pool(threads, **kwargs)

    monkeypatch.setattr(folder_module, "ThreadPoolExecutor", counting_pool)
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        serial = dataset.images(list(range(7)))
        assert used == []
        cv2.setNumThreads(3)
        parallel = dataset.images(list(range(7)))
        assert used == [3]
        assert torch.equal(serial, parallel)
        (tmp_path / "3.png").write_bytes(b"not a png")
        (tmp_path / "5.png").write_bytes(b"not a png either")
        with pytest.raises(DataError, match="'3.png'"):
            dataset.images(list(range(7)))
    finally:
        cv2.setNumThreads(before)
