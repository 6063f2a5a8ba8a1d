"""Families written by users: a log density in PyTensor is all a family needs.

Either subclass :class:`~glmm_ppl.families.Family` (set ``name``, ``links``, ``phi_names``;
write ``logp``, optionally ``check_response``, ``simulate``, ``initial_phis``), or call
:func:`custom_family` with the log density as a function. Derivatives for the fit, standard
errors and everything else come from PyTensor's automatic differentiation of ``logp``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .base import Family
from .links import LINKS

__all__ = ["custom_family"]


def custom_family(
    name: str,
    logp: Callable,
    *,
    link: str = "identity",
    phi_names: Sequence[str] = (),
    zero_part: bool = False,
    simulate: Callable | None = None,
    initial_phis: Callable | None = None,
) -> Family:
    """A family from its log density.

    Parameters
    ----------
    name : str
        Shown in summaries and error messages.
    logp : callable
        ``logp(y, eta, phis)`` (or ``logp(y, eta, phis, eta_zi)`` with ``zero_part=True``):
        the elementwise log density as a PyTensor expression; ``eta`` is the linear predictor
        (the link is the user's to apply, e.g. ``pt.exp(eta)`` for a log link) and ``phis`` the
        extra parameters on their natural (positive) scale.
    link : str
        Name of the link ``eta = g(mean)``: used for starting values and by ``mean``
        (``"identity"``, ``"log"``, ``"logit"``, ``"probit"`` or ``"cloglog"``).
    phi_names : sequence of str
        Names of the extra parameters (estimated on the log scale).
    zero_part : bool
        Whether the density has a zero part with its own linear predictor ``eta_zi``.
    simulate : callable, optional
        ``simulate(eta, phis, rng)`` (numpy), to simulate from fitted models.
    initial_phis : callable, optional
        ``initial_phis(y, mu)`` → starting values of the extra parameters (all 1 otherwise).

    Returns
    -------
    Family

    Examples
    --------
    A generalized Poisson distribution (Consul's, with dispersion ``φ``: mean ``μ``, variance
    ``μ(1 + φμ)²``):

    >>> import pytensor.tensor as pt
    >>> def gen_poisson_logp(y, eta, phis):
    ...     mu, phi = pt.exp(eta), phis[0]
    ...     a = 1.0 + phi * y
    ...     return (y * (eta - pt.log1p(phi * mu)) + (y - 1.0) * pt.log(a)
    ...             - pt.gammaln(y + 1.0) - mu * a / (1.0 + phi * mu))
    >>> fam = custom_family("generalized_poisson", gen_poisson_logp, link="log",
    ...                     phi_names=["phi"])
    >>> fam
    generalized_poisson(link='log')
    >>> round(float(fam.logp(pt.as_tensor(0.0), pt.as_tensor(0.0), [0.0]).eval()), 6)
    -1.0
    """
    if not callable(logp):
        raise TypeError(f"logp must be a function of (y, eta, phis), got {type(logp).__name__}")
    if link not in LINKS:
        raise ValueError(f"unknown link {link!r}; valid links: {', '.join(LINKS)}")
    if isinstance(phi_names, str):
        phi_names = (phi_names,)
    attributes = {
        "name": str(name),
        "links": (link,),
        "phi_names": tuple(str(n) for n in phi_names),
        "zero_part": bool(zero_part),
        "logp": lambda self, y, eta, phis, **data: logp(y, eta, phis, *data.values()),
        "__doc__": f"User-written family {name!r}.",
    }
    if simulate is not None:
        attributes["simulate"] = lambda self, eta, phis, rng, **data: simulate(
            eta, phis, rng, *data.values()
        )
    if initial_phis is not None:
        attributes["initial_phis"] = lambda self, y, mu: initial_phis(y, mu)
    return type(str(name), (Family,), attributes)()
