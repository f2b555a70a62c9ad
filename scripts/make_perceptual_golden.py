"""Write tests/data/perceptual_golden.json: the reference packages' values on seeded inputs.

Run it once, in a scratch environment outside the repository that holds the reference packages
(torchvision needs the torch build it was made for; torch 2.14.1 with torchvision 0.29.1 imports
on CPU)::

    python3.11 -m venv /tmp/refvenv
    /tmp/refvenv/bin/python -m pip install torch==2.14.1 torchvision==0.29.1 lpips==0.1.4 \
        pytorch-fid==0.3.0 clean-fid==0.1.35 torch-fidelity==0.4.0 torchmetrics==1.9.0 \
        scikit-learn==1.9.1 pillow numpy scipy
    /tmp/refvenv/bin/python scripts/make_perceptual_golden.py

It writes the seeded weight files and PNG images of ``tests/perceptual_fixtures.py`` into a
temporary folder (the weights also into a temporary ``TORCH_HOME``, where torchvision and
pytorch-fid look for them; nothing is downloaded), runs

* lpips 0.1.4 ``LPIPS(net=..., model_path=<heads>)(a, b, normalize=True)`` per image pair;
* torchmetrics 1.9.0 ``multiscale_structural_similarity_index_measure(..., data_range=1.0,
  reduction="none")``;
* pytorch-fid 0.3.0 ``calculate_fid_given_paths`` on the two PNG folders, and its
  ``get_activations`` features;
* clean-fid 0.1.35 ``compute_fid(mode="clean")``, with a feature extractor that does what its
  TorchScript Inception does in that mode (``(x - 128) / 128``, then the network) with
  pytorch-fid's network on the same weights: the TorchScript file cannot be fetched here, and
  it holds the same TF graph;
* torch-fidelity 0.4.0 ``kid_features_to_metric`` on the pytorch-fid features;
* CoModGAN's P-IDS/U-IDS lines (``LinearSVC(dual=False)``) on the toy feature sets;

and stores the values with the package versions. The tests recompute everything in the
project's environment and compare.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import perceptual_fixtures as fixtures  # noqa: E402
import torch  # noqa: E402

KID_SUBSETS, KID_SUBSET_SIZE = 10, 6
PACKAGES = (
    "torch",
    "torchvision",
    "lpips",
    "pytorch-fid",
    "clean-fid",
    "torch-fidelity",
    "torchmetrics",
    "scikit-learn",
    "numpy",
    "scipy",
    "pillow",
)


def _lpips(sets: dict, weights: dict) -> dict:
    import lpips

    out = {}
    a, b = fixtures.read_images(sets["lpips_a"]), fixtures.read_images(sets["lpips_b"])
    for net in ("alex", "vgg", "squeeze"):
        heads = weights[f"{net}.pth"]
        model = lpips.LPIPS(net=net, model_path=str(heads), verbose=False)
        loaded = torch.load(heads, map_location="cpu", weights_only=True)
        own = model.state_dict()
        # lpips loads its heads with strict=False: every name must land on a head
        assert {f"lin{i}.model.1.weight" for i in range(len(model.lins))} == set(loaded)
        assert all(torch.equal(loaded[k], own[k]) for k in loaded)
        with torch.no_grad():
            out[f"lpips-{net}"] = model(a, b, normalize=True).flatten().double().tolist()
    return out


def _ms_ssim(sets: dict) -> list[float]:
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    a, b = fixtures.read_images(sets["msssim_a"]), fixtures.read_images(sets["msssim_b"])
    values = multiscale_structural_similarity_index_measure(b, a, data_range=1.0, reduction="none")
    return values.double().tolist()


def _pytorch_fid(folder: Path) -> tuple[float, np.ndarray, np.ndarray]:
    from pytorch_fid.fid_score import calculate_fid_given_paths, get_activations
    from pytorch_fid.inception import InceptionV3

    real, fake = str(folder / "fid_real"), str(folder / "fid_fake")
    value = calculate_fid_given_paths([real, fake], 50, "cpu", 2048, num_workers=0)
    model = InceptionV3([3]).eval()
    files = {name: sorted(Path(f).glob("*.png")) for name, f in (("real", real), ("fake", fake))}
    feats = {k: get_activations(v, model, 50, 2048, "cpu", 0) for k, v in files.items()}
    return float(value), feats["real"], feats["fake"]


def _clean_fid(folder: Path) -> float:
    from cleanfid import fid as cleanfid
    from pytorch_fid.inception import InceptionV3

    network = InceptionV3([3], resize_input=False, normalize_input=False).eval()

    def torchscript_clean(x: torch.Tensor) -> torch.Tensor:  # InceptionV3W.forward, clean mode
        return network((x - 128) / 128)[0].view(x.shape[0], 2048)

    return float(
        cleanfid.compute_fid(
            str(folder / "fid_real"),
            str(folder / "fid_fake"),
            mode="clean",
            custom_feat_extractor=torchscript_clean,
            device=torch.device("cpu"),
            num_workers=0,
            batch_size=8,
            verbose=False,
            use_dataparallel=False,
        )
    )


def _kid(real: np.ndarray, fake: np.ndarray) -> dict:
    from torch_fidelity.metric_kid import kid_features_to_metric

    out = kid_features_to_metric(
        torch.from_numpy(fake),
        torch.from_numpy(real),
        kid_subsets=KID_SUBSETS,
        kid_subset_size=KID_SUBSET_SIZE,
        verbose=False,
    )
    return {
        "mean": out["kernel_inception_distance_mean"],
        "std": out["kernel_inception_distance_std"],
    }


def _comodgan_ids(real: np.ndarray, fake: np.ndarray) -> dict:
    """The lines of CoModGAN's metrics/inception_discriminative_score.py, as they stand."""
    import sklearn.svm

    svm = sklearn.svm.LinearSVC(dual=False)
    svm_inputs = np.concatenate([real, fake])
    svm_targets = np.array([1] * real.shape[0] + [0] * fake.shape[0])
    svm.fit(svm_inputs, svm_targets)
    u_ids = 1 - svm.score(svm_inputs, svm_targets)
    real_outputs = svm.decision_function(real)
    fake_outputs = svm.decision_function(fake)
    p_ids = np.mean(fake_outputs > real_outputs)
    return {"p-ids": float(p_ids), "u-ids": float(u_ids)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        home = tmp_path / "torch"
        weights = fixtures.write_weights(home / "hub" / "checkpoints")
        os.environ["TORCH_HOME"] = str(home)
        torch.hub.set_dir(str(home / "hub"))
        sets = fixtures.write_images(tmp_path / "images")
        golden: dict = {"versions": {p: importlib.metadata.version(p) for p in PACKAGES}}
        golden["lpips"] = _lpips(sets, weights)
        golden["ms-ssim"] = _ms_ssim(sets)
        value, real, fake = _pytorch_fid(tmp_path / "images")
        golden["fid"] = value
        golden["fid-clean"] = _clean_fid(tmp_path / "images")
        golden["kid"] = {"subsets": KID_SUBSETS, "subset_size": KID_SUBSET_SIZE, **_kid(real, fake)}
        golden["features"] = {
            "real_sum": float(real.astype(np.float64).sum()),
            "fake_sum": float(fake.astype(np.float64).sum()),
        }
        golden["ids"] = {name: _comodgan_ids(*case) for name, case in fixtures.ids_cases().items()}
        golden["ids"]["inception"] = _comodgan_ids(real, fake)
    target = ROOT / "tests" / "data" / "perceptual_golden.json"
    target.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(json.dumps(golden, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
