"""Named, versioned evaluation protocols: the settings published numbers were measured with.

``python -m benchmark list protocols`` shows them; ``run --protocol NAME[@VERSION]`` runs one.
:mod:`.base` defines :class:`Protocol` and the registry, :mod:`.builtin` the built-in protocols,
:mod:`.apply` configures a run from one, :mod:`.mask_files` checks shipped mask sets and
:mod:`.guard` keeps evaluation images out of training. CoModGAN's / MAT's large-hole masks are
the built-in mask family ``comodgan`` (``masks/comodgan.py``).
"""

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
