"""A run configured by a protocol: :func:`apply_protocol` and what results record of it.

``run --protocol NAME[@VERSION]`` (or ``protocol = "..."`` in the gate's TOML) sets the data set,
split, image size, seed and masks of the run from the protocol, and leaves no hole-ratio range.
An option given explicitly that says otherwise is a one-line :class:`UsageError` (exit 2); the
same value given explicitly is fine, so a recorded run's reproducing command still runs.
Selecting is allowed: ``--limit`` and a subset of the protocol's masks; the results then say the
protocol's coverage is ``partial``.

These functions take the run configuration (:class:`benchmark.run.config.RunConfig`) without
importing it: protocols sit below the run layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

from benchmark.errors import UsageError
from benchmark.protocols.base import Protocol, resolve

C = TypeVar("C")

#: Run options a protocol sets, with their command-line flags.
SET_BY_PROTOCOL = {
    "dataset": "--dataset",
    "split": "--split",
    "size": "--size",
    "seed": "--seed",
    "mask_ratio": "--mask-ratio",
}


def apply_protocol(config: C, explicit: Iterable[str] = (), where: str = "") -> C:
    """``config`` with the settings of its ``protocol`` (unchanged when it names none).

    ``explicit`` are the options the user gave (command-line flags or TOML keys); each must
    agree with the protocol. ``where`` prefixes messages (e.g. the gate's configuration file).
    """
    ref = getattr(config, "protocol", None)
    if ref is None:
        return config
    protocol = resolve(ref)
    explicit = set(explicit)
    prefix = f"{where}: " if where else ""
    wanted: dict[str, Any] = {
        "dataset": protocol.dataset,
        "split": protocol.split,
        "size": protocol.size,
        "seed": protocol.seed,
        "mask_ratio": None,
    }
    for key, value in wanted.items():
        given = getattr(config, key)
        if key in explicit and not _agrees(key, given, value):
            shown = "none" if value is None else repr(value)
            name = key if where else SET_BY_PROTOCOL[key]  # a TOML key, or a flag
            raise UsageError(
                f"{prefix}{name} {_text(given)} conflicts with protocol {protocol.ref}, which "
                f"sets {key} to {shown}; drop {name}"
            )
    masks = protocol_masks(protocol, list(config.masks) if "masks" in explicit else None, prefix)
    return dataclasses.replace(config, protocol=protocol.ref, masks=masks, **wanted)


def protocol_masks(protocol: Protocol, given: list[str] | None, prefix: str = "") -> list[str]:
    """The run's masks: the protocol's, or the subset ``given`` of them (in protocol order).

    A ``folder`` mask of the protocol takes its path from ``given`` (``folder:PATH``) and is
    checked to hold the protocol's mask files.
    """
    from benchmark.masking import MASKS
    from benchmark.registry import Spec

    templates = [MASKS.normalize(m) for m in protocol.masks]
    flag = "masks" if prefix else "--masks"  # a TOML key, or a flag
    folder_path = None
    chosen: list[Spec] = []
    for text in given or []:
        spec = MASKS.normalize(text)
        params = {k: v for k, v in spec.params if k != "path"}
        match = next(
            (t for t in templates if t.name == spec.name and dict(t.params) == params), None
        )
        if match is None or (spec.name == "folder") != ("path" in spec.kwargs):
            names = ", ".join(_shown(t) for t in templates)
            raise UsageError(
                f"{prefix}{flag} {text} conflicts with protocol {protocol.ref}, which "
                f"evaluates with {names}; drop {flag} or name a subset of these"
            )
        if spec.name == "folder":
            folder_path = spec.kwargs["path"]
        chosen.append(match)
    if not chosen:
        chosen = templates
    needs_files = any(t.name == "folder" for t in chosen)
    if needs_files and protocol.mask_files is not None:
        files = protocol.mask_files
        if folder_path is None:
            raise UsageError(
                f"{prefix}protocol {protocol.ref} evaluates with the {files.name}: give its "
                f"folder as {flag} folder:PATH ({files.get})"
            )
        from benchmark.protocols.mask_files import check_mask_files

        check_mask_files(folder_path, files)
    out = []
    for template in sorted(chosen, key=templates.index):
        if template.name == "folder":
            template = Spec(
                "folder", tuple(sorted({**template.kwargs, "path": folder_path}.items()))
            )
        out.append(str(template))
    return out


def protocol_identity(config: Any) -> dict[str, Any]:
    """What ``run.json`` and ``leaderboard.json`` record of the protocol of ``config``.

    ``protocol`` (``NAME@VERSION``), ``protocol_fingerprint`` and ``protocol_coverage``:
    ``full`` or ``partial`` (``--limit`` below the protocol's image count, or a subset of its
    masks). A configuration that does not follow its protocol (built without
    :func:`apply_protocol`) is refused, so no result is ever labelled with a protocol it broke.
    """
    from benchmark.datasets.base import dataset_spec

    protocol = resolve(config.protocol)
    broken = [
        key
        for key, value in (
            ("dataset", dataset_spec(protocol.dataset)),
            ("split", protocol.split),
            ("size", protocol.size),
            ("seed", protocol.seed),
            ("mask_ratio", None),
        )
        if (dataset_spec(config.dataset) if key == "dataset" else getattr(config, key)) != value
    ]
    masks = [_without_path(m) for m in config.masks]
    templates = [_without_path(m) for m in protocol.masks]
    if config.protocol != protocol.ref or not masks or not set(masks) <= set(templates):
        broken.append("masks" if config.protocol == protocol.ref else "protocol version")
    if broken:
        raise UsageError(
            f"the run's {', '.join(broken)} do not follow protocol {protocol.ref}: configure "
            "it with benchmark.protocols.apply_protocol (what run --protocol does)"
        )
    limited = config.limit is not None and config.limit < protocol.images
    return {
        "protocol": protocol.ref,
        "protocol_fingerprint": protocol.fingerprint(),
        "protocol_coverage": "partial" if limited or len(set(masks)) < len(templates) else "full",
    }


def _without_path(text: str) -> str:
    from benchmark.masking import MASKS
    from benchmark.registry import Spec

    spec = MASKS.normalize(text)
    return str(Spec(spec.name, tuple((k, v) for k, v in spec.params if k != "path")))


def _agrees(key: str, given: Any, wanted: Any) -> bool:
    if key == "dataset":
        from benchmark.datasets.base import dataset_spec

        return dataset_spec(given) == dataset_spec(wanted)
    if key == "mask_ratio":
        return given is None
    return bool(given == wanted and type(given) is type(wanted))


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    return str(value)


def _shown(spec: Any) -> str:
    return "folder:PATH" if spec.name == "folder" else str(spec)
