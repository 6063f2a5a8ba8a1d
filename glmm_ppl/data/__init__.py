"""The data sets bundled with the package (GLMMadaptive's basics vignette)."""

from .datasets import load_vignette

__all__ = ["load_vignette"]
