"""DHARMa's residual plot (glmm_ppl.postfit.residual_plot)."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from _figures import drawn_texts, texts_outside
from scipy import stats  # noqa: E402

import glmm_ppl as gp  # noqa: E402
from glmm_ppl.postfit.residual_plot import plot_residuals  # noqa: E402


def test_plot_residuals_of_a_fit(fm1):
    axes = plot_residuals(fm1, nsim=250, seed=3)
    fig = axes[0].figure
    try:
        fig.canvas.draw()
        assert axes.shape == (2,) and len(fig.axes) == 2
        assert fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
        u = gp.scaled_residuals(fm1, nsim=250, seed=3)
        p = stats.kstest(u, "uniform").pvalue
        title = axes[0].get_title()
        assert title == f"Uniform QQ plot, KS test p = {p:.3g}"
        shown = float(re.search(r"p = (\S+)$", title).group(1))
        np.testing.assert_allclose(shown, p, rtol=5e-3)
        qq, versus = axes
        assert qq.get_xlabel() == "Expected (uniform quantiles)"
        assert qq.get_ylabel() == "Observed (scaled residuals)"
        assert versus.get_title() == "Residuals vs. predicted"
        assert versus.get_xlabel() == "Model predictions (rank transformed)"
        assert versus.get_ylabel() == "Scaled residuals"
        # the QQ points are the sorted residuals against the uniform quantiles
        points = qq.get_lines()[0]
        n = len(u)
        np.testing.assert_allclose(points.get_xdata(), (np.arange(1, n + 1) - 0.5) / n)
        np.testing.assert_array_equal(points.get_ydata(), np.sort(u))
        # the residuals against the ranks of the marginal means, rescaled to (0, 1]
        scatter = versus.get_lines()[0]
        ranks = stats.rankdata(fm1.fitted("marginal").to_numpy()) / n
        np.testing.assert_allclose(scatter.get_xdata(), ranks)
        np.testing.assert_array_equal(scatter.get_ydata(), u)
        dashed = sorted(
            ln.get_ydata()[0] for ln in versus.get_lines() if ln.get_linestyle() == "--"
        )
        assert dashed == [0.25, 0.5, 0.75]
        texts = drawn_texts(axes)
        assert len(texts) > 12 and texts_outside(fig, texts) == []
    finally:
        plt.close(fig)


def test_binned_quantiles_of_given_residuals():
    """Residuals 0.1..0.9 repeated in each of 4 bins of predictions: every bin has the
    quartiles and median of those nine values."""
    u = np.tile(np.linspace(0.1, 0.9, 9), 4)
    pred = np.repeat([1.0, 2.0, 3.0, 4.0], 9)
    fig, axes = plt.subplots(1, 2)
    try:
        out = plot_residuals(u, pred, n_bins=4, axes=axes)
        assert list(out) == list(axes)
        solid = [ln for ln in axes[1].get_lines()[1:] if ln.get_linestyle() == "-"]
        assert len(solid) == 3
        for line, q in zip(solid, (0.25, 0.5, 0.75), strict=True):
            np.testing.assert_allclose(line.get_ydata(), np.quantile(u[:9], q))
            np.testing.assert_allclose(line.get_xdata(), [5 / 36, 14 / 36, 23 / 36, 32 / 36])
    finally:
        plt.close(fig)


def test_plot_residuals_errors(fm1):
    before = plt.get_fignums()  # figures that other tests left open
    u = np.linspace(0.05, 0.95, 10)
    with pytest.raises(ValueError, match="predictions are required when residuals are given"):
        plot_residuals(u)
    with pytest.raises(ValueError, match="predictions has 3 values for 10 residuals"):
        plot_residuals(u, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=re.escape("scaled residuals must lie in [0, 1]")):
        plot_residuals(u + 0.5, np.arange(10.0))
    with pytest.raises(TypeError, match="fit_or_residuals must be a one-dimensional array"):
        plot_residuals("residuals", np.arange(10.0))
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_bins must be a positive integer"):
            plot_residuals(u, np.arange(10.0), n_bins=bad)
    assert plt.get_fignums() == before
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match="axes must be two matplotlib Axes, got 1"):
            plot_residuals(u, np.arange(10.0), axes=[ax])
    finally:
        plt.close(fig)
