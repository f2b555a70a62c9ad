"""``repaint:`` and ``diffusers:`` on tiny random pipelines built offline: end-to-end runs,
records independent of batch size and workers, mask polarity, the per-image seed rule against
direct calls of the diffusers pipelines, resizing and padding, and every loading error."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

if not os.environ.get("CI"):  # CI installs the [diffusion] extra: there a missing one fails
    pytest.importorskip("diffusers", reason="needs the [diffusion] extra")

from benchmark.cli import main
from benchmark.errors import UsageError
from benchmark.masking import build_mask
from benchmark.method import METHODS
from benchmark.records import RecordStore

#: RePaint: 6 steps with one resampling at each of 2 jump points: 10 network evaluations.
REPAINT = "steps=6,jump_length=2,jump_n_sample=2"
SD = "steps=3"
KINDS = ["repaint", "diffusers"]
#: The folder each method is tested on, and its parameters.
FOLDER = {"repaint": "repaint", "diffusers": "sd"}
PARAMS = {"repaint": REPAINT, "diffusers": SD}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op torch thread for the module (tiny tensors on a shared 2-core machine run
    many times slower with two threads competing with other processes); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- tiny pipelines, built once per session ---------------------------------------------------


def byte_characters() -> list[str]:
    """The 256 characters byte-level BPE (GPT-2, CLIP) writes for the 256 byte values."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + k) for k in range(len(rest))]


def write_tokenizer(folder: Path):
    """A CLIP tokenizer from a vocabulary of single bytes (and end-of-word bytes), no merges."""
    from transformers import CLIPTokenizer

    folder.mkdir()
    chars = byte_characters()
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=77)


def latent_pipeline(cls, tokenizer, unet_channels: int):
    """A Stable-Diffusion-style pipeline of ``cls`` with tiny random parts (latent factor 8)."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    vae = AutoencoderKL(
        block_out_channels=[8, 8, 16, 16],
        norm_num_groups=8,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        layers_per_block=1,
    )
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=4,
        in_channels=unet_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=16,
            intermediate_size=16,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
        )
    )
    return cls(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@pytest.fixture(scope="session")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Saved tiny pipelines: a RePaint DDPM (32x32), an SD inpainting pipeline (9-channel
    UNet), a text-to-image SD pipeline, and a folder that is no pipeline."""
    from diffusers import (
        RePaintPipeline,
        RePaintScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DModel,
    )

    root = tmp_path_factory.mktemp("diffusion")
    tokenizer = write_tokenizer(root / "tokenizer")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = UNet2DModel(
            sample_size=32,
            block_out_channels=(16, 32),
            norm_num_groups=8,
            layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
        )
        pipelines = {
            "repaint": RePaintPipeline(unet=unet, scheduler=RePaintScheduler()),
            "sd": latent_pipeline(StableDiffusionInpaintPipeline, tokenizer, 9),
            "t2i": latent_pipeline(StableDiffusionPipeline, tokenizer, 4),
        }
    out = {"root": root, "missing": root / "missing", "not-a-pipeline": root / "tokenizer"}
    for name, pipeline in pipelines.items():
        pipeline.save_pretrained(root / name)
        out[name] = root / name
    return out


def build(kind: str, folders: dict[str, Path], extra: str = "", folder: Path | None = None):
    spec = f"{kind}:path={folder or folders[FOLDER[kind]]},{PARAMS[kind]}"
    return METHODS.build(spec + ("," + extra if extra else ""))


def batch(count: int, height: int = 32, width: int = 32, smooth: bool = False):
    """8-bit images (random, or smooth gradients), their ``square`` masks, and the inputs."""
    if smooth:
        ys = torch.linspace(0, 1, height)[:, None]
        xs = torch.linspace(0, 1, width)[None, :]
        planes = [ys * xs, (ys + xs) / 2, 1 - ys * xs]
        images = torch.stack(planes)[None].repeat(count, 1, 1, 1)
    else:
        images = torch.rand(count, 3, height, width, generator=torch.Generator().manual_seed(3))
    images = images.mul(255).round().div(255)
    masks = build_mask("square").batch(range(count), height, width, seed=0)
    return images.masked_fill(masks, 0.0), masks


def documented_seed(seed: int, masked: torch.Tensor, hole: torch.Tensor) -> int:
    """The seed rule as the docs state it, written here independently of the code."""
    height, width = masked.shape[-2:]
    data = b"inpaint-bench diffusion seed v1" + struct.pack("<qII", seed, height, width)
    data += masked.mul(255).round().to(torch.uint8).numpy().tobytes()
    data += hole.to(torch.uint8).numpy().tobytes()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little") & (2**63 - 1)


def as_images(array) -> torch.Tensor:
    """A pipeline's ``output_type="np"`` images as (N, 3, H, W) float32."""
    return torch.from_numpy(array).permute(0, 3, 1, 2).float()


# -- command line ----------------------------------------------------------------------------


def cli(*args: str) -> int:
    """``benchmark.cli.main`` in this process, environment restored afterwards."""
    environ = dict(os.environ)
    try:
        return main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(environ)


def cli_run(methods: str, out: Path | str, *extra: str) -> int:
    """``run`` of ``methods`` with square masks at 32x32, quietly, into ``out``."""
    return cli("run", "--methods", methods, "--masks", "square", "--size", "32", "--quiet",
               "--out", str(out), *extra)  # fmt: skip


def run(out: Path, methods: str, *extra: str) -> dict[tuple[str, str, int], dict]:
    """Run ``methods`` on 4 images; the records minus their timings."""
    assert cli_run(methods, out, "--limit", "4", *extra) == 0
    return {
        (r["method"], r["mask"], r["index"]): {k: v for k, v in r.items() if k != "seconds"}
        for r in RecordStore(out / "records.jsonl")
    }


def both(folders: dict[str, Path], seed: int = 0) -> str:
    return (
        f"repaint:path={folders['repaint']},{REPAINT},seed={seed},"
        f"diffusers:path={folders['sd']},{SD},seed={seed}"
    )


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("baseline") / "run"


@pytest.fixture(scope="module")
def baseline(folders, baseline_dir) -> dict:
    """Both methods and telea, batches of 4, one worker."""
    return run(baseline_dir, both(folders) + ",telea", "--batch-size", "4", "--workers", "1")


def test_run_end_to_end(baseline, baseline_dir, folders) -> None:
    board = json.loads((baseline_dir / "leaderboard.json").read_text())
    marked = {e["method"] for t in board["tables"] for e in t["entries"] if e.get("stochastic")}
    assert len(marked) == 2 and all(m.startswith(("repaint:", "diffusers:")) for m in marked)
    assert "~ stochastic" in (baseline_dir / "leaderboard.md").read_text()
    methods = {key[0] for key in baseline}
    assert len(methods) == 3 and "telea" in methods
    assert len(baseline) == 12
    assert all(r["status"] == "ok" for r in baseline.values())
    for name in methods - {"telea"}:
        assert "seed 0" in baseline[(name, "square", 0)]["fingerprint"]
        assert name.startswith(("repaint:", "diffusers:"))


@pytest.mark.parametrize(
    "options",
    [["--batch-size", "1", "--workers", "1"], ["--batch-size", "4", "--workers", "2"]],
    ids=["batch-1", "workers-2"],
)
def test_records_do_not_depend_on_batch_size_or_workers(
    options, baseline, folders, tmp_path
) -> None:
    records = run(tmp_path / "run", both(folders) + ",telea", *options)
    assert records == baseline


def test_records_change_with_the_seed(baseline, folders, tmp_path) -> None:
    records = run(tmp_path / "run", both(folders, seed=1), "--workers", "1")
    assert len(records) == 8
    for (method, mask, index), record in records.items():
        name = method.replace(",seed=1", "")  # seed=0 is the default, left out of the name
        before = baseline[(name, mask, index)]
        assert record["fingerprint"] != before["fingerprint"]
        assert record["psnr"] != before["psnr"], (method, index)


def test_pipeline_loads_once_and_prints_nothing(folders, tmp_path, monkeypatch, capsys) -> None:
    import diffusers

    calls = []
    original = diffusers.UNet2DModel.from_pretrained

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(diffusers.UNet2DModel, "from_pretrained", counted)
    capsys.readouterr()
    spec = f"repaint:path={folders['repaint']},{REPAINT}"
    records = run(tmp_path / "run", spec, "--batch-size", "1", "--workers", "1")
    assert len(records) == 4 and all(r["status"] == "ok" for r in records.values())
    assert len(calls) == 1  # four batches, one load
    assert capsys.readouterr().err == ""  # no loading bars, per-step bars or library advice


@pytest.mark.slow
def test_a_fresh_process_prints_no_library_output(folders, run_cli) -> None:
    """No loading or per-step progress bars, and no advice of the libraries on stderr (their
    warnings come once per process, so only a fresh one shows them)."""
    options = ["--masks", "square", "--limit", "1", "--size", "32", "--quiet", "--out", "run"]
    code, _, err = run_cli("run", "--methods", both(folders), *options)
    assert code == 0 and err == "", err


# -- mask polarity ---------------------------------------------------------------------------


def test_repaint_keeps_the_known_pixels_and_fills_the_hole(folders) -> None:
    method = build("repaint", folders)
    masked, mask = batch(2)
    out = method.inpaint(masked, mask)
    known = ~mask.expand_as(masked)
    assert (out - masked)[known].abs().max() < 1e-5  # RePaint keeps its mask's white pixels
    assert out[~known].mean() > 0.05  # the hole is sampled, not the zeros the method was given
    # the mistake this guards against: the hole passed as RePaint's mask keeps the zeros
    inverted = method.pipe(
        image=masked[:1] * 2 - 1,
        mask_image=mask[:1].float(),
        num_inference_steps=6,
        jump_length=2,
        jump_n_sample=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    assert as_images(inverted)[~known[:1]].abs().max() < 1e-5


def test_diffusers_pipeline_sees_the_known_pixels_as_context(folders) -> None:
    method = build("diffusers", folders)
    masked, mask = batch(1)
    seen = []
    hook = method.pipe.vae.encoder.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone())
    )
    try:
        method.inpaint(masked, mask)
    finally:
        hook.remove()
    (context,) = seen  # the masked image the 9-channel UNet is conditioned on
    # the pipeline repaints the white pixels of its mask: the hole is blanked, the rest kept
    assert torch.allclose(context, torch.where(mask, 0.0, masked * 2 - 1), atol=1e-6)


# -- the seed rule, against the diffusers pipelines called directly --------------------------


def direct_call(kind: str, folder: Path, masked: torch.Tensor, hole: torch.Tensor, seed: int):
    """The diffusers pipeline loaded afresh and called on one image with the rule's generator."""
    from diffusers import AutoPipelineForInpainting, RePaintPipeline

    generator = torch.Generator().manual_seed(documented_seed(seed, masked[0], hole[0]))
    if kind == "repaint":
        pipe = RePaintPipeline.from_pretrained(folder, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        images = pipe(
            image=masked * 2 - 1,
            mask_image=(~hole).float(),
            num_inference_steps=6,
            eta=0.0,
            jump_length=2,
            jump_n_sample=2,
            generator=generator,
            output_type="np",
        ).images
    else:
        pipe = AutoPipelineForInpainting.from_pretrained(folder, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        images = pipe(
            prompt="",
            image=masked,
            mask_image=hole.float(),
            height=masked.shape[-2],
            width=masked.shape[-1],
            num_inference_steps=3,
            guidance_scale=7.5,
            strength=1.0,
            generator=generator,
            output_type="np",
        ).images
    return as_images(images)


@pytest.mark.parametrize("kind", KINDS)
def test_each_image_equals_a_direct_pipeline_call_with_its_seed(kind, folders) -> None:
    masked, mask = batch(3)
    out = build(kind, folders, "seed=5").inpaint(masked, mask)
    for k in (0, 2):
        expected = direct_call(kind, folders[FOLDER[kind]], masked[k : k + 1], mask[k : k + 1], 5)
        assert torch.equal(out[k : k + 1], expected), k
    assert not torch.equal(out[0], out[2])


def test_latent_pipeline_pads_to_its_factor_and_crops_back(folders) -> None:
    masked, mask = batch(2, 20, 28)
    out = build("diffusers", folders).inpaint(masked, mask)
    assert out.shape == masked.shape
    pad = (2, 2, 2, 2)  # 20x28 -> 24x32: multiples of the tiny VAE's factor 8, centred
    padded = F.pad(masked[1:], pad, mode="replicate")
    hole = F.pad(mask[1:].float(), pad, mode="replicate").bool()
    generator_seed = documented_seed(0, masked[1], mask[1])  # of what the method was given
    from diffusers import AutoPipelineForInpainting

    pipe = AutoPipelineForInpainting.from_pretrained(folders["sd"], local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        prompt="",
        image=padded,
        mask_image=hole.float(),
        height=24,
        width=32,
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(generator_seed),
        output_type="np",
    ).images
    assert torch.equal(out[1:], as_images(images)[..., 2:22, 2:30])


@pytest.mark.parametrize("layout", ["ddpm-pipeline", "bare-unet"])
def test_repaint_reads_other_ddpm_layouts(layout, folders, tmp_path) -> None:
    """A DDPMPipeline folder (its DDPMScheduler config carries over) and a bare UNet folder
    (config.json and weights at the top) sample as the RePaintPipeline folder does."""
    from diffusers import DDPMPipeline, DDPMScheduler, RePaintPipeline

    unet = RePaintPipeline.from_pretrained(folders["repaint"], local_files_only=True).unet
    folder = tmp_path / layout
    if layout == "ddpm-pipeline":
        DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(folder)
    else:
        unet.save_pretrained(folder)
    masked, mask = batch(1)
    expected = build("repaint", folders).inpaint(masked, mask)
    assert torch.equal(build("repaint", folders, folder=folder).inpaint(masked, mask), expected)


@pytest.mark.parametrize("kind, extra", [("repaint", ""), ("diffusers", "strength=0.7")])
def test_hole_pixels_are_never_read(kind, extra, folders) -> None:
    """Values a caller leaves in the hole reach neither the seed nor the pipeline (which reads
    them when it encodes the whole image: strength < 1)."""
    masked, mask = batch(2)
    method = build(kind, folders, extra)
    garbage = masked.masked_fill(mask, 1.0)
    assert torch.equal(method.inpaint(garbage, mask), method.inpaint(masked, mask))


# -- RePaint's resize to the UNet's size -----------------------------------------------------


@pytest.mark.parametrize("size", [(20, 28), (48, 48)])
def test_resize_keeps_hole_zeros_out_of_the_known_pixels(size) -> None:
    from methods.repaint import resize_known

    image = torch.full((1, 3, *size), 0.7)
    hole = torch.zeros(1, 1, *size, dtype=torch.bool)
    hole[..., 5:11, 7:15] = True
    resized, keep = resize_known(image.masked_fill(hole, 0.0), (~hole).float(), (32, 32))
    assert 0 < keep.sum() < keep.numel()
    kept = keep.bool().expand_as(resized)
    assert torch.allclose(resized[kept], torch.tensor(0.7), atol=1e-6)
    assert torch.all(resized[~kept] == 0)


@pytest.mark.parametrize("size", [(24, 40), (64, 64)])
def test_repaint_resizes_to_the_unet_size_and_back(size, folders) -> None:
    masked, mask = batch(2, *size, smooth=True)
    out = build("repaint", folders).inpaint(masked, mask)
    assert out.shape == masked.shape and torch.isfinite(out).all()
    # known pixels a few model pixels away from the hole come back close to the input (nearer
    # ones share a resize filter with the hole, so they were sampled too)
    margin = 3 * -(-max(size) // 32) + 1
    near = F.max_pool2d(mask.float(), 2 * margin + 1, stride=1, padding=margin)
    near = near.bool().expand_as(masked)
    assert (out - masked)[~near].abs().max() < 0.05
    assert out[mask.expand_as(out)].mean() > 0.05  # the hole was sampled


# -- parameters, fingerprint, listing --------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_fingerprint_holds_the_seed_and_the_files(kind, folders, tmp_path) -> None:
    first = build(kind, folders).fingerprint()
    assert "seed 0" in first and "fp32" in first
    assert "seed 7" in build(kind, folders, "seed=7").fingerprint()
    copy = Path(shutil.copytree(folders[FOLDER[kind]], tmp_path / "copy"))
    assert build(kind, folders, folder=copy).fingerprint() == first  # where it lies: no matter
    config = copy / "scheduler" / "scheduler_config.json"
    values = json.loads(config.read_text())
    config.write_text(json.dumps({**values, "beta_end": 0.021}))
    assert build(kind, folders, folder=copy).fingerprint() != first


@pytest.mark.parametrize("kind", KINDS)
def test_fp16_asked_on_a_cpu_stays_float32(kind, folders) -> None:
    method = build(kind, folders, "fp16=true").to("cpu")
    assert method.dtype == torch.float32 and "fp32" in method.fingerprint()
    assert next(method.pipe.unet.parameters()).dtype == torch.float32


@pytest.mark.parametrize(
    "kind, spec, message",
    [
        ("repaint", "steps=0", "steps must be an integer >= 1"),
        ("repaint", "eta=2", "eta must be a number in [0, 1]"),
        ("repaint", "seed=-1", "seed must be an integer >= 0"),
        ("diffusers", "steps=5,strength=0.1", "steps x strength must leave at least one step"),
        ("diffusers", "fp16=maybe", "fp16: expected true or false, got 'maybe'"),
    ],
)
def test_bad_parameters_are_usage_errors(kind, spec, message, folders) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        METHODS.build(f"{kind}:path={folders[FOLDER[kind]]},{spec}")


def test_listed_with_parameters_and_their_extra(capsys) -> None:
    assert cli("list", "methods") == 0
    out = capsys.readouterr().out.splitlines()
    lines = {line.split()[0]: line for line in out if line[:2] == "  " and line[2] != " "}
    repaint, diffusers = lines["repaint"], lines["diffusers"]
    for text in ("steps=250", "jump_length=10", "jump_n_sample=10", "eta=0.0", "seed=0", "name=''"):
        assert text in repaint
    for text in ("prompt=''", "negative_prompt=''", "steps=50", "guidance=7.5", "strength=1.0",
                 "name=''"):  # fmt: skip
        assert text in diffusers
    assert "inpaint-bench[diffusion]" in repaint and "inpaint-bench[diffusion]" in diffusers
    for kind in KINDS:
        factory = METHODS.get(kind)
        assert factory.stochastic and factory.requires_path


# -- loading errors: one line, exit 2 at planning time ----------------------------------------


@pytest.mark.parametrize(
    "kind, folder, message",
    [
        ("repaint", "missing", "does not exist; expected a RePaintPipeline folder"),
        ("repaint", "not-a-pipeline", "is not a DDPM folder: expected"),
        ("repaint", "sd", "use diffusers:path=DIR"),
        ("diffusers", "missing", "does not exist; expected an inpainting pipeline folder"),
        ("diffusers", "not-a-pipeline", "is not a diffusers pipeline folder"),
        ("diffusers", "t2i", "StableDiffusionPipeline, a text-to-image pipeline with no inpaint"),
        ("diffusers", "repaint", "RePaintPipeline, an unconditional pixel-space DDPM"),
    ],
)
def test_loading_errors_are_one_line_with_exit_2(kind, folder, message, folders, capsys) -> None:
    code = cli_run(f"{kind}:path={folders[folder]}", folders["root"] / "unused", "--limit", "1")
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (folders["root"] / "unused").exists()


def test_corrupt_weights_are_one_line_with_exit_1(folders, tmp_path, capsys) -> None:
    copy = Path(shutil.copytree(folders["repaint"], tmp_path / "copy"))
    (weights,) = (copy / "unet").glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    code = cli_run(f"repaint:path={copy}", tmp_path / "run", "--limit", "1")
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "repaint: cannot load the DDPM" in err, err


@pytest.mark.parametrize("kind", KINDS)
def test_without_the_extra_naming_them_says_what_to_install(kind, folders, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError
    assert cli("list", "methods") == 0
    spec = f"{kind}:path={folders[FOLDER[kind]]}"
    code = cli_run(spec, folders["root"] / "unused", "--limit", "1")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert 'needs diffusers, part of an optional extra: pip install "inpaint-bench[diffusion]"' in (
        err
    )
