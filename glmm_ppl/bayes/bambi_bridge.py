"""The same model in bambi: its formula, priors and family, and the two posteriors compared."""

from __future__ import annotations

import re
import warnings

import arviz as az
import numpy as np
import pandas as pd

from .compare import compare_map_mcmc
from .variables import posterior_coords

__all__ = ["bambi_model", "compare_with_bambi"]


_BAMBI_FAMILIES = {
    "binomial": ("bernoulli", {}),
    "poisson": ("poisson", {}),
    "negative_binomial": ("negativebinomial", {"size": "alpha"}),
    "gaussian": ("gaussian", {"sigma": "sigma"}),
    "gamma": ("gamma", {"shape": "alpha"}),
    "beta": ("beta", {"precision": "kappa"}),
}


def _identifier(name: str) -> str:
    """A design-column name as a formula variable: ``sexfemale:time`` → ``sexfemale_time``."""
    out = re.sub(r"\W+", "_", str(name)).strip("_") or "x"
    return "x_" + out if out[0].isdigit() else out


def bambi_model(fit):
    """The fit's model as a ``bambi.Model`` (bambi's default priors), built from the fit's own
    design arrays, and the bambi names of the fixed effects, standard deviations and extra
    parameters in the order of the fit's."""
    d, family = fit.design, fit.family
    if family.name not in _BAMBI_FAMILIES:
        raise NotImplementedError(
            f"no bambi counterpart of the {family.name} family here; compare_with_bambi "
            f"supports {', '.join(_BAMBI_FAMILIES)}"
        )
    if d.weights is not None:
        raise NotImplementedError("bambi has no group weights: refit without weights")
    if family.row_weighted:
        raise NotImplementedError(
            "compare_with_bambi builds bambi's model without weights, and this fit has row "
            "weights: refit without row_weights"
        )
    if family.disp_names:
        raise NotImplementedError(
            "compare_with_bambi builds bambi's model with one extra parameter, and this fit "
            "has a dispersion sub-model (disp_fixed): refit without it"
        )
    if d.nested:
        names = ", ".join(repr(f.name) for f in d.factors)
        raise NotImplementedError(
            f"compare_with_bambi builds bambi's model of one grouping factor; this fit has "
            f"several ({names})"
        )
    try:
        import bambi as bmb
    except ImportError:
        raise ImportError(
            "compare_with_bambi needs bambi: pip install 'glmm_ppl[bambi]' (or pip install bambi)"
        ) from None
    bambi_family, extra = _BAMBI_FAMILIES[family.name]
    columns: dict[str, np.ndarray] = {}

    def column(name: str, values) -> str:
        base = key = _identifier(name)
        k = 1
        while key in columns and not np.array_equal(columns[key], values):
            k += 1
            key = f"{base}_{k}"
        columns[key] = np.asarray(values)
        return key

    response, aux_columns = d.specs["response"]
    y = column(response, d.y)
    lhs = y
    if family.with_trials:
        bambi_family = "binomial"
        trials_column, form = aux_columns["trials"]
        n = d.aux[:, family.aux_names.index("trials")]
        lhs = f"p({y}, {column('trials' if form == 'cbind' else trials_column, n)})"
    group = column(
        d.group_name, np.asarray(d.groups)[np.repeat(np.arange(d.n_groups), np.diff(d.starts))]
    )

    def terms(names, matrix):
        has_one = names[0] == "(Intercept)" and np.all(matrix[:, 0] == 1.0)
        out = ["1" if has_one else "0"]
        out += [column(n, matrix[:, k]) for k, n in enumerate(names) if k or not has_one]
        return out

    fixed = terms(d.fixed_names, d.X)
    random = terms(d.random_names[: d.q_main], d.Z)
    rhs = " + ".join(fixed)
    if d.offset is not None and np.any(d.offset[:, 0] != 0):
        rhs += f" + offset({column('eta_offset', d.offset[:, 0])})"
    formula = f"{lhs} ~ {rhs} + ({' + '.join(random)} | {group})"
    data = pd.DataFrame(columns)
    link = family.link.name
    model = bmb.Model(formula, data, family=bambi_family, link=link)
    names = {
        "beta": ["Intercept" if t == "1" else t for t in fixed if t != "0"],
        "sd": [f"{t}|{group}_sigma" for t in random if t != "0"],
        "phi": [extra[n] for n in family.phi_names],
    }
    return model, names


def compare_with_bambi(
    fit,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    random_seed=None,
    hdi_prob: float = 0.94,
    **kwargs,
) -> pd.DataFrame:
    """The fit's MAP estimates beside bambi's posterior of the same model (latent, NUTS).

    bambi fits ``response ~ fixed terms + (random terms | group)`` built from the fit's own
    design columns (so both use the same ``X``, ``Z``, trials and offset, whatever coding the
    formula used; the bambi formula is in ``table.attrs["bambi_formula"]``). Families:
    binomial (bambi's ``"bernoulli"`` for a 0/1 response, ``"binomial"`` with trials),
    poisson, negative_binomial (``"negativebinomial"``, size = bambi's ``alpha``), gaussian,
    gamma (shape = ``alpha``) and beta (precision = ``kappa``), with the fit's link.

    Priors differ: bambi has no flat priors, so its model uses **bambi's default priors**
    (weakly informative normal priors scaled to the data on the fixed effects, half-normal on
    the random-effect standard deviations), not the fit's (flat unless ``priors`` or
    ``penalized`` were given; those are not carried over). With data that dominate the prior
    the fixed effects agree within Monte Carlo error; standard deviations have a right-skewed
    posterior whose mean sits above the mode. bambi's random effects of one group are
    independent (no correlation parameter), so for a full ``D`` only the standard deviations
    are compared, and they come from a different model. Group weights and zero-part families
    have no bambi counterpart.

    Parameters
    ----------
    fit : MixedModelFit
    draws, tune, chains, random_seed
        Passed to ``bambi.Model.fit`` (NUTS by PyMC); so are other keyword arguments.
    hdi_prob : float
        Probability of the highest-density intervals.

    Returns
    -------
    pandas.DataFrame
        As :func:`compare_map_mcmc` (``MAP``, ``MAP_se``, bambi's posterior ``mean``, ``sd``,
        HDI, ``r_hat``, ``ess_bulk``, ``z``), one row per fixed effect, standard deviation and
        extra parameter, plus the ``bambi`` name of each.

    Raises
    ------
    ImportError
        Without bambi (``pip install 'glmm_ppl[bambi]'``).
    NotImplementedError
        For a family bambi does not have here, group weights, or several grouping factors.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> table = compare_with_bambi(fm1, draws=500, random_seed=1)  # doctest: +SKIP
    >>> table.attrs["bambi_formula"]  # doctest: +SKIP
    'y ~ 1 + time + (1 | id)'
    """
    model, names = bambi_model(fit)
    d = fit.design
    if not d.diagonal and d.q > 1:
        warnings.warn(
            "bambi's random effects are independent (no correlations): its standard deviations "
            "come from a model with a diagonal D",
            UserWarning,
            stacklevel=2,
        )
    if fit.priors is not None or fit.penalty is not None:
        warnings.warn(
            "the fit's priors and penalty are not carried over: bambi uses its default priors",
            UserWarning,
            stacklevel=2,
        )
    idata = model.fit(draws=draws, tune=tune, chains=chains, random_seed=random_seed, **kwargs)
    post = idata.posterior

    def stack(vars_: list[str]) -> np.ndarray:
        return np.stack([np.asarray(post[v]) for v in vars_], axis=-1)

    posterior = {"beta": stack(names["beta"]), "sd": stack(names["sd"])}
    dims = {"beta": ["fixed"], "sd": ["random"]}
    if names["phi"]:
        posterior["phi"] = stack(names["phi"])
        dims["phi"] = ["extra"]
    coords = {k: v for k, v in posterior_coords(fit).items() if k in ("fixed", "random", "extra")}
    ours = az.from_dict(posterior=posterior, coords=coords, dims=dims)
    table = compare_map_mcmc(fit, ours, hdi_prob=hdi_prob)
    table.insert(0, "bambi", names["beta"] + names["sd"] + names["phi"])
    table.attrs["bambi_formula"] = getattr(model.formula, "main", str(model.formula))
    return table
