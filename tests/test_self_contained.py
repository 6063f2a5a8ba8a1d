"""The repository is self-contained: nothing in it reads files from beside the checkout.

A user's clone has only the repository, so tests, benchmarks, docs, notebooks and CI scripts
must not name paths outside it (a sibling checkout, an absolute path on one machine, or a
``parents[k]`` / ``.parent`` chain that climbs above the repository root). The reference data
they need are in ``tests/reference`` and are described, file by file, in its README.md.

The patterns below are assembled from pieces so that this file, which is scanned like every
other, does not contain the strings it looks for.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference"

SCAN_DIRS = ["tests", "benchmarks", "docs", "notebooks"]
SCAN_SUFFIXES = {".py", ".md", ".ipynb", ".cfg", ".toml", ".txt"}
ALL_FILES_DIRS = [".ci"]  # CI scripts have no suffix: every file is scanned
TOP_LEVEL = ["README.md", "pyproject.toml"]
# build output (ignored by git): the built site, autosummary stubs and notebook copies
SKIP_DIRS = {("docs", "_build"), ("docs", "generated"), ("docs", "notebooks")}
SKIP_DIRS |= {("docs", "jupyter_execute")}
SKIP_NAMES = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}

DOTS = "." + "."
UP = DOTS + "/"
SIBLING = "sha" + "red"
PARENT = ".paren" + "t"
# fixed patterns: (regex, what it means)
FIXED = [
    (
        re.compile(re.escape(DOTS) + r"[/\\]+" + SIBLING + r"\b"),
        "a sibling checkout beside the repository",
    ),
    (re.compile(r"[\"']" + SIBLING + r"[\"']\s*/"), "a path through a sibling folder"),
    (
        re.compile(r"(?<![\w.~:])/(?:" + "|".join(["wo" + "rk", "ho" + "me", "Us" + "ers"]) + ")/"),
        "an absolute path on one machine",
    ),
    (
        re.compile(r"\b(?:ROOT|REPO|REPO_ROOT|root|repo_root)\.paren" + r"ts?\b"),
        "the parent of the repository root",
    ),
    (
        re.compile(r"[\"']" + re.escape(DOTS) + r"[/\\]"),
        "a string path starting with '..' (relative to the working directory, the root)",
    ),
]
# patterns whose offence depends on how deep the file sits below the root
PARENTS_INDEX = re.compile(r"\.paren" + r"ts\[\s*(\d+)\s*\]")
PARENT_CHAIN = re.compile(r"(?:\.paren" + r"t\b(?!s))+")
UP_RUN = re.compile(r"(?<![\w.])(?:" + re.escape(DOTS) + r"/)+")


def offences(rel: Path, text: str) -> list[str]:
    """``"path:line: reason"`` for every line of ``text`` that names a path outside the
    repository; ``rel`` is the file's path relative to the repository root."""
    depth = len(rel.parts) - 1  # directories between the root and the file
    found = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        reasons = [why for pattern, why in FIXED if pattern.search(line)]
        # Path(__file__).resolve().parents[k] is the root for k == depth, above it for k > depth
        if any(int(k) > depth for k in PARENTS_INDEX.findall(line)):
            reasons.append(f"parents[k] with k > {depth} climbs above the root")
        if any(m.group().count(".paren") > depth for m in PARENT_CHAIN.finditer(line)):
            reasons.append(f"more than {depth} '.parent' steps climb above the root")
        # relative links (Markdown, notebooks) resolve from the file's own folder
        if any(m.group().count("/") > depth for m in UP_RUN.finditer(line)):
            reasons.append(f"more than {depth} '{UP}' steps climb above the root")
        found += [f"{rel}:{lineno}: {why}: {line.strip()[:120]}" for why in reasons]
    return found


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in TOP_LEVEL if (ROOT / name).is_file()]
    for top, every in [(d, False) for d in SCAN_DIRS] + [(d, True) for d in ALL_FILES_DIRS]:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT)
            if not path.is_file() or SKIP_NAMES & set(rel.parts):
                continue
            if any(rel.parts[: len(skip)] == skip for skip in SKIP_DIRS):
                continue
            if every or path.suffix in SCAN_SUFFIXES:
                files.append(path)
    return files


def test_scan_covers_the_repository():
    rels = {p.relative_to(ROOT).as_posix() for p in scanned_files()}
    assert {"tests/conftest.py", "benchmarks/run.py", "docs/performance.md", ".ci/run"} <= rels
    assert "tests/test_self_contained.py" in rels  # this file is scanned too
    assert any(r.startswith("notebooks/") and r.endswith(".ipynb") for r in rels)


@pytest.mark.parametrize(
    "rel, line",
    [
        ("tests/conftest.py", "REF = Path(__file__).resolve()" + PARENT + "s[2]"),
        ("tests/conftest.py", "# " + UP + SIBLING + " sits beside the checkout"),
        ("tests/conftest.py", "REF = Path(__file__).resolve()" + PARENT + PARENT),
        ("benchmarks/run.py", "REF = ROOT" + PARENT + ' / "data"'),
        ("benchmarks/run.py", 'REF = ROOT / "' + SIBLING + '" / "reference"'),
        ("benchmarks/run.py", 'df = pd.read_csv("' + UP + 'data.csv")'),
        ("docs/performance.md", "see /" + "work/other/README.md"),
        ("docs/families/index.md", "[](" + UP * 3 + "x.md)"),
    ],
)
def test_patterns_catch_paths_outside(rel, line):
    assert offences(Path(rel), line)


@pytest.mark.parametrize(
    "rel, line",
    [
        ("tests/conftest.py", 'REF = Path(__file__).resolve().parents[1] / "tests"'),
        ("tests/conftest.py", 'REF = Path(__file__).resolve().parent / "reference"'),
        ("docs/conf.py", "ROOT = DOCS.parent"),
        ("docs/families/index.md", "[](" + UP + "map_mcmc_priors.md)"),
        (".ci/run", 'cd "$(dirname "$0")/' + DOTS + '"'),
        ("docs/performance.md", "https://example.org/" + "work/x"),
    ],
)
def test_patterns_pass_paths_inside(rel, line):
    assert not offences(Path(rel), line)


def test_no_paths_outside_the_repository():
    bad = []
    for path in scanned_files():
        bad += offences(path.relative_to(ROOT), path.read_text(encoding="utf-8", errors="replace"))
    assert not bad, "paths outside the repository:\n" + "\n".join(bad)


# ---- tests/reference/README.md lists exactly the files of tests/reference --------------------
def listed_files() -> set[str]:
    """The first cell of each row of the README's "Files" table (a backticked path)."""
    text = (REFERENCE / "README.md").read_text(encoding="utf-8")
    section = text.split("## Files", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\|\s*`([^`]+)`\s*\|", section, flags=re.MULTILINE))


def test_reference_readme_lists_every_file():
    listed = listed_files()
    present = {
        p.relative_to(REFERENCE).as_posix()
        for p in REFERENCE.rglob("*")
        if p.is_file() and p.name != "README.md" and not SKIP_NAMES & set(p.parts)
    }
    assert len(listed) >= 10, "the README's Files table was not found"
    missing = sorted(listed - present)
    unlisted = sorted(present - listed)
    assert not missing, f"listed in tests/reference/README.md but absent: {missing}"
    assert not unlisted, f"in tests/reference but not listed in its README.md: {unlisted}"
