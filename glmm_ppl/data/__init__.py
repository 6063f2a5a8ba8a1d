"""The data sets bundled with the package (GLMMadaptive's basics vignette; pupils in classes in
schools)."""

from .datasets import load_schools, load_vignette

__all__ = ["load_schools", "load_vignette"]
