"""``repaint:path=DIR``: RePaint (Lugmayr et al., CVPR 2022) on an unconditional pixel-space DDPM.

The folder is what ``RePaintPipeline.from_pretrained`` loads (``model_index.json``, ``unet/``,
``scheduler/``), or any DDPM folder with a ``UNet2DModel`` in ``unet/`` or at its top
(``config.json`` + weights), e.g. a DDPM trained on CelebA-HQ or Places. The scheduler is a
``RePaintScheduler`` built from the folder's scheduler config (a DDPM's betas carry over), or
with its defaults when the folder has none.
"""

from __future__ import annotations

import warnings
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

#: A model pixel is known when the known pixels under its resize filter hold this much of its
#: weight; any more hole weight makes it a hole pixel (so no hole zero leaks into the context).
KNOWN_WEIGHT = 1 - 1e-4


def unet_evaluations(steps: int, jump_length: int, jump_n_sample: int) -> int:
    """Network evaluations per image of RePaint's schedule (diffusers' ``RePaintScheduler``).

    ``steps`` denoising steps plus, at each of the ``ceil((steps - jump_length) / jump_length)``
    jump points, ``jump_n_sample - 1`` resamplings of ``jump_length`` steps each (the paper's
    defaults 250, 10, 10: 250 + 24 * 9 * 10 = 2,410). The steps back up the chain add noise
    without a network evaluation.
    """
    jumps = len(range(0, steps - jump_length, jump_length))
    return steps + jumps * (jump_n_sample - 1) * jump_length


def resize_known(
    image: torch.Tensor, known: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` (N, 3, H, W) and its ``known`` float mask (N, 1, H, W) resized to ``size``.

    Bilinear with antialiasing (PIL's BILINEAR: a triangle filter as wide as the scale factor
    when shrinking), normalised by the resized mask so the hole's zeros never leak into known
    pixels; a model pixel is known only when its whole filter lies on known pixels.
    """
    resize = dict(size=size, mode="bilinear", antialias=True, align_corners=False)
    weight = F.interpolate(known, **resize)
    summed = F.interpolate(image * known, **resize)
    keep = weight >= KNOWN_WEIGHT
    image = torch.where(keep, summed / weight.clamp_min(KNOWN_WEIGHT), torch.zeros_like(summed))
    return image, keep.to(image.dtype)


@METHODS.register("repaint")
class RePaint(DiffusersMethod):
    """RePaint on a local DDPM folder (needs the extra inpaint-bench[diffusion]): repaint:path=DIR.

    Cost per image: ``unet_evaluations(steps, jump_length, jump_n_sample)`` network evaluations
    (2,410 with the paper's defaults steps=250, jump_length=10, jump_n_sample=10), each on
    one image. ``eta`` weighs the noise of a step (0: DDIM-like, 1: DDPM). Images are
    resized to the UNet's ``sample_size`` and back, bilinear with antialiasing
    (:func:`resize_known`); at that size nothing is resized. RePaint's mask keeps its white
    (1) pixels, so it gets ``1 - hole``. Each image has its own generator (see
    ``methods.diffusers_base``). ``name=`` labels the entry in tables (give each seed its own).
    ``fp16=true`` runs in float16 on CUDA (float32 on the CPU); ``download=true`` lets ``path``
    be a model id fetched into the library's cache.
    """

    kind = "repaint"
    expected = (
        "a RePaintPipeline folder (model_index.json, unet/, scheduler/) or a DDPM folder "
        "with a UNet2DModel (config.json and weights, at the top or in unet/)"
    )
    slow_note = (
        "2,410 network evaluations per image with the paper's defaults: hours per image at "
        "256x256 on a CPU; use a GPU, or fewer steps=/jump_n_sample= for quick checks"
    )

    def __init__(
        self,
        path: str | None = None,
        steps: int = 250,
        jump_length: int = 10,
        jump_n_sample: int = 10,
        eta: float = 0.0,
        seed: int = 0,
        name: str = "",
        fp16: bool = False,
        download: bool = False,
    ) -> None:
        (diffusers,) = import_extra(self.kind, "diffusers")
        self.steps = check_int("steps", steps, 1)
        self.jump_length = check_int("jump_length", jump_length, 1)
        self.jump_n_sample = check_int("jump_n_sample", jump_n_sample, 1)
        self.eta = check_float("eta", eta, 0.0, 1.0)
        folder = self.setup(path, seed, fp16, download)
        self.name = "" if name is None else str(name)
        folder = folder if isinstance(folder, Path) else self.fetch(folder)
        unet_dir, scheduler_dir, hashed = self._layout(folder)
        with quiet_libraries():
            try:
                unet = diffusers.UNet2DModel.from_pretrained(unet_dir, local_files_only=True)
                if scheduler_dir is None:
                    scheduler = diffusers.RePaintScheduler()
                else:
                    scheduler = diffusers.RePaintScheduler.from_pretrained(
                        scheduler_dir, local_files_only=True
                    )
            except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
                raise DataError(
                    f"repaint: cannot load the DDPM in {str(folder)!r}: {one_line(exc)}"
                ) from None
        self._check_unet(folder, unet)
        self.pipe = diffusers.RePaintPipeline(unet=unet, scheduler=scheduler)
        # the pipeline's tensor path announces a deprecation of its PIL helper on every call
        warnings.filterwarnings(
            "ignore", message="The preprocess method is deprecated", category=FutureWarning
        )
        self.pipe.set_progress_bar_config(disable=True)
        size = unet.config.sample_size
        self.model_size = (size, size) if isinstance(size, int) else tuple(size)
        self.evaluations = unet_evaluations(
            min(self.steps, scheduler.config.num_train_timesteps),
            self.jump_length,
            self.jump_n_sample,
        )
        self.folder_sha256 = files_sha256(folder, hashed)

    def _layout(self, folder: Path) -> tuple[Path, Path | None, list[str]]:
        """(UNet folder, scheduler folder or None, entries to hash) of a DDPM folder."""
        index = folder / "model_index.json"
        declared = read_json(index).get("_class_name") if index.is_file() else None
        unet_config = next(
            (d / "config.json" for d in (folder / "unet", folder) if (d / "config.json").is_file()),
            None,
        )
        unet_class = read_json(unet_config).get("_class_name") if unet_config else None
        if unet_class != "UNet2DModel":
            what = f"a {declared}" if declared else f"a {unet_class}" if unet_class else "neither"
            hint = (
                " (a latent, text-conditioned pipeline: use diffusers:path=DIR)"
                if unet_class == "UNet2DConditionModel"
                else ""
            )
            raise UsageError(
                f"repaint: {str(folder)!r} is not a DDPM folder: expected {self.expected}; "
                f"it holds {what}{hint}"
            )
        unet_dir = unet_config.parent
        scheduler_dir = next(
            (d for d in (folder / "scheduler", folder) if (d / "scheduler_config.json").is_file()),
            None,
        )
        if unet_dir == folder:  # the UNet at the top: its own files, not unrelated folders
            hashed = [p.name for p in folder.iterdir() if p.is_file()]
        else:
            hashed = ["model_index.json", "unet"]
            if scheduler_dir is not None:
                hashed.append(str(scheduler_dir.relative_to(folder)))
        return unet_dir, scheduler_dir, hashed

    def _check_unet(self, folder: Path, unet: Any) -> None:
        channels = (unet.config.in_channels, unet.config.out_channels)
        if channels != (3, 3):
            raise UsageError(
                f"repaint: the UNet2DModel in {str(folder)!r} has {channels[0]} input and "
                f"{channels[1]} output channels; RePaint needs a pixel-space RGB DDPM predicting "
                "the noise (3 and 3)"
            )

    def fingerprint(self) -> str:
        return f"{super().fingerprint()}; {self.evaluations} unet evaluations"

    def sample(
        self, masked: torch.Tensor, hole: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, str | None]:
        size = tuple(masked.shape[-2:])
        image, keep = masked.float(), (~hole).float()  # RePaint keeps the white (1) pixels
        if size != self.model_size:
            image, keep = resize_known(image, keep, self.model_size)
        result = self.pipe(
            image=image * 2 - 1,
            mask_image=keep,
            num_inference_steps=self.steps,
            eta=self.eta,
            jump_length=self.jump_length,
            jump_n_sample=self.jump_n_sample,
            generator=generator,
            output_type="np",
        )
        output = torch.from_numpy(result.images).permute(0, 3, 1, 2).float()
        if size != self.model_size:
            output = F.interpolate(
                output, size=size, mode="bilinear", antialias=True, align_corners=False
            )
        return output.clamp_(0, 1), None
