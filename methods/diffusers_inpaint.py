"""``diffusers:path=DIR``: any diffusers inpainting pipeline from a local folder.

The folder is what ``AutoPipelineForInpainting.from_pretrained`` loads and its
``model_index.json`` must name an inpainting pipeline (``StableDiffusionInpaintPipeline``,
``StableDiffusionXLInpaintPipeline``, ``FluxInpaintPipeline``, ...). diffusers would also turn a
text-to-image folder into an inpainting pipeline (blending latents, not a model trained for
holes); such a folder is refused here, so a name in a leaderboard always means a pipeline made
for inpainting.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmark.errors import DataError, UsageError
from benchmark.method import METHODS
from methods.diffusers_base import (
    DiffusersMethod,
    check_float,
    check_int,
    files_sha256,
    import_extra,
    one_line,
    quiet_libraries,
    read_json,
)

#: Our parameter -> the pipeline's ``__call__`` keyword.
CALL_NAMES = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "strength": "strength",
}
#: Pixel-space pipelines of diffusers that RePaint handles, for the hint of a refusal.
DDPM_PIPELINES = {"RePaintPipeline", "DDPMPipeline", "DDIMPipeline"}


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad ``x`` (N, C, H, W) centred to multiples of ``multiple``; ``(top, left)``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return x, (0, 0)
    top, left = pad_h // 2, pad_w // 2
    return F.pad(x, (left, pad_w - left, top, pad_h - top), mode="replicate"), (top, left)


@METHODS.register("diffusers")
class DiffusersInpaint(DiffusersMethod):
    """A diffusers inpainting pipeline from a local folder (needs the extra
    inpaint-bench[diffusion]), e.g. Stable Diffusion inpainting: diffusers:path=DIR.

    ``prompt`` and ``negative_prompt`` are the text (empty: none; no commas, which separate
    parameters), ``steps`` the scheduler's steps, ``guidance`` the classifier-free guidance
    scale (above 1 it doubles the network's batch), ``strength`` how far the hole is noised
    (1: pure noise). Cost per image: ``int(steps * strength)`` network evaluations, on a batch
    of 2 when guidance > 1, plus VAE encodes and one decode. The pipeline repaints the white
    (1) pixels of its mask, so it gets the hole itself. Sides that are not multiples of the
    pipeline's latent factor (8 for Stable Diffusion) are replicate-padded, centred, to the
    next multiple and cropped back; nothing is resized. Each image has its own generator (see
    ``methods.diffusers_base``). Images the pipeline's safety checker blanks fail with that
    reason. ``name=`` labels the entry in tables (give each seed its own). ``fp16=true`` runs in
    float16 on CUDA (float32 on the CPU); ``download=true`` lets ``path`` be a model id fetched
    into the library's cache.
    """

    kind = "diffusers"
    expected = (
        "an inpainting pipeline folder that AutoPipelineForInpainting loads "
        "(model_index.json naming e.g. StableDiffusionInpaintPipeline)"
    )

    def __init__(
        self,
        path: str | None = None,
        prompt: str = "",
        negative_prompt: str = "",
        steps: int = 50,
        guidance: float = 7.5,
        strength: float = 1.0,
        seed: int = 0,
        name: str = "",
        fp16: bool = False,
        download: bool = False,
    ) -> None:
        diffusers, _ = import_extra(self.kind, "diffusers", "transformers")
        self.prompt = "" if prompt is None else str(prompt)
        self.negative_prompt = "" if negative_prompt is None else str(negative_prompt)
        self.steps = check_int("steps", steps, 1)
        self.guidance = check_float("guidance", guidance, 0.0, 1000.0)
        self.strength = check_float("strength", strength, 0.0, 1.0)
        if int(self.steps * self.strength) < 1:
            raise ValueError(
                f"steps x strength must leave at least one step, got {steps} x {strength}"
            )
        folder = self.setup(path, seed, fp16, download)
        self.name = "" if name is None else str(name)
        folder = folder if isinstance(folder, Path) else self.fetch(folder)
        components = self._check_kind(folder)
        with quiet_libraries():
            try:
                pipe = diffusers.AutoPipelineForInpainting.from_pretrained(
                    folder, local_files_only=True
                )
            except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
                raise DataError(
                    f"diffusers: cannot load the pipeline in {str(folder)!r}: {one_line(exc)}"
                ) from None
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.pipeline_class = type(pipe).__name__
        self.arguments = self._arguments(pipe)
        processor = getattr(pipe, "image_processor", None)
        factor = getattr(getattr(processor, "config", None), "vae_scale_factor", None)
        self.multiple = int(factor or getattr(pipe, "vae_scale_factor", 8))
        self.folder_sha256 = files_sha256(folder, ["model_index.json", *components])

    def _check_kind(self, folder: Path) -> list[str]:
        """Refuse folders that are not inpainting pipelines; the component folders to hash."""
        with quiet_libraries():  # importing every pipeline class warns about missing extras
            from diffusers.pipelines.auto_pipeline import (
                AUTO_INPAINT_PIPELINES_MAPPING,
                AUTO_TEXT2IMAGE_PIPELINES_MAPPING,
            )

        index = folder / "model_index.json"
        if not index.is_file():
            raise UsageError(
                f"diffusers: {str(folder)!r} is not a diffusers pipeline folder (no "
                f"model_index.json); expected {self.expected}"
            )
        config = read_json(index)
        declared = str(config.get("_class_name"))
        inpainting = {c.__name__ for c in AUTO_INPAINT_PIPELINES_MAPPING.values()}
        text_to_image = {c.__name__ for c in AUTO_TEXT2IMAGE_PIPELINES_MAPPING.values()}
        if declared not in inpainting:
            what = (
                "a text-to-image pipeline with no inpainting"
                if declared in text_to_image
                else "an unconditional pixel-space DDPM (use repaint:path=DIR)"
                if declared in DDPM_PIPELINES
                else "not an inpainting pipeline"
            )
            raise UsageError(
                f"diffusers: {str(folder)!r} holds a {declared}, {what}; expected {self.expected}"
            )
        if "ControlNet" in declared:
            raise UsageError(
                f"diffusers: {str(folder)!r} holds a {declared}, which needs a control image "
                f"the harness does not supply; expected {self.expected}"
            )
        return [
            key
            for key, value in config.items()
            if not key.startswith("_") and isinstance(value, list) and any(value)
        ]

    def _arguments(self, pipe: Any) -> dict[str, Any]:
        """The call's keyword arguments that this pipeline takes; a changed parameter it does not
        take is a usage error (a silently ignored setting would mislabel the results)."""
        accepted = inspect.signature(pipe.__call__).parameters
        for needed in ("image", "mask_image"):
            if needed not in accepted:
                raise UsageError(
                    f"diffusers: {self.pipeline_class}.__call__ takes no {needed}; "
                    f"expected {self.expected}"
                )
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        arguments: dict[str, Any] = {}
        for ours, theirs in CALL_NAMES.items():
            value = getattr(self, ours)
            if theirs in accepted:
                arguments[theirs] = value
            elif value != defaults[ours]:
                raise UsageError(
                    f"diffusers: {self.pipeline_class} takes no {ours} (its call has no {theirs})"
                )
        self.sized = "height" in accepted and "width" in accepted
        if arguments.get("negative_prompt") == "":
            arguments["negative_prompt"] = None  # the pipeline's own default: no negative text
        return arguments

    def fingerprint(self) -> str:
        return f"{super().fingerprint()}; {self.pipeline_class}"

    def sample(
        self, masked: torch.Tensor, hole: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, str | None]:
        height, width = masked.shape[-2:]
        image, (top, left) = pad_to_multiple(masked.float(), self.multiple)
        hole_image, _ = pad_to_multiple(hole.float(), self.multiple)  # white (1) is repainted
        sizes = {"height": image.shape[-2], "width": image.shape[-1]} if self.sized else {}
        result = self.pipe(
            image=image,
            mask_image=hole_image,
            generator=generator,
            output_type="np",
            **sizes,
            **self.arguments,
        )
        output = torch.from_numpy(result.images).permute(0, 3, 1, 2).float()
        if output.shape[-2:] != image.shape[-2:]:  # a pipeline that resized on its own
            output = F.interpolate(
                output, size=image.shape[-2:], mode="bilinear", antialias=True, align_corners=False
            )
        output = output[..., top : top + height, left : left + width].clamp_(0, 1)
        flagged = getattr(result, "nsfw_content_detected", None)
        if flagged and flagged[0]:
            return torch.full_like(output, float("nan")), (
                "the pipeline's safety checker blanked this image (its NSFW flag)"
            )
        return output, None
