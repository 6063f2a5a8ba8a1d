"""What ``import glmm_ppl`` loads: a MAP fit needs neither PyMC, ArviZ, nutpie nor matplotlib,
and the Bayesian names are imported on first use. Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import glmm_ppl as gp

HEAVY = ("pymc", "arviz", "nutpie", "matplotlib", "bambi")


def _run(code: str, **env: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON line, returned as a dict."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_and_first_fit_leave_the_bayesian_stack_unloaded():
    code = f"""
import json, sys
heavy = {HEAVY!r}
import glmm_ppl as gp
after_import = [m for m in heavy if m in sys.modules]
fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
after_fit = [m for m in heavy if m in sys.modules]
print(json.dumps({{"import": after_import, "fit": after_fit, "loglik": fit.loglik}}))
"""
    res = _run(code)
    assert res["import"] == []
    assert res["fit"] == []
    assert res["loglik"] == pytest.approx(-374.5197, abs=1e-3)  # fm1, as in test_reference


def test_bayesian_names_are_imported_on_first_use():
    code = """
import json, sys
import glmm_ppl as gp
before = "pymc" in sys.modules
sample = gp.sample
from glmm_ppl import prior_sensitivity
import glmm_ppl.bayes, glmm_ppl.bayes.sensitivity
print(json.dumps({
    "before": before,
    "after": "pymc" in sys.modules,
    "same": sample is glmm_ppl.bayes.sample
    and prior_sensitivity is glmm_ppl.bayes.sensitivity.prior_sensitivity,
}))
"""
    assert _run(code) == {"before": False, "after": True, "same": True}


def test_every_public_name_resolves():
    missing = [name for name in gp.__all__ if not hasattr(gp, name)]
    assert missing == []
    assert dir(gp) == sorted(gp.__all__)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'glmm_ppl' has no attribute 'fit_model'"):
        gp.fit_model  # noqa: B018


@pytest.mark.parametrize(("setting", "frozen"), [(None, True), ("0", False)])
def test_long_lived_objects_leave_the_collector_unless_turned_off(setting, frozen):
    env = {} if setting is None else {"GLMM_PPL_GC_FREEZE": setting}
    code = """
import gc, json
import glmm_ppl
print(json.dumps({"frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}))
"""
    res = _run(code, **env)
    assert res["enabled"] is True  # the collector runs again after the import
    assert (res["frozen"] > 50_000) is frozen


def test_a_penalized_fit_shows_no_notice_of_arviz_about_its_own_future(tmp_path):
    # PyMC imports ArviZ, whose 0.23 announces its refactor with a FutureWarning at import
    # where its preview packages are not all installed (as after `pip install -e .` alone;
    # here arviz_plots is made unimportable), once a day (it keeps the date in the user's
    # cache, here an empty one); a user of the penalty (or of the priors) is shown nothing
    # they can act on
    code = """
import json, sys, warnings
sys.modules["arviz_plots"] = None
import glmm_ppl as gp
with warnings.catch_warnings(record=True) as caught:
    fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial",
                         penalized=True)
    import arviz
notices = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
print(json.dumps({"notices": notices, "converged": bool(fit.converged)}))
"""
    out = _run(code, XDG_CACHE_HOME=str(tmp_path))
    assert out == {"notices": [], "converged": True}
