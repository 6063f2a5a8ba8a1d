"""The command line: ``python -m glmm_ppl fit`` with one or two formulas, a required family,
and errors printed as one line with exit status 2."""

from __future__ import annotations

import pytest

from glmm_ppl.__main__ import main


@pytest.fixture(scope="module")
def csv(binary, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "binary.csv"
    binary.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    "formulas",
    [
        ["--fixed", "y ~ sex * time", "--random", "~ 1 | id"],
        ["--fixed", "y ~ sex * time + (1 | id)"],
    ],
)
def test_fit_prints_the_summary(csv, formulas, capsys, fm1):
    assert main(["fit", "--data", csv, *formulas, "--family", "binomial"]) == 0
    out = capsys.readouterr().out
    assert f"{fm1.loglik:.4f}" in out  # the fit's log-likelihood, as the summary prints it
    assert "Fixed effects:" in out


def test_the_family_is_required(csv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--data", csv, "--fixed", "y ~ time + (1 | id)"])
    assert exit_.value.code == 2
    assert "the following arguments are required: --family" in capsys.readouterr().err


def test_errors_are_one_line_with_status_2(csv, capsys):
    code = main(["fit", "--data", csv, "--fixed", "y ~ time + (1 | id)", "--family", "gamma"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: gamma: response column 'y' must be")
    assert err.count("\n") == 1


def test_powers_written_with_a_caret_get_a_hint(binary):
    import glmm_ppl as gp

    with pytest.raises(ValueError, match=r"powers are written \*\* in a formula, e\.g\. I\(time"):
        gp.mixed_model("y ~ I(time^2)", "~ 1 | id", binary, "binomial")
