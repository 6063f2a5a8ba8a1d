"""numba's disk cache of the package's kernels, renewed when any module of the package changes.

numba stamps a cached function with its own file's modification time and size only, so a
kernel compiled together with kernels of another module (the density of ``θ`` in
``engine/log_density.py`` with the quadrature's in ``engine/agq.py``) would keep their old
code after that module changed. The locators here stamp each kernel of the package with the
times and sizes of all the package's modules instead; numba's own choice of directory is kept
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

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def package_stamp() -> tuple:
    """``(path, modification time, size)`` of every module of the package, subpackages
    included."""
    stamps = []
    for folder, dirs, names in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                st = os.stat(path)
                stamps.append((os.path.relpath(path, _PACKAGE), st.st_mtime, st.st_size))
    return tuple(stamps)


class _PackageStamp:
    def get_source_stamp(self):
        return package_stamp()

    @classmethod
    def from_function(cls, py_func, py_file):
        if not os.path.abspath(py_file).startswith(_PACKAGE + os.sep):
            return None
        return super().from_function(py_func, py_file)


class _UserProvided(_PackageStamp, UserProvidedCacheLocator):
    pass


class _InTree(_PackageStamp, InTreeCacheLocator):
    pass


class _UserWide(_PackageStamp, UserWideCacheLocator):
    pass


CacheImpl._locator_classes[:0] = [_UserProvided, _InTree, _UserWide]
