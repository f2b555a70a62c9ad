"""The seed's U-Net: architecture, shapes, learning, weights files and the registered method."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from benchmark.errors import DataError
from benchmark.method import composite
from benchmark.weights import load_tensors, save_tensors
from methods.unet import (
    EPS,
    WEIGHTS_DIR,
    UNet,
    UNetFillMethod,
    UNetMethod,
    build_model,
    conv_layers,
    load_model,
    push_pull_fill,
    save_model,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

#: Parameter count of the seed-faithful U-Net (3 input channels); "about 7.8 M" in the issue.
UNET_PARAMETERS = 7_760_931


def _batch(n: int = 4, size: tuple[int, int] = (32, 32), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, *size, generator=generator)
    mask = torch.zeros(n, 1, *size, dtype=torch.bool)
    mask[..., size[0] // 4 : size[0] // 2, size[1] // 4 : size[1] // 2] = True
    return images, mask


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "unet.safetensors"
    save_model(build_model("unet"), path, "unet", {"dataset": "test", "epochs": 0})
    return path


def test_parameter_count_and_layers() -> None:
    model = UNet()
    assert sum(p.numel() for p in model.parameters()) == UNET_PARAMETERS
    assert conv_layers(model) == 19
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in model.modules()) == 4
    # the fill variant only widens the first convolution: 32 filters x 3 x 3 more weights
    assert sum(p.numel() for p in UNet(refine=True).parameters()) == UNET_PARAMETERS + 32 * 9


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (30, 45), (16, 16), (7, 20)])
def test_output_shape_and_range(size: tuple[int, int]) -> None:
    model = UNet().eval()
    with torch.inference_mode():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size)
    assert out.dtype == torch.float32
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_one_step_lowers_loss() -> None:
    torch.manual_seed(0)
    model = UNet()
    images, mask = _batch(4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        return nn.functional.mse_loss(model(images.masked_fill(mask, 0)), images)

    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert float(after) < float(before.detach())


def test_save_load_round_trip_is_bit_identical(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_model("unet")
    full = tmp_path / "full.safetensors"
    save_model(model, full, "unet", {"seed": 1}, dtype=torch.float32)
    loaded, meta = load_model(full, "unet")
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert meta["seed"] == 1 and meta["architecture"] == "unet"

    half = tmp_path / "half.safetensors"
    save_model(model, half, "unet", {"seed": 1})
    tensors, _, _ = load_tensors(half)
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    again = tmp_path / "again.safetensors"
    save_model(load_model(half)[0], again, "unet", {"seed": 1})
    assert half.read_bytes() == again.read_bytes()


def test_metadata_and_atomic_write(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "w.safetensors"
    save_tensors(path, {"x": torch.arange(3.0)}, {"metrics": {"psnr": 30.5}, "masks": ["a"]})
    tensors, meta, digest = load_tensors(path)
    assert meta["metrics"] == {"psnr": 30.5} and meta["masks"] == ["a"]
    assert meta["version"] and meta["format"] == "inpaint-bench/1" and len(digest) == 64
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]  # no temporary left


def _expect_data_error(path: Path, words: str, architecture: str | None = "unet") -> None:
    with pytest.raises(DataError) as info:
        load_model(path, architecture)
    message = str(info.value)
    assert str(path) in message and words in message and "\n" not in message


def test_bad_weights_files_fail_clearly(tmp_path: Path, weights_file: Path) -> None:
    good = weights_file.read_bytes()
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x8f\x13 not a weights file at all" * 10)
    _expect_data_error(garbage, "not a safetensors file")

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    _expect_data_error(truncated, "truncated")

    flipped = tmp_path / "flipped.safetensors"
    data = bytearray(good)
    data[-100] ^= 0xFF
    flipped.write_bytes(bytes(data))
    _expect_data_error(flipped, "checksum")

    _expect_data_error(tmp_path / "missing.safetensors", "not found")

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    _expect_data_error(foreign, "not an inpaint-bench file")


def test_mismatched_weights_fail_clearly(tmp_path: Path, weights_file: Path) -> None:
    other = tmp_path / "mask.safetensors"
    save_model(build_model("unet-fill"), other, "unet-fill", {})
    _expect_data_error(other, "holds architecture 'unet-fill', expected 'unet'")

    tensors, meta, _ = load_tensors(weights_file)
    wrong_shape = tmp_path / "shape.safetensors"
    tensors["head.weight"] = torch.zeros(3, 16, 3, 3)
    save_tensors(wrong_shape, tensors, meta)
    _expect_data_error(wrong_shape, "'head.weight' has shape (3, 16, 3, 3)")

    missing = tmp_path / "missing-tensor.safetensors"
    del tensors["head.weight"]
    save_tensors(missing, tensors, meta)
    _expect_data_error(missing, "1 missing (e.g. 'head.weight')")

    unknown = tmp_path / "unknown.safetensors"
    save_tensors(unknown, {"w": torch.zeros(1)}, {"architecture": "resnet"})
    _expect_data_error(unknown, "unknown architecture 'resnet'", None)


def test_method_predicts_full_images_and_composite_keeps_known_pixels(
    weights_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    method = UNetMethod(weights=str(weights_file))
    assert method.device == "auto" and method.fingerprint().startswith("sha256:")
    images, mask = _batch(5, (30, 45))
    masked = images.masked_fill(mask, 0)
    prediction = method.inpaint(masked, mask)
    assert prediction.shape == images.shape and prediction.dtype == torch.float32
    assert 0 <= float(prediction.min()) and float(prediction.max()) <= 1
    hole = mask.expand_as(images)
    assert float(prediction[hole].mean()) > 0.02  # the holes are filled, not left black
    # the prediction depends only on the known pixels: garbage in the holes changes nothing
    garbage = masked.masked_fill(mask, 0.0) + hole * torch.rand_like(masked)
    torch.testing.assert_close(method.inpaint(garbage.clamp(0, 1), mask), prediction)
    result = composite(images, prediction, mask)
    assert torch.equal(result[~hole], images[~hole])

    monkeypatch.setattr("methods.unet.INFERENCE_CHUNK", 2)  # chunking changes nothing
    torch.testing.assert_close(method.inpaint(masked, mask), prediction)


def test_fingerprint_follows_the_weights(tmp_path: Path, weights_file: Path) -> None:
    other = tmp_path / "other.safetensors"
    torch.manual_seed(5)
    save_model(build_model("unet"), other, "unet", {})
    a, b = UNetMethod(str(weights_file)), UNetMethod(str(other))
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == UNetMethod(str(weights_file)).fingerprint()


def test_push_pull_fill_keeps_known_pixels_and_fills_holes() -> None:
    images, mask = _batch(3, (30, 45))
    known = (~mask).float()
    filled = push_pull_fill(images.masked_fill(mask, 0), known)
    assert torch.equal(filled[~mask.expand_as(images)], images[~mask.expand_as(images)])
    flat = torch.full((1, 3, 9, 7), 0.25)
    hole = torch.zeros(1, 1, 9, 7, dtype=torch.bool)
    hole[..., 2:6, 1:5] = True
    torch.testing.assert_close(push_pull_fill(flat.masked_fill(hole, 0), (~hole).float()), flat)


def test_fill_variant_starts_at_the_fill_and_sees_the_mask(tmp_path: Path) -> None:
    path = tmp_path / "unet-fill.safetensors"
    torch.manual_seed(2)
    model = build_model("unet-fill")
    images, mask = _batch(2)
    masked = images.masked_fill(mask, 0)
    fill = push_pull_fill(masked, (~mask).float())
    with torch.no_grad():  # zero-initialised last layer: the untrained model returns the fill
        start = model(torch.cat([masked, mask.float()], 1))
    expected = torch.where(mask, fill.clamp(EPS, 1 - EPS), masked)
    torch.testing.assert_close(start, expected, atol=1e-6, rtol=0)
    torch.nn.init.normal_(model.head.weight, std=0.01)
    save_model(model, path, "unet-fill", {})
    method = UNetFillMethod(str(path))
    out = method.inpaint(masked, mask)
    assert torch.equal(out[~mask.expand_as(out)], masked[~mask.expand_as(out)])
    shifted = torch.roll(mask, 3, dims=-1)
    assert not torch.equal(out, method.inpaint(masked, shifted))
    with pytest.raises(DataError, match="holds architecture 'unet-fill', expected 'unet'"):
        UNetMethod(str(path))


@cuda
def test_cuda_inference_matches_cpu(weights_file: Path) -> None:
    method = UNetMethod(str(weights_file))
    images, mask = _batch(8)
    masked = images.masked_fill(mask, 0)
    on_cpu = method.inpaint(masked, mask)
    on_gpu = method.to(torch.device("cuda")).inpaint(masked.cuda(), mask.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=5e-3, rtol=0)


def _score(method, images: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    from benchmark.run.pipeline import measure

    values, _ = measure(images, method.inpaint(images.masked_fill(mask, 0), mask), mask)
    return {name: sum(values[name]) / len(values[name]) for name in ("psnr", "ssim", "hole_l1")}


@pytest.mark.parametrize("name", ["unet", "unet-fill"])
def test_shipped_weights_load_and_beat_mean(name: str) -> None:
    """On 150 test patches: better than the ``mean`` floor in SSIM and hole L1 on both masks.

    PSNR too, except the seed ``unet`` on squares, where it is below ``mean`` (35.1 vs 35.6 dB
    on the full test split: it must guess where the zero-valued hole is).
    """
    from benchmark.datasets import build_dataset
    from benchmark.masking import build_mask
    from benchmark.method import METHODS

    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.exists():
        pytest.skip(f"no shipped weights {path.name}")
    assert path.stat().st_size < 20 * 2**20
    method = (UNetFillMethod if name == "unet-fill" else UNetMethod)()
    assert method.metadata["architecture"] == name and method.metadata["epochs"] >= 1
    mean = METHODS.build("mean")
    dataset = build_dataset("skimage-patches", "test")
    indices = list(range(0, len(dataset), len(dataset) // 150))[:150]
    images = dataset.images(indices)
    for masks in ("lines", "square"):
        mask = build_mask(masks).batch(indices, *images.shape[-2:], seed=0)
        ours, floor = _score(method, images, mask), _score(mean, images, mask)
        assert ours["ssim"] > floor["ssim"] and ours["hole_l1"] < floor["hole_l1"], (masks, ours)
        if name == "unet-fill" or masks == "lines":
            assert ours["psnr"] > floor["psnr"] + 1.0, (masks, ours, floor)
