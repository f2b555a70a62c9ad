"""``python -m benchmark train METHOD``: train a learned method and write its weights
(the work is in :mod:`benchmark.train`)."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Train a learned method with Adam and MSE, tracking SSIM, on a data set's train split with "
    "masks drawn fresh for every batch."
)


def __getattr__(name: str):  # EXAMPLES comes from the training package, loaded on use
    if name == "EXAMPLES":
        from benchmark.train import EXAMPLES

        return EXAMPLES
    raise AttributeError(name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``train``: the method, then the training options."""
    from benchmark.train import add_arguments as add_training_arguments

    parser.add_argument(
        "method", help="the model to train: a registered method that implements Trainable"
    )
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Train ``args.method`` as the options say; exit code 0 when it finished."""
    from benchmark.train import run as run_training

    return run_training(args)
