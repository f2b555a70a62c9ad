"""The run options are declared once (``RunConfig``); the command line, the gate's TOML keys,
``run.json`` and the comparability rule all derive from that table."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from benchmark.cli import build_parser
from benchmark.commands.gate import load_config
from benchmark.errors import UsageError
from benchmark.run.config import (
    COMPARABLE_KEYS,
    OPTIONS,
    RunConfig,
    add_run_arguments,
    config_from_args,
    config_from_mapping,
    option,
)

#: A non-default value of every option, as command-line text and as the parsed value.
SAMPLES = {
    "methods": ("telea,ns", ["telea", "ns"]),
    "masks": ("lines:max_lines=3,square", ["lines:max_lines=3", "square"]),
    "protocol": ("cifar10-seed@1", "cifar10-seed@1"),
    "dataset": ("folder:photos", "folder:photos"),
    "split": ("train", "train"),
    "data_dir": ("/tmp/data", "/tmp/data"),
    "limit": ("7", 7),
    "seed": ("3", 3),
    "size": ("64", 64),
    "mask_ratio": ("0.1-0.2", (0.1, 0.2)),
    "metrics": ("psnr,lpips-alex", ["psnr", "lpips-alex"]),
    "weights_dir": ("/tmp/weights", "/tmp/weights"),
    "allow_unverified_weights": (None, True),
    "batch_size": ("5", 5),
    "workers": ("1", 1),
    "device": ("cpu", "cpu"),
    "timeout": ("2.5", 2.5),
    "max_memory": ("2G", "2G"),
    "max_pixels": ("1000000", 1_000_000),
    "verify_data": (None, True),
    "executor": ("ray", "ray"),
    "ray_address": ("auto", "auto"),
    "out": ("/tmp/run", "/tmp/run"),
    "save_images": (None, True),
    "progress": (None, False),
}


def test_every_option_has_a_sample():
    assert set(SAMPLES) == set(OPTIONS)


def _run_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["run", "--methods", "mean", "--masks", "lines", *argv])


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_each_option_reaches_the_config_from_the_command_line(name):
    text, value = SAMPLES[name]
    flag = OPTIONS[name].flag or "--" + name.replace("_", "-")
    argv = [flag] if text is None else [flag, text]
    config = config_from_args(_run_args(argv))
    assert getattr(config, name) == value
    assert getattr(RunConfig(methods=["mean"], masks=["lines"]), name) != value  # not a default


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_each_option_has_help_and_appears_in_run_help(name, capsys):
    assert OPTIONS[name].help
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    flag = OPTIONS[name].flag or "--" + name.replace("_", "-")
    assert flag in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(k for k, o in OPTIONS.items() if o.toml))
def test_each_toml_option_is_read_from_the_gate_configuration(name, tmp_path):
    text, value = SAMPLES[name]
    toml_value = {
        list: lambda v: "[" + ", ".join(f'"{x}"' for x in v) + "]",
        bool: lambda v: str(v).lower(),
        str: lambda v: f'"{v}"',
        tuple: lambda v: f'"{text}"',
    }.get(type(value), str)(value)
    body = {"methods": '["mean"]', "masks": '["lines"]', "seed": "0", name: toml_value}
    path = tmp_path / "ci.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in body.items()))
    assert getattr(load_config(path), name) == value


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_run_json_records_every_recorded_option(name):
    _, value = SAMPLES[name]
    config = RunConfig(**{"methods": ["mean"], "masks": ["lines"], name: value})
    recorded = config.to_json()
    if OPTIONS[name].recorded:
        expected = list(value) if isinstance(value, tuple) else value
        assert recorded[name] == expected
    else:
        assert name not in recorded


def test_comparable_keys_are_the_settings_that_decide_values():
    assert set(COMPARABLE_KEYS) == {"dataset", "split", "seed", "size", "mask_ratio", "protocol"}
    assert all(OPTIONS[k].role == "identity" for k in COMPARABLE_KEYS)
    assert not {"workers", "batch_size", "device", "executor", "out"} & set(COMPARABLE_KEYS)


def test_a_new_option_is_declared_in_one_place(tmp_path):
    """A field added to the table shows up on the command line, in TOML and in run.json."""
    extended = dataclasses.make_dataclass(
        "Extended",
        [("colour", "str", option("red", help="a colour", choices=("red", "blue")))],
        bases=(RunConfig,),
    )
    parser = argparse.ArgumentParser()
    add_run_arguments(parser, extended)
    args = parser.parse_args(["--methods", "mean", "--masks", "lines", "--colour", "blue"])
    assert config_from_args(args, extended).colour == "blue"
    assert "--colour" in parser.format_help() and "a colour" in parser.format_help()
    from_toml = config_from_mapping(
        {"methods": ["mean"], "masks": ["lines"], "colour": "blue"}, "test", extended
    )
    assert from_toml.colour == "blue" and from_toml.to_json()["colour"] == "blue"
    with pytest.raises(UsageError, match="unknown colour 'green'"):
        extended(methods=["m"], masks=["l"], colour="green").validate()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"workers": 0}, "--workers must be at least 1"),
        ({"seed": -1}, "--seed must be at least 0"),
        ({"limit": 0}, "--limit must be at least 1"),
        ({"timeout": -1.0}, "--timeout must be at least 0"),
        ({"timeout": float("nan")}, "--timeout must be at least 0"),
        ({"timeout": float("inf")}, "--timeout must be at least 0"),
        ({"executor": "dask"}, "unknown executor 'dask'"),
        ({"ray_address": "auto"}, "--ray-address needs --executor ray"),
    ],
)
def test_bounds_from_the_table_are_one_line_usage_errors(changes, message):
    config = RunConfig(methods=["mean"], masks=["lines"], **changes)
    with pytest.raises(UsageError, match=message) as info:
        config.validate()
    assert "\n" not in str(info.value) and info.value.exit_code == 2


@pytest.mark.parametrize(
    "body, message",
    [
        ('methods = ["mean"]\nmasks = ["lines"]\nseed = "0"\n', "seed must be a int"),
        ('methods = ["mean"]\nmasks = ["lines"]\nseed = 0\nlimit = true\n', "limit must be"),
        ('methods = ["mean"]\nmasks = ["lines"]\nseed = 0\nout = "x"\n', "unknown key(s) out"),
        ('methods = ["mean"]\nmasks = ["lines"]\nseed = 0\ntimeout = "a"\n', "timeout must be"),
    ],
)
def test_gate_toml_types_come_from_the_table(tmp_path, body, message):
    path = tmp_path / "ci.toml"
    path.write_text(body)
    with pytest.raises(UsageError, match="ci.toml") as info:
        load_config(path)
    assert message in str(info.value)
