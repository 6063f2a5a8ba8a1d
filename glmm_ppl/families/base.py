"""The family base class.

Notation: ``y`` is the response, ``η`` the linear predictor (fixed plus random part plus offset),
``μ = g⁻¹(η)`` the conditional mean and ``φ`` the family's extra parameters (dispersion, shape…),
estimated on the log scale. A family is declared by its PyTensor log density
``logp(y, η, φ)``, evaluated elementwise; every derivative the fit needs (with respect to ``η``
and ``φ``) comes from PyTensor's automatic differentiation of that density.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .links import Link, get_link

__all__ = ["Family"]


class Family:
    """Base class of the distributions of ``y`` given the random effects.

    Subclasses set ``name``, ``links`` (the allowed link names) and ``phi_names`` (names of the
    extra parameters, empty for none), and implement :meth:`logp`, :meth:`check_response` and
    :meth:`simulate`. :meth:`initial_phis` may be overridden for better starting values.

    Parameters
    ----------
    link : str or Link, optional
        The link function; the first of ``links`` by default.

    Examples
    --------
    A family is used through its log density, written in PyTensor:

    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families import poisson
    >>> fam = poisson()
    >>> float(fam.logp(pt.as_tensor(2.0), pt.as_tensor(0.0), []).eval()).__round__(6)
    -1.693147
    """

    name: str = "family"
    links: tuple[str, ...] = ()
    phi_names: tuple[str, ...] = ()

    def __init__(self, link: str | Link | None = None):
        self.link = get_link(self.links[0] if link is None else link, self.links)

    # ---- to implement -------------------------------------------------------------------
    def logp(self, y, eta, phis: Sequence):
        """Elementwise log density of ``y`` given ``η`` (PyTensor)."""
        raise NotImplementedError

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        """Validate the response and return it as floats; errors name ``column``."""
        raise NotImplementedError

    def simulate(self, eta: np.ndarray, phis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw responses given the linear predictor."""
        raise NotImplementedError

    # ---- defaults ----------------------------------------------------------------------
    @property
    def n_phis(self) -> int:
        """Number of extra parameters."""
        return len(self.phi_names)

    def initial_phis(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Starting values of the extra parameters (natural scale) given a fitted mean."""
        return np.ones(self.n_phis)

    def mean(self, eta: np.ndarray) -> np.ndarray:
        """Conditional mean ``μ = g⁻¹(η)`` (numpy)."""
        return self.link.inverse(eta)

    def __repr__(self) -> str:
        return f"{self.name}(link={self.link.name!r})"

    def _key(self) -> tuple:
        """What identifies a family: its class and every setting it holds (compiled
        derivatives are cached by it)."""
        return (type(self), tuple(sorted((k, repr(v)) for k, v in vars(self).items())))

    def __eq__(self, other) -> bool:
        return isinstance(other, Family) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @staticmethod
    def _not_allowed(name: str, column: str, what: str, bad: np.ndarray, values) -> ValueError:
        example = values[bad][0]
        example = f"{example:g}" if isinstance(example, (float, np.floating)) else repr(example)
        return ValueError(
            f"{name}: response column {column!r} must be {what}; {int(bad.sum())} row(s) are not "
            f"(for example {example})"
        )
