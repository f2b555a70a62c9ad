"""Perceptual and distribution metrics, each equal to a named reference implementation.

Per image: LPIPS (:mod:`.lpips`), MS-SSIM (:mod:`.ms_ssim`). Per set, from Inception pool3
features (:mod:`.inception`): FID, KID, P-IDS/U-IDS (:mod:`.fid`). Weight files are looked up,
checked and loaded by :mod:`.weights`. The backbones are plain torch: no torchvision needed.

This module imports nothing heavy: :data:`PERCEPTUAL_METRICS` describes every metric for
``list metrics`` without importing torch.
"""

from __future__ import annotations

#: name -> description: ``direction`` ("lower" or "higher" is better), ``kind`` ("image": one value
#: per image; "set": one value per (method, mask) table), ``variant`` (what it computes),
#: ``reference`` (the package and version it equals), ``weights`` (reference file names),
#: ``function`` (``module:attribute`` that computes it) and ``aliases``.
PERCEPTUAL_METRICS: dict[str, dict[str, object]] = {
    "lpips-alex": {
        "direction": "lower",
        "kind": "image",
        "variant": "LPIPS v0.1, AlexNet trunk, inputs scaled to [-1, 1], spatial average",
        "reference": "lpips 0.1.4 (LPIPS(net='alex', version='0.1'), normalize=True)",
        "weights": ("alexnet-owt-7be5be79.pth", "alex.pth"),
        "function": "benchmark.perceptual.lpips:lpips",
        "aliases": ("lpips",),
    },
    "lpips-vgg": {
        "direction": "lower",
        "kind": "image",
        "variant": "LPIPS v0.1, VGG16 trunk, inputs scaled to [-1, 1], spatial average",
        "reference": "lpips 0.1.4 (LPIPS(net='vgg', version='0.1'), normalize=True)",
        "weights": ("vgg16-397923af.pth", "vgg.pth"),
        "function": "benchmark.perceptual.lpips:lpips",
        "aliases": (),
    },
    "lpips-squeeze": {
        "direction": "lower",
        "kind": "image",
        "variant": "LPIPS v0.1, SqueezeNet 1.1 trunk, inputs scaled to [-1, 1], spatial average",
        "reference": "lpips 0.1.4 (LPIPS(net='squeeze', version='0.1'), normalize=True)",
        "weights": ("squeezenet1_1-b8a52dc0.pth", "squeeze.pth"),
        "function": "benchmark.perceptual.lpips:lpips",
        "aliases": (),
    },
    "ms-ssim": {
        "direction": "higher",
        "kind": "image",
        "variant": "5 scales, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), Gaussian 11x11 "
        "sigma 1.5, reflect padding, relu, data range 1; images >= 176 px",
        "reference": "torchmetrics 1.9.0 (multiscale_structural_similarity_index_measure, "
        "defaults, data_range=1.0)",
        "weights": (),
        "function": "benchmark.perceptual.ms_ssim:ms_ssim",
        "aliases": (),
    },
    "fid": {
        "direction": "lower",
        "kind": "set",
        "variant": "pytorch-fid: FID Inception pool3 (2048-d), bilinear resize to 299, 2x-1, "
        "float64 Frechet distance",
        "reference": "pytorch-fid 0.3.0 (calculate_frechet_distance)",
        "weights": ("pt_inception-2015-12-05-6726825d.pth",),
        "function": "benchmark.perceptual.fid:fid",
        "aliases": (),
    },
    "fid-clean": {
        "direction": "lower",
        "kind": "set",
        "variant": "clean-fid mode 'clean': PIL bicubic resize to 299 in float, (x-128)/128, "
        "FID Inception pool3, float64 Frechet distance",
        "reference": "clean-fid 0.1.35 (compute_fid, mode='clean')",
        "weights": ("pt_inception-2015-12-05-6726825d.pth",),
        "function": "benchmark.perceptual.fid:fid",
        "aliases": (),
    },
    "kid": {
        "direction": "lower",
        "kind": "set",
        "variant": "unbiased MMD^2, polynomial kernel (x.y/d + 1)^3, 100 subsets of 1000, seed "
        "2020, mean and std; on the 'fid' (pytorch-fid) features",
        "reference": "torch-fidelity 0.4.0 (kid_features_to_metric)",
        "weights": ("pt_inception-2015-12-05-6726825d.pth",),
        "function": "benchmark.perceptual.fid:kid",
        "aliases": (),
    },
    "p-ids": {
        "direction": "higher",
        "kind": "set",
        "variant": "paired IDS: share of pairs whose fake scores above its real under "
        "LinearSVC(dual=False); on the 'fid' features; at most 0.5 in practice",
        "reference": "CoModGAN / MAT metrics/inception_discriminative_score.py, "
        "scikit-learn LinearSVC",
        "weights": ("pt_inception-2015-12-05-6726825d.pth",),
        "function": "benchmark.perceptual.fid:ids",
        "aliases": (),
    },
    "u-ids": {
        "direction": "higher",
        "kind": "set",
        "variant": "unpaired IDS: misclassification rate of LinearSVC(dual=False) on reals and "
        "fakes; on the 'fid' features",
        "reference": "CoModGAN / MAT metrics/inception_discriminative_score.py, "
        "scikit-learn LinearSVC",
        "weights": ("pt_inception-2015-12-05-6726825d.pth",),
        "function": "benchmark.perceptual.fid:ids",
        "aliases": (),
    },
}

#: alias -> canonical name (``lpips`` -> ``lpips-alex``), as the lpips package names them.
ALIASES: dict[str, str] = {
    alias: name
    for name, info in PERCEPTUAL_METRICS.items()
    for alias in tuple(info.get("aliases") or ())  # type: ignore[arg-type]
}


def canonical_name(name: str) -> str:
    """``name`` with a perceptual metric's alias resolved; any other name unchanged.

    >>> canonical_name("lpips"), canonical_name("psnr")
    ('lpips-alex', 'psnr')
    """
    return ALIASES.get(name, name)
