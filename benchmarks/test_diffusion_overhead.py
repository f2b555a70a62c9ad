"""Diffusion methods: the harness's cost per image against a bare loop over the same pipeline.

Tiny random pipelines are built here, offline (a RePaint DDPM and a Stable-Diffusion-style
inpainting pipeline), at the size of the case. Every case works on the same test patches with
``square`` masks (seed 0):

* ``bare_<kind>_<device>``: the diffusers pipeline called on each image in a loop, as a user
  would (one image per call, a seeded CPU generator, NumPy output), nothing else.
* ``path_<kind>_<device>``: the harness's method path on the same images (fresh input copies
  as the pipeline makes them, the method with its per-image seed rule, resizing or padding, the
  output check).
* ``run_<kind>_<device>``: a whole ``run_benchmark`` of ``<kind>:path=DIR`` on them (data,
  masks, loading the pipeline, the method, metrics, records and leaderboard files).

The three run in turn in every round (order reversed every other round), so they share the
load of a busy machine; the benchmark's own figure is the time of a whole round. The summary
prints bare / path and bare / run, medians over the rounds: the share of the bare loop's speed
the harness keeps (1.0 = no overhead), and the run's fixed cost (loading the pipeline, planning,
files) as run - path. CUDA cases (256x256) skip without a GPU.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
import torch

from benchmark.checks import check_prediction
from benchmark.datasets import build_dataset
from benchmark.masking import build_mask
from benchmark.method import METHODS
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark

N_IMAGES = 16
KINDS = ["repaint", "diffusers"]
PARAMS = {"repaint": "steps=6,jump_length=2,jump_n_sample=2", "diffusers": "steps=3"}
CASES = [
    ("cpu", 32),
    pytest.param(
        "cuda",
        256,
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
]
ROUNDS = 5


def tokenizer():
    """A CLIP tokenizer over the 256 byte characters (and their end-of-word forms), no merges."""
    from transformers import CLIPTokenizer

    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = [chr(c) for c in printable]
    chars += [chr(256 + k) for k in range(256 - len(printable))]
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    vocab = {t: i for i, t in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_pipelines(root: Path, size: int) -> dict[str, Path]:
    """Save a tiny RePaint DDPM (``sample_size`` = ``size``) and a tiny SD inpainting pipeline."""
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        RePaintPipeline,
        RePaintScheduler,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
        UNet2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    words = tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        blocks = dict(block_out_channels=(16, 32), norm_num_groups=8, layers_per_block=1)
        repaint = RePaintPipeline(
            unet=UNet2DModel(
                sample_size=size,
                down_block_types=("DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D"),
                **blocks,
            ),
            scheduler=RePaintScheduler(),
        )
        vae = AutoencoderKL(
            block_out_channels=[8, 8, 16, 16],
            norm_num_groups=8,
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            layers_per_block=1,
        )
        unet = UNet2DConditionModel(
            **blocks,
            sample_size=size // 8,
            in_channels=9,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=16,
            attention_head_dim=4,
        )
        text = CLIPTextModel(
            CLIPTextConfig(
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
                hidden_size=16,
                intermediate_size=16,
                num_attention_heads=2,
                num_hidden_layers=1,
                vocab_size=len(words),
                max_position_embeddings=77,
            )
        )
        sd = StableDiffusionInpaintPipeline(
            unet=unet,
            vae=vae,
            text_encoder=text,
            tokenizer=words,
            scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    folders = {"repaint": root / "repaint", "diffusers": root / "sd"}
    repaint.save_pretrained(folders["repaint"])
    sd.save_pretrained(folders["diffusers"])
    return folders


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    """Folders of the tiny pipelines, by image side."""
    cache: dict[int, dict[str, Path]] = {}

    def get(size: int) -> dict[str, Path]:
        if size not in cache:
            cache[size] = build_pipelines(tmp_path_factory.mktemp(f"pipelines{size}"), size)
        return cache[size]

    return get


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread for every case (tiny tensors; a fair, steadier comparison)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def inputs(size: int):
    dataset = build_dataset("skimage-patches", "test", size, None)
    indices = list(range(N_IMAGES))
    images = dataset.images(indices)
    masks = build_mask("square").batch(indices, size, size, seed=0)
    return images.masked_fill(masks, 0.0), masks


def bare_loop(kind: str, folder: Path, device: torch.device, masked, masks):
    """The pipeline loaded once, called on each image as a user would."""
    from diffusers import AutoPipelineForInpainting, RePaintPipeline

    if kind == "repaint":
        pipe = RePaintPipeline.from_pretrained(folder, local_files_only=True).to(device)

        def call(image, hole, generator):
            return pipe(
                image=image * 2 - 1,
                mask_image=(~hole).float(),
                num_inference_steps=6,
                jump_length=2,
                jump_n_sample=2,
                generator=generator,
                output_type="np",
            ).images
    else:
        pipe = AutoPipelineForInpainting.from_pretrained(folder, local_files_only=True).to(device)

        def call(image, hole, generator):
            return pipe(
                prompt="",
                image=image,
                mask_image=hole.float(),
                height=image.shape[-2],
                width=image.shape[-1],
                num_inference_steps=3,
                generator=generator,
                output_type="np",
            ).images

    pipe.set_progress_bar_config(disable=True)
    masked, masks = masked.to(device), masks.to(device)

    def loop():
        return [
            call(masked[i : i + 1], masks[i : i + 1], torch.Generator().manual_seed(i))
            for i in range(len(masked))
        ]

    return loop


def method_path(kind: str, folder: Path, device: torch.device, masked, masks):
    """The method as the pipeline calls it: fresh input copies, ``inpaint``, the output check."""
    method = METHODS.build(f"{kind}:path={folder},{PARAMS[kind]}")
    method.to(device)
    masked, masks = masked.to(device), masks.to(device)

    def path():
        return check_prediction(method.inpaint(masked.clone(), masks.clone()), masked)

    return path


def whole_run(kind: str, folder: Path, device: str, size: int, out: Path):
    """``run_benchmark`` of the method on the same images, into a fresh folder each time."""
    runs = iter(range(1000))

    def run():
        config = RunConfig(
            methods=[f"{kind}:path={folder},{PARAMS[kind]}"],
            masks=["square"],
            limit=N_IMAGES,
            size=size,
            workers=1,
            device=device,
            out=str(out / f"run{next(runs)}"),
            progress=False,
        )
        result = run_benchmark(config)
        assert result.computed == N_IMAGES and result.failed == 0
        records = [json.loads(line) for line in (result.run_dir / "records.jsonl").open()]
        assert all(r["status"] == "ok" for r in records)
        return result

    return run


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("device, size", CASES)
def test_harness_against_bare_loop(benchmark, pipelines, figure, tmp_path, kind, device, size):
    masked, masks = inputs(size)
    folder, where = pipelines(size)[kind], torch.device(device)
    phases = {
        "bare": bare_loop(kind, folder, where, masked, masks),
        "path": method_path(kind, folder, where, masked, masks),
        "run": whole_run(kind, folder, device, size, tmp_path),
    }
    times: dict[str, list[float]] = {name: [] for name in phases}
    rounds = iter(range(1000))

    def one_round() -> None:
        order = list(phases) if next(rounds) % 2 else list(phases)[::-1]
        for name in order:
            start = time.perf_counter()
            phases[name]()
            if where.type == "cuda":
                torch.cuda.synchronize(where)
            times[name].append(time.perf_counter() - start)

    benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=1)
    median = {name: statistics.median(values[1:]) for name, values in times.items()}
    case = f"{kind} on {device} at {size}x{size}"
    figure(f"{case}: bare loop / harness method path", median["bare"] / median["path"])
    figure(f"{case}: bare loop / whole run", median["bare"] / median["run"])
    figure(f"{case}: whole run's fixed cost, s (run - path)", median["run"] - median["path"])
    figure(f"{case}: bare loop, ms per image", 1000 * median["bare"] / N_IMAGES)
