"""numba's disk cache of the package's kernels, renewed when any module of the package changes.

numba stamps a cached function with its own file's modification time and size only, so a
kernel compiled together with kernels of another module (the density of ``θ`` in
``log_density.py`` with the quadrature's in ``agq.py``) would keep their old code after that
module changed. The locators here stamp each kernel of the package with the times and sizes
of all the package's modules instead; numba's own choice of directory is kept
(``NUMBA_CACHE_DIR``, then ``__pycache__`` beside the module, then the user's cache).
Importing the module registers them, so it comes before any kernel is defined.
"""

from __future__ import annotations

import os

from numba.core.caching import (
    CacheImpl,
    InTreeCacheLocator,
    UserProvidedCacheLocator,
    UserWideCacheLocator,
)

__all__: list[str] = []

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def package_stamp() -> tuple:
    """``(name, modification time, size)`` of every module of the package."""
    stamps = []
    for name in sorted(os.listdir(_PACKAGE)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(_PACKAGE, name))
            stamps.append((name, st.st_mtime, st.st_size))
    return tuple(stamps)


class _PackageStamp:
    def get_source_stamp(self):
        return package_stamp()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _PACKAGE:
            return None
        return super().from_function(py_func, py_file)


class _UserProvided(_PackageStamp, UserProvidedCacheLocator):
    pass


class _InTree(_PackageStamp, InTreeCacheLocator):
    pass


class _UserWide(_PackageStamp, UserWideCacheLocator):
    pass


CacheImpl._locator_classes[:0] = [_UserProvided, _InTree, _UserWide]
