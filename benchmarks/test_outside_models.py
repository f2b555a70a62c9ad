"""Outside models through the harness against their bare loops, in the same session.

* ``bare_onnx``: an onnxruntime session of the exported ``unet-fill`` over the masked test
  patches (NumPy arrays prepared beforehand), in batches of 64, nothing else.
* ``harness_onnx``: the same images through the harness's method path (``Evaluator.predict``:
  input copies, range mapping, padding with ``multiple=16``, output checks, back to tensors).
* ``bare_predictions``: ``cv2.imread`` of the same prediction PNGs, stacked into a float tensor.
* ``harness_predictions``: ``predictions:DIR`` reading them (file hash check, decode, channel,
  depth and size checks, per-image reasons).

Ratios harness / bare (target: at most 1.15 on CPU) are shown by the suite's summary once
``benchmarks/conftest.py`` lists ``harness_onnx``/``bare_onnx`` and
``harness_predictions``/``bare_predictions`` in ``RATIOS``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.commands.export_model import convention_model, export_bytes
from benchmark.method import METHODS
from benchmark.run.runner import Evaluator

BATCH = 64
#: Images of the ONNX case (the U-Net is about 40x slower per image than reading a PNG).
ONNX_IMAGES = 256


@pytest.fixture
def keep(remember):
    """Keep a median for the suite's ratio summary (``harness_<x>`` / ``bare_<x>``)."""
    return remember


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "unet-fill.onnx"
    path.write_bytes(export_bytes(convention_model("unet-fill"), "onnx"))
    return path


@pytest.fixture(scope="module")
def prediction_dir(tmp_path_factory, test_images):
    """The test patches written as ``DIR/lines/<index>.png`` predictions."""
    import cv2

    folder = tmp_path_factory.mktemp("pred")
    (folder / "lines").mkdir()
    images, _ = test_images
    pixels = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for index, image in enumerate(pixels):
        cv2.imwrite(str(folder / "lines" / f"{index:06d}.png"), image[..., ::-1])
    return folder


def test_bare_onnx(benchmark, test_images, onnx_file, keep):
    import onnxruntime as ort

    images, masks = test_images
    images, masks = images[:ONNX_IMAGES], masks[:ONNX_IMAGES]
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    image = images.masked_fill(masks, 0).numpy()
    mask = masks.float().numpy()

    def bare_loop():
        return [
            session.run(None, {"image": image[i : i + BATCH], "mask": mask[i : i + BATCH]})
            for i in range(0, len(image), BATCH)
        ]

    benchmark.pedantic(bare_loop, rounds=5, warmup_rounds=1)
    keep(benchmark, "bare_onnx")


def test_harness_onnx(benchmark, test_images, onnx_file, keep):
    images, masks = test_images
    images, masks = images[:ONNX_IMAGES], masks[:ONNX_IMAGES]
    method = METHODS.build(f"onnx:{onnx_file},multiple=16,batch={BATCH}")
    assert method.provider == "CPUExecutionProvider" or torch.cuda.is_available()
    evaluator = Evaluator(method, torch.device("cpu"), None, 1)
    masked = images.masked_fill(masks, 0)
    benchmark.pedantic(lambda: evaluator.predict(masked, masks), rounds=5, warmup_rounds=1)
    keep(benchmark, "harness_onnx")


def test_bare_predictions(benchmark, test_images, prediction_dir, keep):
    import cv2

    images, _ = test_images
    paths = [str(prediction_dir / "lines" / f"{i:06d}.png") for i in range(len(images))]

    def bare_loop():
        pixels = np.stack([cv2.imread(p, cv2.IMREAD_COLOR)[..., ::-1] for p in paths])
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255)

    benchmark.pedantic(bare_loop, rounds=5, warmup_rounds=1)
    keep(benchmark, "bare_predictions")


def test_harness_predictions(benchmark, test_images, prediction_dir, keep):
    images, masks = test_images
    method = METHODS.build(f"predictions:{prediction_dir}")
    masked = images.masked_fill(masks, 0)
    indices = list(range(len(images)))

    def harness():
        prediction, problems = method.inpaint_indexed(masked, masks, indices, "lines")
        assert not any(problems)
        return prediction

    result = benchmark.pedantic(harness, rounds=5, warmup_rounds=1)
    assert torch.equal(result, images)
    keep(benchmark, "harness_predictions")
