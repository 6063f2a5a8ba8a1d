r"""Cumulative-link models for ordinal responses (proportional odds with the logit link).

A response with ``K`` ordered categories ``1 < 2 < … < K`` has

.. math::

    P(Y \le j \mid η) = F(θ_j - η), \qquad j = 1, …, K - 1,

with ``F`` the inverse link (logistic, normal or complementary log-log), thresholds
``θ_1 < … < θ_{K-1}`` and ``η = xᵀβ + zᵀb`` without an intercept (the thresholds take its
place): the sign convention of R's ``ordinal::clmm`` and ``MASS::polr``, so a positive
coefficient moves the response towards the higher categories. The thresholds are the family's
extra parameters, kept ordered by their parametrisation: the fit's ``log φ`` entries are
``θ_1`` and the logs of the increments ``θ_j − θ_{j−1}``.

The log density of category ``k`` is ``log(F(a) − F(b))`` with ``a = θ_k − η`` and
``b = θ_{k−1} − η`` (``θ_0 = −∞``, ``θ_K = ∞``), evaluated as
``log F(a) + log(1 − F(b)/F(a))`` in the lower half of the distribution and from the upper
tail, ``log(1 − F(b)) + log(1 − (1 − F(a))/(1 − F(b)))``, in the upper half: accurate in both
tails.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from scipy import special

from .base import Family

__all__ = ["cumulative"]

_MAX_CATEGORIES = 50


def _survival(link: str, x: np.ndarray) -> np.ndarray:
    """``1 − F(x)``, accurate where ``F(x)`` is near 1."""
    if link == "logit":
        return special.expit(-x)
    if link == "probit":
        return special.ndtr(-x)
    return np.exp(-np.exp(x))  # cloglog


def _threshold_name(low, high) -> str:
    return f"{low}|{high}"


class cumulative(Family):
    r"""Cumulative-link family for ordered categorical responses.

    ``P(Y ≤ j) = F(θ_j − η)``: the response is an ordered ``pandas.Categorical`` (its
    categories in order, every one observed) or integers ``m, m + 1, …, M`` (every value
    between the smallest and the largest observed). The thresholds ``θ_j`` are named
    ``"<category j>|<category j+1>"`` as R's ``clmm`` names them; the fixed effects have no
    intercept.

    Parameters
    ----------
    link : {"logit", "probit", "cloglog"}
        ``"logit"``: the proportional-odds model.

    Examples
    --------
    >>> import pandas as pd
    >>> fam = cumulative().bind_response(pd.Series([1, 2, 3, 2]), "y")
    >>> fam.phi_names, fam.categories
    (('1|2', '2|3'), ('1', '2', '3'))
    >>> probs = fam.category_probabilities(np.array([0.0]), fam.phis_of([-1.0, 1.0]))
    >>> probs.round(4)  # F(-1), F(1) - F(-1), 1 - F(1)
    array([[0.2689, 0.4621, 0.2689]])
    """

    name = "cumulative"
    links = ("logit", "probit", "cloglog")
    discrete = True
    support_min = 1
    intercept_free = True
    extra_sub_model = "thresholds"

    # ---- the response ---------------------------------------------------------------------
    def bind_response(self, y: pd.Series, column: str) -> cumulative:
        """A copy of the family with the categories of the response ``y`` (its thresholds
        named after them).

        Raises
        ------
        ValueError
            For a response that is neither an ordered categorical nor integers, a category
            with no observation, or fewer than two categories.
        """
        values = y.dropna()
        if isinstance(y.dtype, pd.CategoricalDtype):
            if not y.cat.ordered:
                raise ValueError(
                    f"cumulative: response column {column!r} is an unordered categorical; "
                    "make it ordered (e.g. df[col].cat.as_ordered(), or pd.Categorical(values, "
                    "categories=[...in order...], ordered=True))"
                )
            labels = [str(c) for c in y.cat.categories]
            seen = set(values.astype(str))
        elif pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
            numbers = values.to_numpy(dtype=float)
            bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
            if bad.any():
                raise self._not_allowed(
                    self.name, column, "integer category codes", bad, numbers
                ) from None
            lo, hi = (int(numbers.min()), int(numbers.max())) if len(numbers) else (0, 0)
            if hi - lo + 1 > _MAX_CATEGORIES:
                raise ValueError(
                    f"cumulative: response column {column!r} runs from {lo} to {hi}, "
                    f"{hi - lo + 1} categories (at most {_MAX_CATEGORIES}); is it a count?"
                )
            labels = [str(v) for v in range(lo, hi + 1)]
            seen = {str(int(v)) for v in numbers}
        else:
            raise ValueError(
                f"cumulative: response column {column!r} must be an ordered categorical or "
                f"integer category codes, got dtype {y.dtype}"
            )
        unseen = [c for c in labels if c not in seen]
        if unseen:
            raise ValueError(
                f"cumulative: response column {column!r} has no rows in categor"
                f"{'y' if len(unseen) == 1 else 'ies'} {', '.join(map(repr, unseen))} (of "
                f"{', '.join(map(repr, labels))}): its thresholds are not estimable; drop the "
                "category (e.g. .cat.remove_unused_categories()) or merge it with a neighbour"
            )
        if len(labels) < 2:
            raise ValueError(
                f"cumulative: response column {column!r} has a single category ({labels[0]!r} "
                "in every row used): there is nothing to fit"
            )
        out = copy.copy(self)
        out.categories = tuple(labels)
        out.phi_names = tuple(map(_threshold_name, labels[:-1], labels[1:]))
        return out

    def check_response(self, y: pd.Series, column: str, **data) -> np.ndarray:
        """The category codes ``1 … K`` of ``y`` (its categories' labels, or integer codes)
        as floats.

        Examples
        --------
        >>> fam = cumulative().bind_response(pd.Series(["lo", "hi"], dtype="category")
        ...                                  .cat.set_categories(["lo", "hi"], ordered=True), "y")
        >>> fam.check_response(pd.Series(["hi", "lo", "hi"]), "y")
        array([2., 1., 2.])
        """
        if not self.categories:  # the categories come from the data (bind_response)
            raise ValueError(
                "cumulative: the family's categories come from the response; fit it with "
                "mixed_model or glm, which read them"
            )
        if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
            numbers = self._numeric(y, column)
            labels = pd.Series(
                [str(int(v)) if np.isfinite(v) and v == int(v) else repr(v) for v in numbers]
            )
        else:  # the labels of an ordered categorical, or as text
            labels = y.astype(str)
        codes = pd.Categorical(labels, categories=list(self.categories)).codes
        bad = codes < 0
        if bad.any():
            raise ValueError(
                f"cumulative: response column {column!r} has {int(bad.sum())} row(s) outside the "
                f"categories {', '.join(map(repr, self.categories))} (for example "
                f"{np.asarray(labels)[bad][0]!r})"
            )
        return codes.astype(float) + 1.0

    # ---- the thresholds ------------------------------------------------------------------
    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @staticmethod
    def thresholds_of(phis) -> np.ndarray:
        """``θ_1 … θ_{K−1}`` from the extra parameters ``φ`` (``θ_1 = log φ_1``,
        ``θ_j = θ_{j−1} + φ_j``).

        Examples
        --------
        >>> cumulative.thresholds_of([1.0, 0.5, 2.0])
        array([0. , 0.5, 2.5])
        """
        phis = np.asarray(phis, dtype=float)
        return np.cumsum(np.r_[np.log(phis[:1]), phis[1:]])

    @staticmethod
    def phis_of(thresholds) -> np.ndarray:
        """The extra parameters ``φ`` of increasing thresholds (inverse of
        :meth:`thresholds_of`).

        Examples
        --------
        >>> cumulative.phis_of([0.0, 0.5, 2.5])
        array([1. , 0.5, 2. ])
        """
        t = np.asarray(thresholds, dtype=float)
        return np.r_[np.exp(t[:1]), np.diff(t)]

    def extra_coefficients(self, log_phis):
        """The thresholds with the Jacobian of ``θ`` in the fit's ``log φ`` entries."""
        log_phis = np.asarray(log_phis, dtype=float)
        phis = np.exp(log_phis)
        k = len(log_phis)
        scale = np.r_[1.0, phis[1:]]  # ∂θ_1/∂ log φ_1 = 1, ∂θ_j/∂ log φ_m = φ_m (m ≤ j)
        jacobian = np.tril(np.ones((k, k))) * scale[None, :]
        return "Thresholds", list(self.phi_names), self.coefficient_values(log_phis), jacobian

    def coefficient_values(self, log_phis):
        """The thresholds from the fit's entries ``(θ_1, log(θ_2 − θ_1), …)`` along the last
        axis (numpy or PyTensor)."""
        xp = pt if isinstance(log_phis, pt.TensorVariable) else np
        steps = xp.concatenate([log_phis[..., :1], xp.exp(log_phis[..., 1:])], axis=-1)
        return xp.cumsum(steps, axis=-1)

    def coefficient_entries(self, values) -> np.ndarray | None:
        """The fit's entries of increasing thresholds; None unless they increase."""
        t = np.asarray(values, dtype=float)
        if np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
            return None
        return np.r_[t[:1], np.log(np.diff(t))]

    def extra_theta_names(self) -> list[str]:
        """``θ_1`` by its name, then the logs of the differences of the thresholds."""
        names = list(self.phi_names)
        return names[:1] + [f"log({b} - {a})" for a, b in zip(names, names[1:], strict=False)]

    # ---- densities -----------------------------------------------------------------------
    def _twice_median(self) -> float:
        """``2 F⁻¹(½)``: ``a + b`` below it puts a category in the lower half of ``F``, where
        differences of ``F`` are accurate (those of ``1 − F`` in the upper half)."""
        return 2.0 * float(self.link.link(np.asarray(0.5)))

    def logp(self, y, eta, phis):
        K = len(phis) + 1
        link = self.link
        thresholds = [pt.log(phis[0])]
        for phi in phis[1:]:
            thresholds.append(thresholds[-1] + phi)
        # the thresholds above and below the category; outside 1 … K−1 a finite stand-in
        upper = thresholds[-1] + 1.0
        lower = thresholds[0] - 1.0
        for j in range(K - 1, 0, -1):
            upper = pt.switch(pt.eq(y, j), thresholds[j - 1], upper)
        for j in range(2, K + 1):
            lower = pt.switch(pt.eq(y, j), thresholds[j - 2], lower)
        a, b = upper - eta, lower - eta
        first, last = pt.eq(y, 1), pt.eq(y, K)
        lower_form = pt.or_(first, pt.and_(pt.neq(y, K), a + b < self._twice_median()))
        # each form with its arguments clamped where it is not used (derivatives stay finite):
        # log F(a) + log(1 − F(b)/F(a)), and log S(b) + log(1 − S(a)/S(b)) with S = 1 − F
        a_lo, b_lo = pt.switch(lower_form, a, 0.0), pt.switch(lower_form, b, -1.0)
        a_hi, b_hi = pt.switch(lower_form, 1.0, a), pt.switch(lower_form, 0.0, b)
        log_fa, log_fb = link.log_inverse_pt(a_lo), link.log_inverse_pt(b_lo)
        log_sa, log_sb = link.log1m_inverse_pt(a_hi), link.log1m_inverse_pt(b_hi)
        below = pt.switch(first, 0.0, pt.log1mexp(pt.switch(first, -1.0, log_fb - log_fa)))
        above = pt.switch(last, 0.0, pt.log1mexp(pt.switch(last, -1.0, log_sa - log_sb)))
        return pt.switch(lower_form, log_fa + below, log_sb + above)

    def category_probabilities(self, eta, phis) -> np.ndarray:
        """``P(Y = k | η)`` for ``k = 1 … K``, shape ``(N, K)`` (numpy): differences of the
        distribution function in the lower half, of its complement in the upper half."""
        eta = np.asarray(eta, dtype=float).reshape(-1)
        t = self.thresholds_of(phis)
        x = np.column_stack(
            [np.full(len(eta), -np.inf), t[None, :] - eta[:, None], np.full(len(eta), np.inf)]
        )
        a, b = x[:, 1:], x[:, :-1]
        with np.errstate(invalid="ignore"):
            lower = (a + b < self._twice_median()) | np.isneginf(b)
        cdf = self.link.inverse
        probs = np.where(
            lower, cdf(a) - cdf(b), _survival(self.link.name, b) - _survival(self.link.name, a)
        )
        return np.clip(probs, 0.0, 1.0)

    def response_mean(self, eta, phis, **data) -> np.ndarray:
        """The mean category code ``Σ_k k P(Y = k)`` (codes ``1 … K``)."""
        probs = self.category_probabilities(eta, phis)
        return (probs @ np.arange(1.0, probs.shape[1] + 1)).reshape(np.shape(eta))

    def response_variance(self, eta, phis, **data) -> np.ndarray:
        """The variance of the category code.

        Examples
        --------
        >>> fam = cumulative().bind_response(pd.Series([1, 2]), "y")
        >>> fam.response_variance(np.zeros(1), fam.phis_of([0.0]))  # a fair coin on 1, 2
        array([0.25])
        """
        probs = self.category_probabilities(eta, phis)
        k = np.arange(1.0, probs.shape[1] + 1)
        mean = probs @ k
        return (probs @ k**2 - mean**2).reshape(np.shape(eta))

    def simulate(self, eta, phis, rng):
        """Category codes ``1 … K`` drawn from their probabilities."""
        probs = self.category_probabilities(eta, phis)
        u = rng.uniform(size=(probs.shape[0], 1))
        codes = 1 + np.sum(u > np.cumsum(probs, axis=1)[:, :-1], axis=1)
        return codes.astype(float).reshape(np.shape(eta))

    def initial_phis(self, y, mu):
        """Thresholds at ``F⁻¹`` of the observed cumulative proportions."""
        y = np.asarray(y, dtype=float)
        K = self.n_categories
        cumulative_share = np.array([np.mean(y <= j) for j in range(1, K)])
        with np.errstate(all="ignore"):
            t = self.link.link(np.clip(cumulative_share, 0.01, 0.99))
        for j in range(1, len(t)):  # increasing, as the parametrisation needs
            t[j] = max(t[j], t[j - 1] + 0.05)
        return self.phis_of(t)

    def __repr__(self) -> str:
        return f"cumulative(link={self.link.name!r})"
