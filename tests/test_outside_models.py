"""``predictions:``, ``onnx:`` and ``torchscript:`` methods called directly: I/O convention,
agreement of the exported U-Net with the native one, and every bad-input path."""

from __future__ import annotations

import io
import pickle
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.commands.export_model import convention_model, export_bytes
from benchmark.datasets import build_dataset
from benchmark.errors import ContractError, DataError, UsageError
from benchmark.masking import build_mask
from benchmark.method import METHODS
from benchmark.names import slugify
from benchmark.run.pipeline import measure

# -- small models of the tests' own -----------------------------------------------------------


class AbsHoles(nn.Module):
    """``|image|`` at known pixels, 0 in the holes: shows which scale the model was fed."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image.abs() * (1 - mask)


class BlockMean(nn.Module):
    """Holes take the mean of their 8x8 block: works only on sides that are multiples of 8."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        blocks = F.interpolate(F.avg_pool2d(image, 8), scale_factor=8.0, mode="nearest")
        return image * (1 - mask) + blocks * mask


class OneInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :3]


def write_onnx(module: nn.Module, path: Path, names=("image", "mask")) -> Path:
    example = (torch.rand(1, 3, 16, 16), (torch.rand(1, 1, 16, 16) > 0.5).float())
    example = example[: len(names)] if len(names) == 1 else example
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        module,
        example,
        str(path),
        input_names=list(names),
        output_names=["output"],
        dynamic_axes={n: axes for n in (*names, "output")},
        opset_version=17,
        dynamo=False,
    )
    return path


def write_torchscript(module: nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def batch_of(count: int, height: int, width: int, spec: str = "lines"):
    generator = torch.Generator().manual_seed(1)
    images = (torch.rand(count, 3, height, width, generator=generator) * 255).round() / 255
    masks = build_mask(spec).batch(range(count), height, width, seed=0)
    return images, images.masked_fill(masks, 0), masks


# -- onnx: and torchscript: -------------------------------------------------------------------


@pytest.fixture(params=["onnx", "torchscript"])
def kind(request) -> str:
    return request.param


def write_model(kind: str, module: nn.Module, path: Path) -> Path:
    return (write_onnx if kind == "onnx" else write_torchscript)(module, path)


def test_range_minus_one_to_one_maps_inputs_and_outputs(kind: str, tmp_path: Path) -> None:
    path = write_model(kind, AbsHoles(), tmp_path / "abs.model")
    _, masked, mask = batch_of(3, 24, 20)
    method = METHODS.build(f"{kind}:{path},range=-1-1,batch=2")
    out = method.inpaint(masked, mask)
    known = ~mask.expand_as(masked)
    expected = ((masked * 2 - 1).abs() + 1) / 2  # the model saw 2x - 1, its output came back
    assert torch.allclose(out[known], expected[known], atol=1e-6)
    assert torch.all(out[~known] == 0.5)  # holes are 0 on the model's own scale
    plain = METHODS.build(f"{kind}:{path}").inpaint(masked, mask)
    assert torch.allclose(plain[known], masked[known]) and torch.all(plain[~known] == 0)


def test_range_0_255(kind: str, tmp_path: Path) -> None:
    path = write_model(kind, AbsHoles(), tmp_path / "abs.model")
    _, masked, mask = batch_of(2, 16, 16)
    out = METHODS.build(f"{kind}:{path},range=0-255").inpaint(masked, mask)
    assert torch.allclose(out, masked, atol=1e-6)


def test_multiple_pads_and_crops(kind: str, tmp_path: Path) -> None:
    path = write_model(kind, BlockMean(), tmp_path / "block.model")
    _, masked, mask = batch_of(3, 20, 28)
    out = METHODS.build(f"{kind}:{path},multiple=8").inpaint(masked, mask)
    padded = F.pad(masked, (2, 2, 2, 2), mode="replicate")  # 20x28 -> 24x32, centred
    padded_mask = F.pad(mask.float(), (2, 2, 2, 2), mode="replicate")
    reference = BlockMean()(padded * (1 - padded_mask), padded_mask)[..., 2:22, 2:30]
    assert out.shape == masked.shape
    assert torch.allclose(out, reference, atol=1e-6)
    with pytest.raises(Exception, match="(?i)shape|size|dimension"):  # without padding
        METHODS.build(f"{kind}:{path}").inpaint(masked, mask)


def test_output_far_outside_its_range_says_which_range(kind: str, tmp_path: Path) -> None:
    path = write_model(kind, AbsHoles(), tmp_path / "abs.model")
    _, masked, mask = batch_of(2, 16, 16)
    scaled = masked * 200  # a 0-255 model declared as 0-1 gives values far above 1
    with pytest.raises(ContractError, match="range="):
        METHODS.build(f"{kind}:{path}").inpaint(scaled, mask)


@pytest.fixture(scope="module")
def exported_unet_fill(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("unet")
    model = convention_model("unet-fill")
    files = {"onnx": folder / "unet-fill.onnx", "torchscript": folder / "unet-fill.pt"}
    for fmt, path in files.items():
        path.write_bytes(export_bytes(model, fmt))
    return files


@pytest.mark.slow
def test_exported_unet_fill_scores_like_the_native_method(
    kind: str, exported_unet_fill, single_torch_thread
) -> None:
    dataset = build_dataset("skimage-patches", "test", None, None)
    indices = list(range(48))
    images = dataset.images(indices)
    masks = build_mask("lines").batch(indices, 32, 32, seed=0)
    masked = images.masked_fill(masks, 0)
    native = METHODS.build("unet-fill").inpaint(masked, masks)
    outside = METHODS.build(f"{kind}:{exported_unet_fill[kind]},batch=16")
    prediction = outside.inpaint(masked, masks)
    score_native = np.array(measure(images, native, masks)[0]["psnr"])
    score_outside = np.array(measure(images, prediction, masks)[0]["psnr"])
    assert np.abs(score_outside - score_native).max() < 0.01
    assert (prediction - native).abs().max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(("height", "width"), [(40, 48), (17, 70)])
def test_exported_unet_fill_matches_native_at_other_sizes(
    kind: str, exported_unet_fill, single_torch_thread, height: int, width: int
) -> None:
    images, masked, mask = batch_of(3, height, width, "square")
    method = METHODS.build(f"{kind}:{exported_unet_fill[kind]}")
    out = method.inpaint(masked.clone(), mask.clone())
    assert out.shape == masked.shape and out.dtype == torch.float32
    assert torch.equal(out, method.inpaint(masked, mask))
    native = METHODS.build("unet-fill").inpaint(masked, mask)
    assert (out - native).abs().max() < 1e-4


def test_fingerprint_is_the_file_hash(kind: str, tmp_path: Path) -> None:
    path = write_model(kind, AbsHoles(), tmp_path / "m.model")
    before = METHODS.build(f"{kind}:{path}").fingerprint()
    write_model(kind, BlockMean(), path)
    assert METHODS.build(f"{kind}:{path}").fingerprint() != before


def test_missing_model_file(kind: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        METHODS.build(f"{kind}:{tmp_path / 'nope.model'}")


@pytest.mark.parametrize("option", ["multiple=0", "batch=-1", "range=0-2", "inputs=a"])
def test_bad_options_are_usage_errors(kind: str, tmp_path: Path, option: str) -> None:
    path = write_model(kind, AbsHoles(), tmp_path / "m.model")
    with pytest.raises(UsageError):
        METHODS.build(f"{kind}:{path},{option}")


def test_corrupt_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage that is no protobuf" * 10)
    with pytest.raises(DataError, match="cannot be loaded"):
        METHODS.build(f"onnx:{path}")


def test_onnx_with_one_input_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write_onnx(OneInput(), tmp_path / "one.onnx", names=("x",))
    with pytest.raises(UsageError) as error:
        METHODS.build(f"onnx:{path}")
    message = str(error.value)
    assert (
        "\n" not in message
        and "expected inputs image" in message
        and "declares inputs x" in message
    )


def test_input_names(kind: str, tmp_path: Path) -> None:
    class Named(nn.Module):
        def forward(self, img: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
            return img.abs() * (1 - hole) + hole * 0.25

    if kind == "onnx":
        path = write_onnx(Named(), tmp_path / "named.onnx", names=("img", "hole"))
        with pytest.raises(UsageError, match="declares inputs img"):
            METHODS.build(f"onnx:{path}")
    else:
        path = write_torchscript(Named(), tmp_path / "named.pt")
    _, masked, mask = batch_of(2, 16, 16)
    out = METHODS.build(f"{kind}:{path},inputs=img+hole").inpaint(masked, mask)
    known = ~mask.expand_as(masked)
    assert torch.allclose(out[known], masked[known]) and torch.all(out[~known] == 0.25)


def test_onnx_with_fixed_batch_and_size(tmp_path: Path) -> None:
    path = tmp_path / "fixed.onnx"
    example = (torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16))
    torch.onnx.export(
        AbsHoles(), example, str(path), input_names=["image", "mask"], dynamo=False
    )  # no dynamic axes: batch 2, 16x16 only
    method = METHODS.build(f"onnx:{path},batch=64")
    _, masked, mask = batch_of(5, 16, 16)  # chunks of 2, 2 and 1 (filled up to 2)
    out = method.inpaint(masked, mask)
    assert torch.allclose(out, masked)
    _, masked, mask = batch_of(2, 24, 24)
    with pytest.raises(ContractError, match="takes 16x16 images only, got 24x24"):
        method.inpaint(masked, mask)


def test_onnx_without_onnxruntime_says_how_to_install(monkeypatch, tmp_path: Path) -> None:
    path = write_onnx(AbsHoles(), tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(UsageError, match=r'pip install "inpaint-bench\[onnx\]"'):
        METHODS.build(f"onnx:{path}")


class MakesMarker:
    """Unpickling this creates ``marker``: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save", "fake-torchscript-zip"])
def test_torchscript_refuses_pickles_without_unpickling(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.pt"
    payload = MakesMarker(marker)
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload))
    elif writer == "torch.save":
        torch.save(payload, path)
    else:  # the archive layout of TorchScript, with a malicious data.pkl
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model/data.pkl", pickle.dumps(payload))
            archive.writestr("model/constants.pkl", pickle.dumps(()))
            archive.writestr("model/code/__torch__.py", "")
            archive.writestr("model/version", "3\n")
    with pytest.raises(DataError, match="TorchScript|cannot be loaded"):
        METHODS.build(f"torchscript:{path}")
    assert not marker.exists()


def test_torchscript_with_other_forward_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.pt"
    torch.jit.save(torch.jit.script(OneInput()), str(path))
    with pytest.raises(UsageError, match=r"declares forward\(x\)"):
        METHODS.build(f"torchscript:{path}")


# -- predictions: -----------------------------------------------------------------------------


def write_predictions(root: Path, folder: str, images: torch.Tensor, layout: str = "native"):
    (root / folder).mkdir(parents=True, exist_ok=True)
    pixels = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for index, image in enumerate(pixels):
        name = f"{index:06d}_mask000.png" if layout == "lama" else f"{index:06d}.png"
        cv2.imwrite(str(root / folder / name), image[..., ::-1])


@pytest.mark.parametrize("layout", ["native", "lama"])
def test_predictions_read_the_files_of_their_mask_and_index(tmp_path: Path, layout: str) -> None:
    images, masked, mask = batch_of(4, 16, 24)
    write_predictions(tmp_path, slugify("square:max_size=0.25"), images, layout)
    method = METHODS.build(f"predictions:{tmp_path},layout={layout}")
    prediction, problems = method.inpaint_indexed(
        masked[[2, 0]], mask[[2, 0]], [2, 0], "square:max_size=0.25"
    )
    assert problems == [None, None]
    assert torch.equal(prediction, images[[2, 0]])
    prediction, problems = method.inpaint_indexed(masked[:1], mask[:1], [0], "lines")
    assert "missing prediction folder" in problems[0] and prediction.isnan().all()
    with pytest.raises(ContractError, match="inpaint_indexed"):
        method.inpaint(masked, mask)


def test_predictions_missing_folder_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        METHODS.build(f"predictions:{tmp_path / 'nope'}")
    with pytest.raises(UsageError, match="layout"):
        METHODS.build(f"predictions:{tmp_path},layout=mat")
    with pytest.raises(UsageError, match="prediction folder"):
        METHODS.build("predictions")


def test_predictions_fingerprint_follows_the_files(tmp_path: Path) -> None:
    images, masked, mask = batch_of(2, 16, 16)
    write_predictions(tmp_path, "lines", images)
    first = METHODS.build(f"predictions:{tmp_path}")
    write_predictions(tmp_path, "lines", images.flip(0))
    second = METHODS.build(f"predictions:{tmp_path}")
    assert first.fingerprint() != second.fingerprint()
    assert METHODS.build(f"predictions:{tmp_path},name=x").fingerprint() == second.fingerprint()
    # a file replaced after the method was built fails instead of mixing old and new
    _, problems = first.inpaint_indexed(masked, mask, [0, 1], "lines")
    assert all("changed after the run started" in p for p in problems)
    (tmp_path / "lines" / "000002.png").write_bytes(io.BytesIO(b"x").getvalue())
    _, problems = second.inpaint_indexed(masked[:1], mask[:1], [2], "lines")
    assert "appeared after the run started" in problems[0]


def test_predictions_16_bit_png_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lines").mkdir()
    cv2.imwrite(str(tmp_path / "lines" / "000000.png"), np.zeros((16, 16, 3), np.uint16))
    _, masked, mask = batch_of(1, 16, 16)
    method = METHODS.build(f"predictions:{tmp_path}")
    _, problems = method.inpaint_indexed(masked, mask, [0], "lines")
    assert "expected 8-bit" in problems[0]
