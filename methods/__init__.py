"""Built-in inpainting methods: importing this package registers them in ``METHODS``.

Add a method by writing ``methods/<name>.py`` with a ``@METHODS.register("<name>")`` class and
appending its module to the import list below.
"""

from methods import (
    biharmonic,
    diffusers_inpaint,
    diffusion,
    exported,
    floors,
    opencv,
    pconv,
    predictions,
    repaint,
    tv,
    unet,
    xphoto,
)

__all__ = [
    "biharmonic",
    "diffusers_inpaint",
    "diffusion",
    "exported",
    "floors",
    "opencv",
    "pconv",
    "predictions",
    "repaint",
    "tv",
    "unet",
    "xphoto",
]
