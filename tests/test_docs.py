"""The documentation builds with warnings as errors, and its pages are there.

The build (``tests/_docs_build.py``, shared with test_notebooks.py) executes every page with
code and every notebook; numpydoc checks that every public name of the API reference has a
docstring with an Examples section, and nitpicky references make a broken reference to the
package's own API an error.
"""

from __future__ import annotations

import inspect
import re

import pytest
from _docs_build import DOCS, NOTEBOOKS, build_docs

import glmm_ppl as gp
from glmm_ppl import families

TOP_LEVEL = [name for name in gp.__all__ if name != "__version__"]
FAMILY_NAMES = list(families.__all__)
# the documented members of the fit classes: their public methods and properties
MEMBERS = {
    cls.__name__: [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_") and (isinstance(value, property) or inspect.isfunction(value))
    ]
    for cls in (gp.MixedModelFit, gp.GLMFit)
}
TOCTREE = [
    "getting_started",
    "nested",
    "crossed",
    "cluster",
    "marginaleffects",
    "intervals",
    "how_it_works",
    "families/index",
    "map_mcmc_priors",
    "coming_from_r",
    "notebooks",
    "performance",
    "api",
]


# ---- the sources (no build needed) ----------------------------------------------------------
def test_api_page_lists_every_public_name():
    """docs/api.md names every name of ``glmm_ppl.__all__`` and ``glmm_ppl.families.__all__``
    (a name added to the package but not to the reference fails here, before the build)."""
    listed = set(re.findall(r"^\s{3}(\w+)\s*$", (DOCS / "api.md").read_text(), re.M))
    missing = [n for n in TOP_LEVEL + FAMILY_NAMES if n not in listed]
    assert not missing, f"docs/api.md does not list {missing}"


def test_entry_page_toctree_in_order():
    text = (DOCS / "index.md").read_text()
    toctree = re.search(r"```\{toctree\}\n(.*?)```", text, re.S).group(1)
    entries = [line.strip() for line in toctree.splitlines() if line.strip() and ":" not in line]
    assert entries == TOCTREE


def test_module_data_examples_run():
    """The examples of documented module data (docstrings after an assignment, which
    ``--doctest-modules`` does not see) run as printed."""
    import doctest

    from sphinx.pycode import ModuleAnalyzer

    docs = ModuleAnalyzer.for_module("glmm_ppl.families").find_attr_docs()
    text = "\n".join(docs[("", "FAMILIES")])
    test = doctest.DocTestParser().get_doctest(text, {}, "glmm_ppl.families.FAMILIES", None, 0)
    assert test.examples
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_notebooks_page_links_every_notebook():
    text = (DOCS / "notebooks.md").read_text()
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert f"(notebooks/{path.name})" in text, f"docs/notebooks.md does not link {path.name}"


# ---- the build ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def build():
    return build_docs()


def test_docs_build_without_warnings(build):
    assert build.returncode == 0, f"the documentation build failed:\n{build.log}"


def test_entry_page_and_toctree_pages_exist(build):
    missing = [name for name in ["index", *TOCTREE] if not build.page(name).is_file()]
    assert not missing, f"pages not built: {missing}\n{build.log}"
    index = build.page("index").read_text()
    for name in TOCTREE:
        assert f'href="{name}.html"' in index, f"index.html does not link {name}"


def test_api_pages_for_every_public_name(build):
    api = build.page("api").read_text()
    pages = [f"glmm_ppl.{n}" for n in TOP_LEVEL] + [f"glmm_ppl.families.{n}" for n in FAMILY_NAMES]
    for cls, members in MEMBERS.items():
        pages += [f"glmm_ppl.{cls}.{m}" for m in members]
    missing = [p for p in pages if not build.page(f"generated/{p}").is_file()]
    assert not missing, f"no API page for {missing}\n{build.log}"
    for page in pages:
        if page.count(".") == 1 or page.startswith("glmm_ppl.families."):
            assert f'href="generated/{page}.html"' in api, f"api.html does not link {page}"
    for cls, members in MEMBERS.items():
        cls_page = build.page(f"generated/glmm_ppl.{cls}").read_text()
        for m in members:
            assert f'href="glmm_ppl.{cls}.{m}.html"' in cls_page, f"{cls} page lacks {m}"


def _text(path) -> str:
    """A page's text without its tags (the highlighted code is split into spans)."""
    return re.sub(r"<[^>]+>", "", path.read_text())


def test_api_pages_show_the_examples(build):
    page = _text(build.page("generated/glmm_ppl.mixed_model"))
    assert "Examples" in page and ">>> import glmm_ppl as gp" in page.replace("&gt;", ">")


def test_performance_page_has_the_generated_table(build):
    page = build.page("performance").read_text()
    table = (DOCS / "performance_results.md").read_text()
    assert "GLMMadaptive" in table and "speed-up" in table
    machine = re.search(r"^Run of .*$", table, re.M).group(0)
    assert machine.split(";")[0] in page  # the included file is rendered, with its machine line
    assert "<table" in page
    families = (DOCS / "performance_families.md").read_text()
    assert "families.py" in families and "GLMMadaptive" in families
    assert "hurdle_negative_binomial" in page  # the families' table is rendered too


def test_notebooks_are_rendered_with_their_outputs(build):
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        page = build.page(f"notebooks/{path.stem}")
        assert page.is_file(), f"{path.name} not rendered\n{build.log}"
        assert "cell_output" in page.read_text(), f"{path.name}: rendered without outputs"
