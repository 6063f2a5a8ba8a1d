"""The layout of the parameter vector ``θ = (β, γ, θ_D, log φ)``: its blocks and their names."""

from __future__ import annotations

from dataclasses import dataclass

from .covariance import n_theta

__all__ = ["Layout"]


@dataclass(frozen=True)
class Layout:
    """Where the blocks of ``θ`` sit and what they are called.

    Examples
    --------
    >>> lay = Layout(("(Intercept)", "time"), (), ("(Intercept)", "time"), False, ())
    >>> lay.p, lay.q, lay.n_theta_D
    (2, 2, 3)
    """

    fixed_names: tuple[str, ...]
    zi_names: tuple[str, ...]
    random_names: tuple[str, ...]
    diagonal: bool
    phi_names: tuple[str, ...]

    @property
    def p(self) -> int:
        return len(self.fixed_names)

    @property
    def q(self) -> int:
        return len(self.random_names)

    @property
    def n_theta_D(self) -> int:
        return n_theta(self.q, self.diagonal)
