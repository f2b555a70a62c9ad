"""U-Net inference throughput at 32x32, against the bare model in the same session.

* ``bare_unet_<device>``: the shipped ``unet`` model's forward pass over 1,000 masked test
  patches already on the device, in batches of 256 (inference mode, channels_last on the CPU,
  fp16 autocast on CUDA), nothing else.
* ``harness_unet_<device>``: the same images through the harness's method path (CPU tensors in,
  copies to the device, ``unet``'s ``inpaint``, output checks, back to the CPU).

The summary prints harness / bare and the harness's images per second. CUDA cases skip
without a GPU.
"""

from __future__ import annotations

import pytest
import torch

from benchmark.device import autocast, memory_format
from benchmark.method import METHODS
from benchmark.run.runner import Evaluator
from methods.unet import load_model, model_input

BATCH = 256
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


@pytest.mark.parametrize("device_name", DEVICES)
def test_bare_unet(benchmark, test_images, remember, device_name):
    device = torch.device(device_name)
    images, masks = test_images
    model, _ = load_model(METHODS.build("unet").weights, "unet")
    model = model.eval().to(device, memory_format=memory_format(device))
    x = model_input(images.masked_fill(masks, 0), masks, "unet").to(device)
    x = x.contiguous(memory_format=memory_format(device))

    def bare_loop():
        with torch.inference_mode(), autocast(device):
            outputs = [model(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]
        _finish(device)
        return outputs

    benchmark.pedantic(bare_loop, rounds=10, warmup_rounds=2)
    remember(benchmark, f"bare_unet_{device_name}")


@pytest.mark.parametrize("device_name", DEVICES)
def test_harness_unet(benchmark, test_images, remember, device_name):
    device = torch.device(device_name)
    images, masks = test_images
    masked = images.masked_fill(masks, 0.0)
    evaluator = Evaluator(METHODS.build("unet"), device, None, 1)

    def harness():
        return [
            evaluator.predict(masked[i : i + BATCH], masks[i : i + BATCH])
            for i in range(0, len(masked), BATCH)
        ]

    predictions = benchmark.pedantic(harness, rounds=10, warmup_rounds=2)
    assert sum(len(p) for p in predictions) == len(images)
    remember(benchmark, f"harness_unet_{device_name}")
