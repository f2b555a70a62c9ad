"""Set metrics from Inception pool3 features: FID, KID, P-IDS and U-IDS.

All take feature matrices ``(n, d)`` (torch tensors or NumPy arrays, one row per image) of the
real images and of the method's results, as :func:`benchmark.perceptual.inception.features`
returns them, and compute in float64.

* :func:`fid` (lower is better): ``|mu_r - mu_f|^2 + tr(S_r) + tr(S_f) - 2 tr((S_r S_f)^1/2)``
  with ``np.cov`` covariances (n - 1), pytorch-fid's ``calculate_frechet_distance`` (and
  clean-fid's ``frechet_distance``) convention. The trace of the square root is taken exactly as
  the nuclear norm of ``F_r F_f^T`` for any factors ``S = F^T F``: no ``sqrtm``, no ``eps``
  retry, well defined when the covariances are singular (n <= d).
* :func:`kid` (lower is better): torch-fidelity 0.4.0's KID, the unbiased MMD^2 with the
  polynomial kernel ``(x.y / d + 1)^3`` averaged over ``subsets`` random subsets of
  ``subset_size`` images from each set (NumPy ``RandomState(seed)``; fakes drawn first, as
  torch-fidelity draws its ``input1``), returned as ``(mean, std)``.
* :func:`ids` (higher is better, at most 0.5 for P-IDS): CoModGAN's P-IDS and U-IDS, from a
  scikit-learn ``LinearSVC(dual=False)`` (every other setting at its default) fitted to tell
  reals (label 1) from fakes (label 0): U-IDS is its misclassification rate on those points,
  P-IDS the share of pairs whose fake gets a higher decision value than its own real.

>>> square = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
>>> round(fid(square, square + 1), 9)  # same covariance: only the means differ
2.0
>>> ids(square, square + 10)  # separable sets: no fake passes for real
(0.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.errors import UsageError

#: torch-fidelity's KID defaults
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020


def _array(features: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """``features`` as a 2-D NumPy array, refusing anything else with a clear message."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    array = np.asarray(features)
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(
            f"{name}: expected an (n, d) feature matrix with n >= 2, got shape {array.shape}"
        )
    return array


@dataclass(frozen=True)
class Statistics:
    """Mean, covariance (float64) and size of a feature set; ``factor`` F has ``F^T F = sigma``."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    factor: np.ndarray

    @classmethod
    def of(cls, features: torch.Tensor | np.ndarray) -> Statistics:
        """The statistics of ``(n, d)`` features (``np.cov`` convention, n - 1)."""
        x = _array(features, "statistics").astype(np.float64)
        n, d = x.shape
        mu = x.mean(0)
        centred = x - mu
        sigma = np.cov(x, rowvar=False)
        factor = centred / np.sqrt(n - 1) if n <= d else psd_sqrt(sigma)
        return cls(mu, sigma, n, factor)

    @classmethod
    def from_moments(cls, mu: np.ndarray, sigma: np.ndarray, n: int = 0) -> Statistics:
        """Statistics from a stored mean and covariance (the factor is the PSD square root)."""
        sigma = np.asarray(sigma, dtype=np.float64)
        return cls(np.asarray(mu, dtype=np.float64), sigma, n, psd_sqrt(sigma))


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigh, clamped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(a: Statistics, b: Statistics) -> float:
    """``tr((S_a S_b)^1/2)``: the sum of the singular values of ``F_a F_b^T``."""
    return float(np.linalg.svd(a.factor @ b.factor.T, compute_uv=False).sum())


def frechet_distance(a: Statistics, b: Statistics) -> float:
    """The Fréchet distance between two Gaussians given by their statistics."""
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"fid: feature sizes differ ({a.mu.shape[0]} and {b.mu.shape[0]})")
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt_product(a, b))


def fid(
    real: torch.Tensor | np.ndarray | Statistics, fake: torch.Tensor | np.ndarray | Statistics
) -> float:
    """FID between two feature sets (or their :class:`Statistics`), pytorch-fid's convention."""
    a = real if isinstance(real, Statistics) else Statistics.of(real)
    b = fake if isinstance(fake, Statistics) else Statistics.of(fake)
    return frechet_distance(a, b)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """torch-fidelity's ``mmd2(..., 'unbiased')`` with the cubic polynomial kernel, gamma 1/d."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    off_xx = k_xx.sum() - np.trace(k_xx)
    off_yy = k_yy.sum() - np.trace(k_yy)
    return float((off_xx + off_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kid(
    fake: torch.Tensor | np.ndarray,
    real: torch.Tensor | np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = KID_SEED,
) -> tuple[float, float]:
    """KID ``(mean, std)`` over ``subsets`` subsets, as torch-fidelity 0.4.0 computes it.

    Raises :class:`UsageError` when a set holds fewer images than ``subset_size`` (torch-fidelity
    refuses these too); pass a smaller ``subset_size`` for small sets.
    """
    x_all = _array(fake, "kid").astype(np.float64)
    y_all = _array(real, "kid").astype(np.float64)
    if x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"kid: feature sizes differ ({x_all.shape[1]} and {y_all.shape[1]})")
    if subset_size < 2 or subsets < 1:
        raise UsageError(
            f"kid: subset size must be >= 2 and subsets >= 1, got {subset_size} and {subsets}"
        )
    if min(len(x_all), len(y_all)) < subset_size:
        raise UsageError(
            f"kid: subset size {subset_size} is larger than a set ({len(x_all)} fakes, "
            f"{len(y_all)} reals); pass a smaller subset size"
        )
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = x_all[rng.choice(len(x_all), subset_size, replace=False)]
        y = y_all[rng.choice(len(y_all), subset_size, replace=False)]
        values[i] = _mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


def ids(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray) -> tuple[float, float]:
    """``(p_ids, u_ids)`` of paired feature sets: row ``i`` of ``fake`` completes real image ``i``.

    CoModGAN's ``metrics/inception_discriminative_score.py`` (also MAT's): scikit-learn's
    ``LinearSVC(dual=False)`` on the reals (label 1) and fakes (label 0).
    """
    from sklearn.svm import LinearSVC  # optional dependency, only for these two metrics

    real_array = _array(real, "ids")
    fake_array = _array(fake, "ids")
    if real_array.shape != fake_array.shape:
        raise ValueError(
            f"ids: reals and fakes must be paired, got shapes {real_array.shape} and "
            f"{fake_array.shape}"
        )
    inputs = np.concatenate([real_array, fake_array])
    targets = np.array([1] * len(real_array) + [0] * len(fake_array))
    svm = LinearSVC(dual=False)
    svm.fit(inputs, targets)
    u_ids = 1 - svm.score(inputs, targets)
    p_ids = np.mean(svm.decision_function(fake_array) > svm.decision_function(real_array))
    return float(p_ids), float(u_ids)
