"""Data sets: the protocol, the registry and the built-in loaders."""

from benchmark.datasets.base import DATASETS, Dataset, TensorDataset, build_dataset

__all__ = ["DATASETS", "Dataset", "TensorDataset", "build_dataset"]
