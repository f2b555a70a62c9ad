"""Outside models through the run path against their bare loops, in the same session.

The cases work on the test patches and ``lines`` masks (seed 0) of the conftest fixture; the
pipeline's prepared batches are checked equal to them.

* ``bare_onnx``: an onnxruntime session of the exported ``unet-fill`` (the provider the
  ``onnx:`` method picks) over the first 256 masked patches, NumPy arrays prepared beforehand,
  in batches of 64, nothing else.
* ``measure_onnx``: the pipeline's ``measure`` (composite, every metric) of the bare session's
  outputs: the measuring half of a pair evaluation, alone.
* ``harness_onnx``: the pipeline's pair evaluation of the same images as one prepared unit
  (``run_prepared`` with ``onnx:FILE,multiple=16,batch=64``: input copies, range mapping,
  padding, the session, output checks, measuring, one record per image).
* ``bare_predictions``: ``cv2.imread`` of 1,000 prediction PNGs, stacked into a float tensor.
* ``measure_predictions``: the pipeline's ``measure`` of what the bare loop read.
* ``harness_predictions``: the pipeline's pair evaluation of ``predictions:DIR`` over the four
  prepared units (file hash check, decode, channel, depth and size checks, per-image reasons,
  measuring, records).

The summary prints harness / bare and harness / (bare + measuring); the latter is what the
harness's own plumbing costs (target: at most 1.15 on the CPU).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.commands.export_model import convention_model, export_bytes

N_IMAGES = 1000  # the conftest fixture serves this many images
BATCH = 64  # the ONNX session's batch
UNIT = 256  # images per unit (conftest.BATCH)
#: Images of the ONNX case (the U-Net is about 40x slower per image than reading a PNG).
ONNX_IMAGES = 256


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "unet-fill.onnx"
    path.write_bytes(export_bytes(convention_model("unet-fill"), "onnx"))
    return path


@pytest.fixture(scope="module")
def prediction_dir(tmp_path_factory, test_images):
    """The test patches themselves written as ``DIR/lines/<index>.png`` predictions."""
    import cv2

    folder = tmp_path_factory.mktemp("pred")
    (folder / "lines").mkdir()
    images, _ = test_images
    pixels = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for index, image in enumerate(pixels):
        cv2.imwrite(str(folder / "lines" / f"{index:06d}.png"), image[..., ::-1])
    return folder


def _providers() -> list[str]:
    """The onnxruntime providers the ``onnx:`` method asks for, in its order."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _bare_onnx(onnx_file, test_images):
    import onnxruntime as ort

    images, masks = (t[:ONNX_IMAGES] for t in test_images)
    session = ort.InferenceSession(str(onnx_file), providers=_providers())
    image = images.masked_fill(masks, 0).numpy()
    mask = masks.float().numpy()

    def bare_loop() -> list[np.ndarray]:
        return [
            session.run(None, {"image": image[i : i + BATCH], "mask": mask[i : i + BATCH]})[0]
            for i in range(0, len(image), BATCH)
        ]

    return bare_loop, session.get_providers()[0]


def _onnx_batches(batches, onnx_file, test_images):
    plan = batches(methods=[f"onnx:{onnx_file},multiple=16,batch={BATCH}"], limit=ONNX_IMAGES)
    plan.check_inputs(*(t[:ONNX_IMAGES] for t in test_images))
    return plan


def test_bare_onnx(benchmark, test_images, onnx_file, remember):
    bare_loop, provider = _bare_onnx(onnx_file, test_images)
    outputs = benchmark.pedantic(bare_loop, rounds=5, warmup_rounds=1)
    assert sum(len(o) for o in outputs) == ONNX_IMAGES
    benchmark.extra_info["provider"] = provider
    remember(benchmark, "bare_onnx")


def test_measure_onnx(benchmark, test_images, onnx_file, batches, remember):
    plan = _onnx_batches(batches, onnx_file, test_images)
    bare_loop, _ = _bare_onnx(onnx_file, test_images)
    outputs = torch.from_numpy(np.concatenate(bare_loop())).clamp_(0, 1)
    measuring = plan.measuring(torch.device("cpu"))
    values = benchmark.pedantic(measuring, (list(outputs.split(UNIT)),), rounds=5)
    assert sum(len(v["psnr"]) for v in values) == ONNX_IMAGES
    remember(benchmark, "measure_onnx")


def test_harness_onnx(benchmark, test_images, onnx_file, batches, remember):
    plan = _onnx_batches(batches, onnx_file, test_images)
    (method,) = plan.context.methods.values()
    assert method.provider == _providers()[0]
    records = benchmark.pedantic(plan.evaluate_pairs, rounds=5, warmup_rounds=1)
    plan.check_records(records)
    benchmark.extra_info["provider"] = method.provider
    remember(benchmark, "harness_onnx")


def _read_pngs(paths: list[str]) -> torch.Tensor:
    import cv2

    pixels = np.stack([cv2.imread(p, cv2.IMREAD_COLOR)[..., ::-1] for p in paths])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255)


def _png_paths(prediction_dir, count: int) -> list[str]:
    return [str(prediction_dir / "lines" / f"{i:06d}.png") for i in range(count)]


def test_bare_predictions(benchmark, test_images, prediction_dir, remember):
    images, _ = test_images
    paths = _png_paths(prediction_dir, len(images))
    result = benchmark.pedantic(_read_pngs, (paths,), rounds=5, warmup_rounds=1)
    assert torch.equal(result, images)
    remember(benchmark, "bare_predictions")


def test_measure_predictions(benchmark, test_images, prediction_dir, batches, remember):
    plan = batches(methods=[f"predictions:{prediction_dir}"], limit=N_IMAGES)
    plan.check_inputs(*test_images)
    read = _read_pngs(_png_paths(prediction_dir, N_IMAGES))
    measuring = plan.measuring(torch.device("cpu"))
    values = benchmark.pedantic(measuring, (list(read.split(UNIT)),), rounds=5, warmup_rounds=1)
    assert sum(len(v["psnr"]) for v in values) == N_IMAGES
    remember(benchmark, "measure_predictions")


def test_harness_predictions(benchmark, test_images, prediction_dir, batches, remember):
    plan = batches(methods=[f"predictions:{prediction_dir}"], limit=N_IMAGES)
    plan.check_inputs(*test_images)
    records = benchmark.pedantic(plan.evaluate_pairs, rounds=5, warmup_rounds=1)
    plan.check_records(records)
    # the predictions are the originals: every composite is exact (PSNR at its 100 dB cap)
    assert {r["psnr"] for r in records} == {100.0}
    assert {r["hole_l1"] for r in records} == {0.0}
    remember(benchmark, "harness_predictions")
