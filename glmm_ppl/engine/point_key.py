"""The disk-cache key of a built-in family's point function, known without building its graph.

PyTensor keys a compiled scalar graph by the graph itself, so a new process would have to build
and rewrite a family's graph (a second for the larger ones) only to learn where its compiled
point function is. A family of the package is instead identified by its class (module and
name), its settings (link, trials, fixed degrees of freedom, dispersion sub-model, categories…)
and the state of the package (the modification times and sizes of all its modules, which hold
every density and the code that builds the graphs), together with the versions of PyTensor and
numba and the fast-math setting that the compiled code depends on. A family written outside
the package (a subclass in a user's module, or :func:`~glmm_ppl.families.custom_family`) has
no such key: its density can change without the package changing.
"""

from __future__ import annotations

import sys
from hashlib import sha256

import numba
import pytensor

from ..families import Family
from .numba_cache import package_stamp

__all__ = ["point_cache_key"]

_PACKAGE = __name__.split(".")[0]


def _builtin(cls: type) -> bool:
    """Whether ``cls`` is a class of the package, found under its name in its module."""
    module = sys.modules.get(cls.__module__)
    return (
        cls.__module__.split(".")[0] == _PACKAGE
        and module is not None
        and getattr(module, cls.__qualname__, None) is cls
    )


def point_cache_key(family: Family, third: bool, source: str) -> str | None:
    """The key of ``family``'s compiled point function (with ``third``, that of the Laplace
    approximation's derivatives) whose wrapper is ``source``, or None for a family defined
    outside the package or holding a setting without a stable text form.

    Examples
    --------
    >>> from glmm_ppl.families import custom_family, poisson
    >>> len(point_cache_key(poisson(), False, "def point(): pass"))
    64
    >>> point_cache_key(poisson(), False, "") == point_cache_key(poisson(link="log"), False, "")
    True
    >>> point_cache_key(custom_family("mine", lambda y, eta, phis: -eta), False, "") is None
    True
    """
    cls = type(family)
    if not _builtin(cls):
        return None
    settings = repr(sorted((name, repr(value)) for name, value in vars(family).items()))
    if " at 0x" in settings:  # an object known by its address: not the same in a new process
        return None
    identity = (
        f"{cls.__module__}.{cls.__qualname__}\n{settings}\nthird={third}\n{source}\n"
        f"{package_stamp()}\npytensor {pytensor.__version__}\nnumba {numba.__version__}\n"
        f"fastmath {pytensor.config.numba__fastmath}"
    )
    return sha256(identity.encode()).hexdigest()
