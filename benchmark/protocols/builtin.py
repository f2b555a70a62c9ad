"""The built-in protocols; importing this module registers them in ``PROTOCOLS``.

Each setting's source is in the protocol's ``notes`` and in docs/guides/protocols.md. LaMa's
mask settings are the numbers of its ``configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml``
(commit 786f593), turned into the ``strokes`` family's parameters by :func:`lama_masks` the way
LaMa's code draws them.
"""

from __future__ import annotations

from benchmark.protocols.base import NVIDIA_BINS, TENTHS, MaskFiles, Protocol, register

LAMA = "Suvorov et al., LaMa (WACV 2022); github.com/advimman/lama"
MAT = "Li et al., MAT (CVPR 2022); github.com/fenglinglwb/MAT"
PCONV = "Liu et al., Image Inpainting for Irregular Holes Using Partial Convolutions (ECCV 2018)"
SEED = 'the student report "CNN based image inpainting" (the project\'s seed)'

#: LaMa's data_gen configurations: irregular (min_times, max_times, max_width, max_len) and
#: box (margin, bbox_min_size, bbox_max_size, min_times, max_times) or None, box_proba 0.3.
LAMA_CONFIGS: dict[str, tuple[tuple[int, int, int, int], tuple[int, int, int, int, int] | None]] = {
    "thin_256": ((4, 50, 10, 40), None),
    "medium_256": ((4, 5, 50, 100), (0, 10, 50, 1, 5)),
    "thick_256": ((1, 5, 100, 200), (10, 30, 150, 1, 3)),
    "thin_512": ((4, 70, 20, 100), None),
    "medium_512": ((4, 10, 100, 200), (0, 30, 150, 1, 5)),
    "thick_512": ((1, 5, 250, 450), (10, 30, 300, 1, 4)),
}
LAMA_BOX_PROBA = 0.3


def lama_parameters(kind: str, side: int) -> dict[str, float | int]:
    """The ``strokes`` parameters of LaMa's ``random_{kind}_{side}`` configuration.

    LaMa draws ``randint(min_times, max_times + 2)`` strokes (its ramp adds one), lengths
    ``10 + randint(max_len)``, widths ``5 + randint(max_width)``, 1..5 segments; boxes
    ``randint(min_times, max_times + 1)`` of sides ``bbox_min..bbox_max`` (the ramp's end value)
    with probability ``box_proba / (1 + box_proba)``. Masks above 0.5 hole share are dropped
    (``max_tamper_area``).
    """
    (min_times, max_times, max_width, max_len), box = LAMA_CONFIGS[f"{kind}_{side}"]
    params: dict[str, float | int] = dict(
        min_strokes=min_times, max_strokes=max_times + 1, max_segments=5, max_angle=4,
        min_length=10 / side, max_length=(max_len + 9) / side,
        min_width=5 / side, max_width=(max_width + 4) / side, max_ratio=0.5,
    )  # fmt: skip
    if box is None:
        params["box_probability"] = 0.0
    else:
        margin, smallest, largest, fewest, most = box
        params.update(
            box_probability=LAMA_BOX_PROBA / (1 + LAMA_BOX_PROBA), box_margin=margin / side,
            min_box=smallest / side, max_box=largest / side, min_boxes=fewest, max_boxes=most,
        )  # fmt: skip
    return params


def lama_masks(side: int) -> tuple[str, ...]:
    """``strokes`` specs of LaMa's thin, medium and thick masks at ``side``: the preset, plus
    the parameters where LaMa's configuration at ``side`` differs from it."""
    from masks.strokes import PRESETS

    specs = []
    for kind in ("thin", "medium", "thick"):
        params = lama_parameters(kind, side)
        preset = PRESETS[kind]
        changed = {k: v for k, v in params.items() if preset.get(k) != v}
        extra = "".join(f",{k}={v!r}" for k, v in sorted(changed.items()))
        specs.append(f"strokes:preset={kind}{extra}")
    return tuple(specs)


PLACES_CROP = (
    "shorter side scaled to the size with Pillow's bicubic filter (LaMa's gen_mask_dataset), "
    "then the centred square (LaMa: a random square holding the mask)"
)
SQUARE_CROP = "square images scaled to the size with Pillow's bicubic filter (none when equal)"
LAMA_NOTES = (
    "images: LaMa samples 30,000 of the 36,500 val_large files with an unseeded random.shuffle "
    "(fetch_data/eval_sampler.py); here a fixed sample of 30,000 drawn from seed 0",
    "masks: LaMa generates them with unseeded numpy (bin/gen_mask_dataset.py, 5 variants per "
    "image, one kept below 0.5 hole share); here drawn from seed 0 per image, same distribution",
    "crop: LaMa draws masks on the scaled image and crops a random square holding them; here "
    "the centred square",
    "metrics: LaMa reports FID and LPIPS (VGG) per mask width (bin/evaluate_predicts.py, "
    "configs/eval2_gpu.yaml), its SSIM pads the window with zeros; the harness's SSIM does not",
)

register(
    Protocol(
        name="places365-512-lama",
        version=1,
        title="Places365 val, 30,000 images at 512, LaMa thin/medium/thick masks",
        source=LAMA,
        dataset="places365:sample=30000",
        split="test",
        images=30_000,
        size=512,
        crop=PLACES_CROP,
        masks=lama_masks(512),
        seed=0,
        reference_metrics=("fid", "lpips-vgg"),
        bins=TENTHS,
        notes=(
            "data: Places365-Standard val_large (fetch_data/places_standard_test_val_prepare.sh)",
            "masks: configs/data_gen/random_{thin,medium,thick}_512.yaml (README: Places 512)",
            *LAMA_NOTES,
        ),
    )
)

register(
    Protocol(
        name="places365-256-lama",
        version=1,
        title="Places365 val, 30,000 images at 256, LaMa thin/medium/thick masks",
        source=LAMA,
        dataset="places365:sample=30000",
        split="test",
        images=30_000,
        size=256,
        crop=PLACES_CROP,
        masks=lama_masks(256),
        seed=0,
        reference_metrics=("fid", "lpips-vgg"),
        bins=TENTHS,
        notes=(
            "data: the same 30,000 val_large images, scaled from high resolution as LaMa's "
            "fetch_data/places_standard_evaluation_prepare_data.sh does for its _256 masks",
            "masks: configs/data_gen/random_{thin,medium,thick}_256.yaml",
            *LAMA_NOTES,
        ),
    )
)

register(
    Protocol(
        name="celebahq-256-lama",
        version=1,
        title="CelebA-HQ, LaMa's 2,000 test images at 256, LaMa thin/medium/thick masks",
        source=LAMA,
        dataset="celebahq:subset=lama",
        split="test",
        images=2_000,
        size=256,
        crop=SQUARE_CROP,
        masks=lama_masks(256),
        seed=0,
        reference_metrics=("fid", "lpips-vgg"),
        bins=TENTHS,
        notes=(
            "data: the 2,000 files of LaMa's fetch_data/val_shuffled.flist (its visual_test "
            "split, fetch_data/celebahq_dataset_prepare.sh), LaMa's 0-based reindexing of "
            "data256x256.zip",
            "masks: configs/data_gen/random_{thin,medium,thick}_256.yaml "
            "(fetch_data/celebahq_gen_masks.sh, README table: CelebA 256)",
            LAMA_NOTES[1],
            LAMA_NOTES[3],
        ),
    )
)

register(
    Protocol(
        name="celebahq-512-mat",
        version=1,
        title="CelebA-HQ val (2,993 images) at 512, MAT's large and small masks",
        source=MAT,
        dataset="celebahq:subset=celeba-val",
        split="test",
        images=2_993,
        size=512,
        crop=SQUARE_CROP,
        masks=("comodgan:preset=mat", "comodgan:preset=mat-small"),
        seed=0,
        reference_metrics=("fid", "p-ids", "u-ids", "lpips-alex"),
        bins=NVIDIA_BINS,
        notes=(
            "data: CelebA-HQ images whose CelebA source lies in CelebA's validation partition "
            "(2,993; MAT's metrics/metric_main.py fid2993_full), read through "
            "CelebA-HQ-to-CelebA-mapping.txt",
            "masks: MAT's datasets/mask_generator_512.py (large) and mask_generator_512_small.py "
            "(small), CoModGAN's generator with fewer boxes and strokes",
            "masks: MAT ships its own mask files for CelebA-HQ-val; here they are regenerated "
            "from seed 0 with the same distribution",
            "metrics: MAT reports FID, P-IDS and U-IDS (evaluatoin/cal_fid_pids_uids.py) and "
            "LPIPS with AlexNet (evaluatoin/cal_lpips.py)",
        ),
    )
)

NVIDIA_MASKS = MaskFiles(
    name="NVIDIA irregular mask test set",
    count=12_000,
    pattern="{:05d}.png",
    side=512,
    per_bin=2_000,
    get=(
        "download the testing mask set from NVIDIA's partial-convolution inpainting page "
        "(CC BY-NC-SA 4.0, research only: never redistribute or commit it)"
    ),
)

register(
    Protocol(
        name="nvidia-irregular-places365-512",
        version=1,
        title="Places365 val, 12,000 images at 512, NVIDIA irregular test masks in six bins",
        source=PCONV,
        dataset="places365:sample=12000",
        split="test",
        images=12_000,
        size=512,
        crop=PLACES_CROP,
        masks=("folder",),
        seed=0,
        bins=NVIDIA_BINS,
        mask_files=NVIDIA_MASKS,
        reference_metrics=(),
        notes=(
            "masks: the 12,000 test masks of Liu et al. (512x512, white = hole), 2,000 per "
            "hole-ratio bin (0.01, 0.1] .. (0.5, 0.6], files 00000-01999 in the first bin and "
            "so on, half with and half without the border constraint",
            "pairing: image i gets mask file perm[i] of a permutation drawn from seed 0, so "
            "each mask is used once and any --limit covers every bin",
            "data: the first 12,000 images of the places365 30,000-image sample; the paper "
            "evaluates Places2 at 512x512 without publishing its image list",
            "metrics: the paper reports l1, PSNR, SSIM and Inception score per bin; the "
            "harness reports PSNR, SSIM and hole L1, and every table splits them by these bins",
        ),
    )
)

register(
    Protocol(
        name="cifar10-seed",
        version=1,
        title="CIFAR-10 test (10,000 images) at 32x32, the seed's lines and square masks",
        source=SEED,
        dataset="cifar10",
        split="test",
        images=10_000,
        size=32,
        crop="none: CIFAR-10 images are 32x32",
        masks=("lines", "square"),
        seed=0,
        metrics=("psnr", "ssim"),
        bins=NVIDIA_BINS,
        notes=(
            "data: the CIFAR-10 test batch; the report gave PSNR and SSIM of seven test images, "
            "the protocol takes all 10,000",
            "masks: the report's random lines (1-9 lines, 1-2 px at 32x32) and one square hole, "
            "as the lines and square families reproduce them",
        ),
    )
)
