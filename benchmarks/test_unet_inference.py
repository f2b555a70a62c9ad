"""U-Net inference at 32x32 through the run path, against the bare model in the same session.

All cases work on the same 1,000 test patches and ``lines`` masks (seed 0), checked equal.

* ``bare_unet_<device>``: the shipped ``unet`` model's forward pass over the masked patches
  already on the device, in batches of 256 (inference mode, channels_last on the CPU, fp16
  autocast on CUDA), nothing else.
* ``measure_unet_<device>``: the pipeline's ``measure`` (composite, every metric) of the bare
  model's outputs on the device: the measuring half of a pair evaluation, alone.
* ``harness_unet_<device>``: the pipeline's pair evaluation of the four prepared units of a
  run with ``--device <device>`` (``run_prepared``: CPU batches copied to the device, fresh
  input copies, ``unet``'s ``inpaint`` under the per-batch time limit, output checks, measuring
  on the device, one record per image).

The summary prints harness / bare, harness / (bare + measuring) and the harness's images per
second. CUDA cases skip without a GPU.
"""

from __future__ import annotations

import pytest
import torch

from benchmark.device import autocast, memory_format
from benchmark.method import METHODS
from methods.unet import load_model, model_input

N_IMAGES = 1000  # the conftest fixture serves this many images
BATCH = 256  # images per unit (conftest.BATCH)
#: (rounds, warm-up rounds) per device: a CPU round is about 10 s on 2 cores
ROUNDS = {"cpu": (5, 1), "cuda": (10, 2)}
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
]


def _finish(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bare(device: torch.device, test_images):
    """The bare loop over the masked patches on ``device`` (model and inputs built here)."""
    images, masks = test_images
    model, _ = load_model(METHODS.build("unet").weights, "unet")
    model = model.eval().to(device, memory_format=memory_format(device))
    x = model_input(images.masked_fill(masks, 0), masks, "unet").to(device)
    x = x.contiguous(memory_format=memory_format(device))

    def bare_loop() -> list[torch.Tensor]:
        with torch.inference_mode(), autocast(device):
            outputs = [model(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]
        _finish(device)
        return outputs

    return bare_loop


@pytest.mark.parametrize("device_name", DEVICES)
def test_bare_unet(benchmark, test_images, remember, device_name):
    rounds, warmup = ROUNDS[device_name]
    bare_loop = _bare(torch.device(device_name), test_images)
    outputs = benchmark.pedantic(bare_loop, rounds=rounds, warmup_rounds=warmup)
    assert sum(len(o) for o in outputs) == N_IMAGES
    remember(benchmark, f"bare_unet_{device_name}")


@pytest.mark.parametrize("device_name", DEVICES)
def test_measure_unet(benchmark, test_images, batches, remember, device_name):
    device = torch.device(device_name)
    plan = batches(methods=["unet"], limit=N_IMAGES, device=device_name)
    plan.check_inputs(*test_images)
    outputs = _bare(device, test_images)()
    measuring = plan.measuring(device)

    def measure_all():
        values = measuring(outputs)
        _finish(device)
        return values

    values = benchmark.pedantic(measure_all, rounds=10, warmup_rounds=1)
    assert sum(len(v["psnr"]) for v in values) == N_IMAGES
    remember(benchmark, f"measure_unet_{device_name}")


@pytest.mark.parametrize("device_name", DEVICES)
def test_harness_unet(benchmark, test_images, batches, remember, device_name):
    plan = batches(methods=["unet"], limit=N_IMAGES, device=device_name)
    plan.check_inputs(*test_images)
    assert plan.context.method_device("unet").type == device_name

    def harness():
        records = plan.evaluate_pairs()
        _finish(torch.device(device_name))
        return records

    rounds, warmup = ROUNDS[device_name]
    records = benchmark.pedantic(harness, rounds=rounds, warmup_rounds=warmup)
    plan.check_records(records)
    remember(benchmark, f"harness_unet_{device_name}")
