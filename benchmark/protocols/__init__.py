"""Named, versioned evaluation protocols: the settings published numbers were measured with.

``python -m benchmark list protocols`` shows them; ``run --protocol NAME[@VERSION]`` runs one.
:mod:`.base` defines :class:`Protocol` and the registry, :mod:`.builtin` the built-in protocols,
:mod:`.apply` configures a run from one, :mod:`.mask_files` checks shipped mask sets,
:mod:`.large_masks` is CoModGAN's / MAT's large-hole mask family (``comodgan``) and
:mod:`.guard` keeps evaluation images out of training.
"""

from benchmark.protocols import large_masks  # noqa: F401  (registers the ``comodgan`` masks)
from benchmark.protocols.apply import apply_protocol, protocol_identity
from benchmark.protocols.base import PROTOCOLS, MaskFiles, Protocol, resolve
from benchmark.protocols.guard import refuse_evaluation_data

__all__ = [
    "PROTOCOLS",
    "MaskFiles",
    "Protocol",
    "apply_protocol",
    "protocol_identity",
    "refuse_evaluation_data",
    "resolve",
]
