"""The family base class.

Notation: ``y`` is the response, ``η`` the linear predictor (fixed plus random part plus offset),
``μ = g⁻¹(η)`` the conditional mean and ``φ`` the family's extra parameters (dispersion, shape…),
estimated on the log scale. Zero-inflated and hurdle families have a second linear predictor
``η_zi`` (logit link) for the probability of the zero part. Some families read more data per row
than ``y``: the number of trials of a binomial response, or a censoring indicator.

A family is declared by its PyTensor log density ``logp(y, η, φ, **data)``, evaluated
elementwise, where ``data`` holds ``eta_zi`` (zero-part families) and the per-row columns named
by :attr:`Family.aux_names`. Every derivative the fit needs (with respect to ``η``, ``η_zi``
and ``φ``) comes from PyTensor's automatic differentiation of that density.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .links import Link, get_link

__all__ = ["Family", "PHI_MAX", "PHI_MIN"]

#: Range of the starting values of dimensionless extra parameters (sizes, shapes, precisions)
#: that the families' moment estimates are clipped to.
PHI_MIN, PHI_MAX = 1e-3, 1e3


class Family:
    """Base class of the distributions of ``y`` given the random effects.

    Subclasses set ``name``, ``links`` (the allowed link names) and ``phi_names`` (names of the
    extra parameters, empty for none), and implement ``logp``, ``check_response`` and
    ``simulate``. ``initial_phis`` may be overridden for better starting values.

    Class attributes that describe the data a family reads:

    ``zero_part``
        True for zero-inflated and hurdle families: ``logp`` receives ``eta_zi``, the linear
        predictor of the zero part (logit link).
    ``trials``
        ``"never"``, ``"optional"`` or ``"required"``: whether the response may (or must) be a
        number of successes out of a ``trials`` column; ``logp`` then receives ``trials``.
    ``data_names``
        Other per-row columns ``logp`` receives by name (e.g. ``("censoring",)``).
    ``discrete``
        Whether the response takes integer values (counts, successes, 0/1): then its
        predictive distribution can be tabulated, e.g. for scoring rules.

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
    zero_part: bool = False
    trials: str = "never"
    data_names: tuple[str, ...] = ()
    discrete: bool = False
    #: Columns of the dispersion sub-model's design (``disp_fixed``), empty without one: the
    #: first extra parameter is then ``exp(x_dᵀγ)`` per row, and ``phis`` are the ``exp(γ_k)``.
    disp_names: tuple[str, ...] = ()
    #: Whether each row's log density is multiplied by its weight (``row_weights``).
    row_weighted: bool = False
    #: The labels of an ordinal response's categories, in order (empty for other families).
    categories: tuple[str, ...] = ()
    #: The smallest value of a discrete response (category codes start at 1).
    support_min: int = 0
    #: Whether the fixed effects go without an intercept (thresholds take its place).
    intercept_free: bool = False

    def __init__(self, link: str | Link | None = None):
        self.link = get_link(self.links[0] if link is None else link, self.links)
        self.with_trials = self.trials == "required"

    # ---- to implement -------------------------------------------------------------------
    def logp(self, y, eta, phis: Sequence, **data):
        """Elementwise log density of ``y`` given ``η`` (PyTensor).

        ``data`` holds ``eta_zi`` for zero-part families and the columns named by
        :attr:`aux_names`.
        """
        raise NotImplementedError

    def bind_response(self, y: pd.Series, column: str) -> Family:
        """The family as the response ``y`` needs it (e.g. with its categories); ``self`` by
        default. Called before :meth:`check_response`.

        Examples
        --------
        >>> from glmm_ppl.families import cumulative, poisson
        >>> poisson().bind_response(pd.Series([0, 3]), "y")
        poisson(link='log')
        >>> cumulative().bind_response(pd.Series([1, 3, 2]), "y").phi_names
        ('1|2', '2|3')
        """
        return self

    def check_response(self, y: pd.Series, column: str, **data) -> np.ndarray:
        """Validate the response and return it as floats; errors name ``column``.

        ``data`` holds the per-row columns of :attr:`aux_names` as arrays (already checked).
        """
        values = self._numeric(y, column)
        bad = ~np.isfinite(values)
        if bad.any():
            raise self._not_allowed(self.name, column, "finite numbers", bad, values)
        return values

    def check_data(self, name: str, values: np.ndarray, column: str) -> None:
        """Validate the per-row column ``name`` of :attr:`aux_names` (numeric already); errors
        name ``column``, the data frame's column. Nothing to check by default."""

    def simulate(self, eta: np.ndarray, phis: np.ndarray, rng: np.random.Generator, **data):
        """Draw responses given the linear predictor(s) (``data`` as in :meth:`logp`, numpy)."""
        raise NotImplementedError(f"the {self.name} family has no simulator")

    # ---- defaults ----------------------------------------------------------------------
    @property
    def n_phis(self) -> int:
        """Number of extra parameters."""
        return len(self.phi_names)

    @property
    def n_eta(self) -> int:
        """Number of linear predictors: 2 with a zero part, else 1."""
        return 2 if self.zero_part else 1

    @property
    def aux_names(self) -> tuple[str, ...]:
        """Per-row data columns besides ``y`` that :meth:`logp` reads, in order."""
        return (
            (("trials",) if self.with_trials else ())
            + tuple(self.data_names)
            + tuple(f"disp:{name}" for name in self.disp_names)
            + (("row_weight",) if self.row_weighted else ())
        )

    def row_logp(self, y, eta, phis: Sequence, **data):
        """The log density the engines use (PyTensor): :meth:`logp` with the dispersion
        sub-model's extra parameter per row and times the row's weight, when the model has
        them. ``data`` holds every column of :attr:`aux_names` (and ``eta_zi``).

        Examples
        --------
        >>> import pytensor.tensor as pt
        >>> from glmm_ppl.families import poisson
        >>> fam = poisson().with_row_weights()
        >>> w = pt.as_tensor(3.0)
        >>> lp = fam.row_logp(pt.as_tensor(2.0), pt.as_tensor(0.0), [], row_weight=w)
        >>> round(float(lp.eval()), 6)  # 3 log Poisson(2; 1)
        -5.079442
        """
        import pytensor.tensor as pt

        data = dict(data)
        weight = data.pop("row_weight", None)
        lp = self.logp(y, eta, self._row_phis(phis, data, pt), **data)
        return lp if weight is None else weight * lp

    @property
    def extra_sub_model(self) -> str | None:
        """The ``sub_model`` name under which :meth:`extra_coefficients` are reported
        (``fit.fixef(sub_model=...)``), or None."""
        return "dispersion" if self.disp_names else None

    def extra_coefficients(self, log_phis: np.ndarray):
        """The extra parameters reported as a table of coefficients, or None when they are
        reported on their natural scale (``exp`` of ``θ``'s entries).

        Returns ``(title, names, values, jacobian)``: the table's title, the names and values
        of its rows and ``∂ values / ∂ log φ`` (for their standard errors by the delta
        method). A dispersion sub-model reports its coefficients on the log scale.
        """
        if not self.disp_names:
            return None
        base = type(self).phi_names[0]
        log_phis = np.asarray(log_phis, dtype=float)
        return (
            f"Dispersion sub-model (log {base})",
            list(self.disp_names),
            self.coefficient_values(log_phis).copy(),
            np.eye(len(log_phis)),
        )

    def coefficient_values(self, log_phis):
        """The values :meth:`extra_coefficients` reports, from the fit's extra entries of
        ``θ`` along their last axis (numpy or PyTensor): a dispersion sub-model's coefficients
        are those entries.

        Examples
        --------
        >>> from glmm_ppl.families import gaussian
        >>> gaussian().with_dispersion(["(Intercept)", "grpb"]).coefficient_values(np.r_[0.1, 2.0])
        array([0.1, 2. ])
        """
        return log_phis

    def coefficient_entries(self, values) -> np.ndarray | None:
        """The fit's extra entries of ``θ`` whose :meth:`coefficient_values` are ``values``,
        or None where no parameters give them.

        Examples
        --------
        >>> from glmm_ppl.families import gaussian
        >>> gaussian().with_dispersion(["(Intercept)"]).coefficient_entries([-0.5]).tolist()
        [-0.5]
        """
        return np.asarray(values, dtype=float)

    def extra_theta_names(self) -> list[str]:
        """Names of the fit's extra entries of ``θ``: ``log(<name>)`` of a parameter reported
        on its natural scale, the names of coefficients (:attr:`extra_sub_model`) as they
        are.

        Examples
        --------
        >>> from glmm_ppl.families import gaussian
        >>> gaussian().extra_theta_names()
        ['log(sigma)']
        """
        if self.extra_sub_model:
            return list(self.phi_names)
        return [f"log({name})" for name in self.phi_names]

    def row_parts(self, phis, data: dict) -> tuple[list, dict]:
        """``(phis, data)`` as :meth:`simulate`, :meth:`response_mean` and
        :meth:`response_variance` take them (numpy): with a dispersion sub-model its extra
        parameter per row, ``exp(x_dᵀγ)``; the sub-model's columns and the row weights are
        taken out of ``data``.

        Examples
        --------
        >>> from glmm_ppl.families import gaussian
        >>> fam = gaussian().with_dispersion(["(Intercept)", "grpb"])
        >>> data = {"disp:(Intercept)": np.ones(2), "disp:grpb": np.array([0.0, 1.0])}
        >>> phis, rest = fam.row_parts(np.exp([0.0, np.log(2.0)]), data)
        >>> phis[0].tolist(), rest  # sigma 1 in group a, 2 in group b
        ([1.0, 2.0], {})
        """
        data = {k: v for k, v in data.items() if k != "row_weight"}
        return self._row_phis(phis, data, np), data

    def _row_phis(self, phis, data: dict, xp) -> list:
        """The extra parameters of each row, numpy (``xp=np``) or PyTensor (``xp=pt``): with a
        dispersion sub-model ``exp(Σ_k x_k log φ_k)`` from its columns, which are taken out
        of ``data``; else ``phis`` as they are."""
        if not self.disp_names:
            return list(phis)
        columns = [data.pop(f"disp:{name}") for name in self.disp_names]
        log_phi = sum(x * xp.log(phi) for x, phi in zip(columns, phis, strict=True))
        return [xp.exp(log_phi)]

    def using_trials(self) -> Family:
        """A copy of this family whose response counts successes out of ``trials``.

        Raises
        ------
        ValueError
            For a family whose response cannot have trials.
        """
        if self.trials == "never":
            raise ValueError(
                f"the {self.name} family does not take trials; families that do: binomial, "
                "zi_binomial, beta_binomial"
            )
        out = copy.copy(self)
        out.with_trials = True
        return out

    def with_dispersion(self, names: Sequence[str]) -> Family:
        """A copy of this family whose extra parameter follows a log-linear sub-model.

        Row ``j`` has ``log φ_j = x_jᵀγ`` with ``x_j`` the row's columns ``names`` of the
        dispersion design (``disp_fixed``); the fit's extra parameters are the coefficients
        ``γ``, named ``disp_<column>``.

        Parameters
        ----------
        names : sequence of str
            The dispersion design's column names (``"(Intercept)"``, ``"grpb"``…).

        Raises
        ------
        ValueError
            For a family without exactly one extra parameter, or one whose extra parameters
            already are a sub-model's coefficients.

        Examples
        --------
        >>> from glmm_ppl.families import gaussian
        >>> fam = gaussian().with_dispersion(["(Intercept)", "grpb"])
        >>> fam.phi_names, fam.aux_names
        (('disp_(Intercept)', 'disp_grpb'), ('disp:(Intercept)', 'disp:grpb'))
        """
        names = tuple(str(n) for n in names)
        if self.disp_names or self.extra_sub_model is not None:
            raise ValueError(
                f"disp_fixed: the {self.name} family's extra parameters are already the "
                f"coefficients of its {self.extra_sub_model} sub-model"
            )
        if self.n_phis != 1:
            what = (
                "no extra parameter (dispersion, size, precision or shape)"
                if self.n_phis == 0
                else f"{self.n_phis} extra parameters ({', '.join(self.phi_names)}); a "
                "dispersion sub-model models a single one"
            )
            raise ValueError(
                f"disp_fixed: the {self.name} family has {what}, so there is no dispersion to model"
            )
        if not names:
            raise ValueError("disp_fixed: the dispersion design has no columns")
        out = copy.copy(self)
        out.disp_names = names
        out.phi_names = tuple(f"disp_{n}" for n in names)
        return out

    def without_dispersion(self) -> Family:
        """This family without its dispersion sub-model (the family itself without one).

        Examples
        --------
        >>> from glmm_ppl.families import gaussian
        >>> gaussian().with_dispersion(["(Intercept)", "grpb"]).without_dispersion() == gaussian()
        True
        """
        if not self.disp_names:
            return self
        out = copy.copy(self)
        del out.disp_names, out.phi_names  # the class's come back
        return out

    def with_row_weights(self, weighted: bool = True) -> Family:
        """A copy of this family whose log density is multiplied by each row's weight.

        The copy's :attr:`aux_names` end with ``"row_weight"``: the model's data then carry
        one weight per row, which :meth:`row_logp` multiplies the log density by.

        Parameters
        ----------
        weighted : bool
            False gives the copy without row weights.

        Examples
        --------
        >>> from glmm_ppl.families import poisson
        >>> fam = poisson().with_row_weights()
        >>> fam.aux_names, fam.with_row_weights(False).aux_names
        (('row_weight',), ())
        >>> fam == poisson(), fam.with_row_weights(False) == poisson()
        (False, True)
        """
        out = copy.copy(self)
        if weighted:
            out.row_weighted = True
        else:
            vars(out).pop("row_weighted", None)  # the class's default, False
        return out

    def initial_phis(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Starting values of the extra parameters (natural scale) given a fitted mean."""
        return np.ones(self.n_phis)

    def mean(self, eta: np.ndarray) -> np.ndarray:
        """Inverse link ``g⁻¹(η)`` of the main part (numpy)."""
        return self.link.inverse(eta)

    def response_mean(self, eta, phis, **data) -> np.ndarray:
        """``E[y | η, φ]`` (numpy): ``g⁻¹(η)``, times the trials for a count of successes.

        Zero-inflated and hurdle families include the zero part (``data["eta_zi"]``) and the
        truncation; for censored data it is the mean of the uncensored response.
        """
        mu = self.mean(np.asarray(eta, dtype=float))
        return mu * data["trials"] if self.with_trials and "trials" in data else mu

    def response_variance(self, eta, phis, **data) -> np.ndarray:
        """``Var[y | η, φ]`` (numpy), with the same arguments as :meth:`response_mean`.

        Parameters
        ----------
        eta : array_like
            The linear predictor ``η`` (fixed plus random part plus offset).
        phis : array_like
            The family's extra parameters on their natural scale (empty for none).
        **data
            ``eta_zi`` for zero-inflated and hurdle families and the per-row columns of
            :attr:`aux_names` (``trials``…), broadcastable against ``eta``.

        Returns
        -------
        ndarray
            The conditional variance of the response, elementwise: of the count of successes
            for a response with trials, of the mixture with the zero part for zero-inflated
            and hurdle families, of the uncensored response for censored data.

        Raises
        ------
        NotImplementedError
            For a family that does not define it (the base class, user-written families).

        Examples
        --------
        >>> from glmm_ppl.families import binomial, negative_binomial
        >>> float(binomial().using_trials().response_variance(0.0, [], trials=10.0))  # 10 · ½ · ½
        2.5
        >>> negative_binomial().response_variance(np.log([1.0, 2.0]), [4.0])  # μ + μ²/θ
        array([1.25, 3.  ])
        """
        raise NotImplementedError(f"the {self.name} family has no response variance")

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

    # ---- helpers for response checks -----------------------------------------------------
    def _numeric(self, y: pd.Series, column: str) -> np.ndarray:
        """``y`` as floats; a non-numeric column is refused naming the family and column."""
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise ValueError(
                f"{self.name}: response column {column!r} must be numeric, got dtype {y.dtype}"
            )
        return y.to_numpy(dtype=float)

    def _counts(self, y: pd.Series, column: str) -> np.ndarray:
        """``y`` as non-negative integer counts, or an error naming the rows."""
        values = self._numeric(y, column)
        bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
        if bad.any():
            raise self._not_allowed(self.name, column, "non-negative integer counts", bad, values)
        return values

    def _require(self, values: np.ndarray, bad: np.ndarray, column: str, what: str) -> np.ndarray:
        """``values`` unless ``bad`` marks rows, which are then reported."""
        bad = bad | ~np.isfinite(values)
        if bad.any():
            raise self._not_allowed(self.name, column, what, bad, values)
        return values

    @staticmethod
    def _not_allowed(name: str, column: str, what: str, bad: np.ndarray, values) -> ValueError:
        example = values[bad][0]
        example = f"{example:g}" if isinstance(example, (float, np.floating)) else repr(example)
        return ValueError(
            f"{name}: response column {column!r} must be {what}; {int(bad.sum())} row(s) are not "
            f"(for example {example})"
        )
