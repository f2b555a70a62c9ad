"""``onnx:path=FILE`` and ``torchscript:path=FILE``: exported models as benchmark methods.

I/O convention of the exported model (both formats):

* input ``image``: ``float32 (N, 3, H, W)`` RGB, hole pixels 0 (after the range mapping);
* input ``mask``: ``float32 (N, 1, H, W)``, 1 = hole, 0 = known;
* output: ``(N, 3, H, W)`` RGB in the model's range (the first output when there are several).

Options: ``range=0-1|-1-1|0-255`` is the model's pixel scale (inputs are mapped to it, outputs
mapped back to [0, 1] and clamped; a non-finite output value, NaN or ±inf, fails its image);
``multiple=K`` pads image and mask (replicate, centred) to a multiple of ``K`` and crops the
output back; ``batch=B`` images per call bounds memory; ``inputs=img+mask`` names the two
inputs when the model uses other names (``+``, since commas separate parameters). Outputs far
outside the declared range (e.g. 0-255 values with ``range=0-1``) fail the batch with a hint.
The fingerprint is the file's SHA-256, so a replaced file is never mixed with old records.

**Trust.** An ONNX model is data: onnxruntime runs its graph of tensor operators, and ONNX
has no operator that opens a file. A
TorchScript archive is **code**: its ``code/`` entries are TorchScript programs that run with
your user's rights, and TorchScript has operators that read and write files
(``aten::from_file``, ``aten::save``) and can call any operator library loaded in the process.
:func:`check_torchscript_code` refuses archives whose code or graphs use such operators,
before and after loading, but a scan cannot prove a program harmless: run TorchScript only
from people you trust, and ask for ONNX from anyone else.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.errors import ContractError, DataError, UsageError
from benchmark.method import METHODS, Method

#: ``range=`` values: (scale, offset) with ``model value = scale * x + offset`` for x in [0, 1].
RANGES: dict[str, tuple[float, float]] = {"0-1": (1.0, 0.0), "-1-1": (2.0, -1.0), "0-255": (255, 0)}
#: Outputs mapped back to [0, 1] farther than this outside it mean a wrong ``range=``.
RANGE_SLACK = 0.5
EXPECTED = "inputs image float32 (N,3,H,W) and mask float32 (N,1,H,W), output (N,3,H,W)"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Replicate-pad ``x`` (N, C, H, W) centred to multiples of ``multiple``; ``(top, left)``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return x, (0, 0)
    top, left = pad_h // 2, pad_w // 2
    widths = ((0, 0), (0, 0), (top, pad_h - top), (left, pad_w - left))
    return np.pad(x, widths, mode="edge"), (top, left)


class ExportedModel(Method):
    """Shared batching, padding and range mapping of exported models (see module docstring)."""

    device = "auto"
    kind = ""
    #: Built only from a user's file: ``--methods all`` and parameter-free contract tests skip it.
    requires_path = True

    def __init__(
        self,
        path: str | None = None,
        range: str = "0-1",
        multiple: int = 1,
        batch: int = 64,
        inputs: str = "image+mask",
    ) -> None:
        if not path:
            raise ValueError(f"needs the model file: {self.kind}:path=FILE")
        if str(range) not in RANGES:
            raise ValueError(f"range must be one of {', '.join(RANGES)}, got {range!r}")
        for option, value in (("multiple", multiple), ("batch", batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be an integer >= 1, got {value!r}")
        names = [n.strip() for n in str(inputs).split("+")]
        if len(names) != 2 or not all(names) or names[0] == names[1]:
            raise ValueError(
                f"inputs must name the image and mask inputs as img+mask, got {inputs!r}"
            )
        self.path = Path(str(path)).expanduser()
        if not self.path.is_file():
            raise DataError(f"{self.kind} model {str(path)!r} does not exist")
        self.range = str(range)
        self.multiple = multiple
        self.batch = batch
        self.inputs = tuple(names)
        self.sha256 = file_sha256(self.path)

    def fingerprint(self) -> str:
        return f"sha256:{self.sha256[:16]}"

    def describe_mismatch(self, declared: str) -> UsageError:
        return UsageError(
            f"{self.kind} model {str(self.path)!r} does not fit the I/O convention: expected "
            f"{EXPECTED} (inputs named {'+'.join(self.inputs)}); the file declares {declared}"
        )

    def run_model(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The model's raw output for one chunk (inputs already mapped and padded)."""
        raise NotImplementedError

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Pre- and post-processing in NumPy, single-threaded: torch's OpenMP workers spin after
        # each parallel op and took a third of the CPU from onnxruntime's own threads.
        scale, offset = RANGES[self.range]
        all_images = masked.detach().to("cpu", torch.float32).numpy()
        all_holes = mask.detach().to("cpu").numpy().astype(np.float32)
        outputs = []
        for start in range(0, len(all_images), self.batch):
            hole = all_holes[start : start + self.batch]
            image = (all_images[start : start + self.batch] * scale + offset) * (1 - hole)
            height, width = image.shape[-2:]  # holes are 0 on the model's own scale
            image, (top, left) = pad_to_multiple(image, self.multiple)
            hole, _ = pad_to_multiple(hole, self.multiple)
            raw = np.asarray(self.run_model(image, hole))
            if (
                raw.ndim != 4
                or raw.shape[:2] != (len(image), 3)
                or raw.shape[2:] != image.shape[2:]
            ):
                raise ContractError(
                    f"{self.kind} model output has shape {tuple(raw.shape)}, expected "
                    f"{(len(image), 3, *image.shape[2:])}"
                )
            out = raw[..., top : top + height, left : left + width].astype(np.float32) - offset
            out /= scale
            finite_mask = np.isfinite(out)
            finite = out[finite_mask]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
                raise ContractError(
                    f"{self.kind} model output spans [{low * scale + offset:.4g}, "
                    f"{high * scale + offset:.4g}], outside its declared range={self.range}; "
                    f"set range= to the model's pixel scale ({'|'.join(RANGES)})"
                )
            np.clip(out, 0, 1, out=out)
            # NaN and ±inf become NaN, never a clamped 0 or 1: the harness fails those images
            out[~finite_mask] = np.nan
            outputs.append(out)
        if not outputs:
            return masked.new_zeros(masked.shape)
        return torch.from_numpy(np.concatenate(outputs)).to(masked.device)


@METHODS.register("onnx")
class OnnxMethod(ExportedModel):
    """An ONNX model run by onnxruntime (CUDA when available): onnx:path=FILE[,range=-1-1]."""

    kind = "onnx"

    def __init__(
        self,
        path: str | None = None,
        range: str = "0-1",
        multiple: int = 1,
        batch: int = 64,
        inputs: str = "image+mask",
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError(
                'onnx: needs onnxruntime, an optional extra: pip install "inpaint-bench[onnx]"'
            ) from None
        super().__init__(path, range, multiple, batch, inputs)
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: load failures are reported by our one line
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"onnx model {str(self.path)!r} cannot be loaded: {first}") from None
        self.provider = self.session.get_providers()[0]
        self.ort_version = ort.__version__
        self._check_signature()

    def _check_signature(self) -> None:
        declared_inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        declared = (
            "inputs "
            + ", ".join(f"{i.name} {i.type} {i.shape}" for i in declared_inputs)
            + "; outputs "
            + ", ".join(f"{o.name} {o.type} {o.shape}" for o in outputs)
        )
        by_name = {i.name: i for i in declared_inputs}
        if len(declared_inputs) != 2 or set(by_name) != set(self.inputs) or not outputs:
            raise self.describe_mismatch(declared)
        for name, channels in zip(self.inputs, (3, 1)):
            arg = by_name[name]
            if arg.type != "tensor(float)" or not _fits(arg.shape, channels):
                raise self.describe_mismatch(declared)
        if outputs[0].type != "tensor(float)" or not _fits(outputs[0].shape, 3):
            raise self.describe_mismatch(declared)
        shape = by_name[self.inputs[0]].shape
        # a fixed batch size (often 1) sets the chunk size; a fixed image size is checked per call
        self._fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        if self._fixed_batch:
            self.batch = self._fixed_batch
        self._fixed_size = tuple(shape[2:]) if all(isinstance(d, int) for d in shape[2:]) else None

    def fingerprint(self) -> str:
        return f"{super().fingerprint()}; onnxruntime {self.ort_version} {self.provider}"

    def run_model(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._fixed_size and tuple(image.shape[2:]) != self._fixed_size:
            height, width = self._fixed_size
            raise ContractError(
                f"onnx model {str(self.path)!r} takes {width}x{height} images only, got "
                f"{image.shape[3]}x{image.shape[2]} (run the benchmark at --size {height} or "
                "export the model with dynamic height and width)"
            )
        count = len(image)
        if self._fixed_batch and count < self._fixed_batch:
            # the last, smaller chunk of a fixed-batch model: fill it up with copies, drop them
            extra = self._fixed_batch - count
            image = np.concatenate([image, np.repeat(image[-1:], extra, 0)])
            mask = np.concatenate([mask, np.repeat(mask[-1:], extra, 0)])
        (output, *_) = self.session.run(None, {self.inputs[0]: image, self.inputs[1]: mask})
        return output[:count]


def _fits(shape: list[Any], channels: int) -> bool:
    """An ONNX shape (ints or symbolic names) of rank 4 whose channel axis can be ``channels``."""
    return len(shape) == 4 and (not isinstance(shape[1], int) or shape[1] == channels)


def check_torchscript_archive(path: Path) -> None:
    """Raise DataError unless ``path`` is a TorchScript zip archive (checked before loading).

    A TorchScript file is a zip with one top folder holding ``data.pkl``, ``constants.pkl`` and
    ``code/``; ``torch.save`` archives (plain pickles of Python objects) have no ``constants.pkl``
    or ``code/`` and are refused here, so nothing in them is ever unpickled.
    """
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"torchscript model {str(path)!r} is not a TorchScript archive (not a zip file; "
            "write it with torch.jit.save, not torch.save or pickle)"
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    top = next(iter(tops)) if len(tops) == 1 else None
    needed = [f"{top}/data.pkl", f"{top}/constants.pkl"]
    if (
        top is None
        or not all(n in names for n in needed)
        or not any(n.startswith(f"{top}/code/") for n in names)
    ):
        raise DataError(
            f"torchscript model {str(path)!r} is not a TorchScript archive (no constants.pkl and "
            "code/: a torch.save file?); write it with torch.jit.save"
        )


#: Operators of TorchScript that read or write files.
FILE_OPERATORS = frozenset({"aten::from_file", "aten::save", "aten::load"})
#: Operator namespaces of PyTorch itself; an operator of another library (loaded into the
#: process by some import) may do anything, file access included.
CORE_NAMESPACES = frozenset({"aten", "prim", "quantized", "profiler"})
#: What the scan of an archive's code looks for: file operators by their Python names, any
#: ``torch.ops.<namespace>`` outside the core, and the built-in ``open``.
_CODE_PATTERNS = (
    (re.compile(r"\bfrom_file\b"), "torch.from_file (reads any file)"),
    (re.compile(r"\btorch\.(?:save|load)\s*\("), "torch.save / torch.load (writes or reads files)"),
    (re.compile(r"\bops\.aten\.(?:save|load)\b"), "aten::save / aten::load (file operators)"),
    (re.compile(r"(?<![\w.])open\s*\("), "open() (file access)"),
)
_OPS_NAMESPACE = re.compile(r"\bops\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)")
#: Most bytes of code read from an archive before the scan gives up (and refuses it).
MAX_CODE_BYTES = 256 << 20


def scan_code(text: str) -> str | None:
    """What makes TorchScript source ``text`` unsafe to run (one finding), or None."""
    for pattern, what in _CODE_PATTERNS:
        if pattern.search(text):
            return what
    for namespace, name in _OPS_NAMESPACE.findall(text):
        if namespace not in CORE_NAMESPACES:
            return f"operator {namespace}::{name} from outside PyTorch's core (it may access files)"
    return None


def check_torchscript_code(path: Path) -> None:
    """Raise DataError when the ``code/`` entries of TorchScript archive ``path`` use a file
    operator (before anything in it is loaded; loading runs ``__setstate__`` code)."""
    with zipfile.ZipFile(path) as archive:
        entries = [
            info
            for info in archive.infolist()
            if "/code/" in f"/{info.filename}" and info.filename.endswith(".py")
        ]
        if sum(info.file_size for info in entries) > MAX_CODE_BYTES:
            raise DataError(
                f"torchscript model {str(path)!r}: its code is larger than {MAX_CODE_BYTES >> 20} "
                "MiB and cannot be checked for file access; export the model to ONNX"
            )
        for info in entries:
            text = archive.read(info).decode("utf-8", "replace")
            found = scan_code(text)
            if found is not None:
                raise DataError(
                    f"torchscript model {str(path)!r} is refused: its code "
                    f"({info.filename}) uses {found}; a TorchScript archive is a program, and "
                    "this one can touch files: export the model to ONNX, which cannot"
                )


def graph_operators(module: Any) -> set[str]:
    """Every operator kind in the graphs of every method of ``module`` and its submodules
    (nested blocks included)."""
    kinds: set[str] = set()
    for _, sub in module.named_modules():
        for name in sub._c._method_names():
            pending = list(sub._c._get_method(name).graph.nodes())
            while pending:
                node = pending.pop()
                kinds.add(node.kind())
                for block in node.blocks():
                    pending.extend(block.nodes())
    return kinds


def check_torchscript_graph(module: Any, path: Path) -> None:
    """Raise DataError when a loaded module's graphs use a file operator or an operator from
    outside PyTorch's core (the check after loading, on what will actually run)."""
    kinds = graph_operators(module)
    bad = sorted(
        kind
        for kind in kinds
        if kind in FILE_OPERATORS or kind.partition("::")[0] not in CORE_NAMESPACES
    )
    if bad:
        raise DataError(
            f"torchscript model {str(path)!r} is refused: its graph uses {', '.join(bad[:3])} "
            "(file access, or an operator from outside PyTorch's core); a TorchScript archive "
            "is a program: export the model to ONNX"
        )


@METHODS.register("torchscript")
class TorchScriptMethod(ExportedModel):
    """A TorchScript module on the harness device: torchscript:path=FILE[,multiple=16]."""

    kind = "torchscript"

    def __init__(
        self,
        path: str | None = None,
        range: str = "0-1",
        multiple: int = 1,
        batch: int = 64,
        inputs: str = "image+mask",
    ) -> None:
        super().__init__(path, range, multiple, batch, inputs)
        check_torchscript_archive(self.path)
        check_torchscript_code(self.path)
        try:
            self.module = torch.jit.load(str(self.path), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError subclasses with long C++ traces
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"torchscript model {str(self.path)!r} cannot be loaded: {first}"
            ) from None
        check_torchscript_graph(self.module, self.path)
        self.module.eval()
        self._check_signature()
        self._device = torch.device("cpu")

    def _check_signature(self) -> None:
        try:
            arguments = [a.name for a in self.module.forward.schema.arguments][1:]  # minus self
        except (AttributeError, RuntimeError):
            raise self.describe_mismatch("no forward method") from None
        if len(arguments) != 2:
            raise self.describe_mismatch(f"forward({', '.join(arguments)})")
        self._keywords = tuple(self.inputs) if set(self.inputs) == set(arguments) else None
        if self._keywords is None and self.inputs != ("image", "mask"):
            raise self.describe_mismatch(f"forward({', '.join(arguments)})")

    def to(self, device: torch.device | str) -> TorchScriptMethod:
        self._device = torch.device(device)
        self.module.to(self._device)
        return self

    @torch.inference_mode()
    def run_model(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        image_t = torch.from_numpy(image).to(self._device)
        mask_t = torch.from_numpy(mask).to(self._device)
        if self._keywords:
            output = self.module(**{self._keywords[0]: image_t, self._keywords[1]: mask_t})
        else:
            output = self.module(image_t, mask_t)
        if isinstance(output, (tuple, list)) and output:
            output = output[0]
        if not isinstance(output, torch.Tensor):
            raise ContractError(
                f"torchscript model returned {type(output).__name__}, expected a tensor"
            )
        return output.detach().float().cpu().numpy()
