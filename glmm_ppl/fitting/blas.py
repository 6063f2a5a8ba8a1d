"""How many threads the BLAS library may run during a fit.

The quadrature engines split each evaluation over their own threads, and BLAS threads
spinning beside them only slow the small products of a fit; the joint Laplace engine, whose
dense block is LAPACK's, is the exception (its ``uses_blas``).
"""

from __future__ import annotations

from functools import lru_cache

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads"]


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # inspecting the loaded libraries takes milliseconds: once


def blas_threads(engine_or_limit):
    """A context manager limiting the BLAS threads: to 1, unless ``engine_or_limit`` is an
    engine that uses BLAS (or ``None``, no limit); an integer is the limit itself.

    Examples
    --------
    >>> with blas_threads(1):
    ...     pass
    """
    limit = engine_or_limit
    if not (limit is None or isinstance(limit, int)):
        limit = None if getattr(limit, "uses_blas", False) else 1
    return _controller().limit(limits=limit, user_api="blas")
