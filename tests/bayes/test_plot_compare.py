"""The forest plots of a MAP fit beside a posterior (glmm_ppl.bayes.compare.plot_compare)."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from _figures import drawn_texts, texts_outside

import glmm_ppl as gp  # noqa: E402
from glmm_ppl.bayes.compare import plot_compare  # noqa: E402


@pytest.fixture(scope="module")
def fit_and_draws(binary):
    fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", binary, "binomial")
    return fit, fit.to_inference_data(draws=300, seed=1)


def test_one_panel_per_variable_with_readable_labels(fit_and_draws):
    fit, idata = fit_and_draws
    axes = plot_compare(fit, idata)
    fig = axes[0].figure
    try:
        fig.canvas.draw()
        assert isinstance(axes, np.ndarray) and axes.shape == (2,)
        assert len(fig.axes) == 2
        assert fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
        beta, sd = axes
        assert beta.get_title() == "Fixed effects (beta), 94.0% HDI"
        assert sd.get_title() == "Random-effect SDs (sd), 94.0% HDI"
        assert sorted(t.get_text() for t in beta.get_yticklabels()) == sorted(
            ["(Intercept)", "sexfemale", "time", "sexfemale:time"]
        )
        assert [t.get_text() for t in sd.get_yticklabels()] == ["(Intercept)"]
        # each panel has its own scale: the SD panel does not reach the intercept's -2
        assert sd.get_xlim()[0] > 0.5 and beta.get_xlim()[0] < -2
        (legend,) = fig.legends
        assert [t.get_text() for t in legend.get_texts()] == ["MAP", "MCMC"]
        assert beta.get_legend() is None and sd.get_legend() is None
        texts = [*legend.get_texts(), *drawn_texts(axes)]
        assert len(texts) > 8 and texts_outside(fig, texts) == []
        lb = legend.get_window_extent(fig.canvas.get_renderer())
        assert fig.bbox.x0 <= lb.x0 and lb.x1 <= fig.bbox.x1 and lb.y1 <= fig.bbox.y1
    finally:
        plt.close(fig)


def test_figsize_hdi_prob_and_skipped_variables(fit_and_draws):
    fit, idata = fit_and_draws
    axes = plot_compare(fit, idata, var_names=("sd", "phi", "beta"), figsize=(5, 6), hdi_prob=0.9)
    fig = axes[0].figure
    try:
        assert axes.shape == (2,)
        np.testing.assert_allclose(fig.get_size_inches(), [5, 6])
        assert [ax.get_title() for ax in axes] == [
            "Random-effect SDs (sd), 90.0% HDI",
            "Fixed effects (beta), 90.0% HDI",
        ]
    finally:
        plt.close(fig)


def test_no_variable_of_the_posterior(fit_and_draws):
    fit, idata = fit_and_draws
    before = plt.get_fignums()  # figures that other tests left open
    message = "var_names ['phi'] names no variable of the posterior; it has 'beta', 'theta_D'"
    with pytest.raises(ValueError, match=re.escape(message)):
        plot_compare(fit, idata, var_names=("phi",))
    assert plt.get_fignums() == before
