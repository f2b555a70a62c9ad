"""inpaint-bench: a pluggable image-inpainting benchmark harness."""

__version__ = "0.1.0"
