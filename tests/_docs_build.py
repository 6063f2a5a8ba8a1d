"""One build of the documentation per test session, shared by test_docs.py and
test_notebooks.py (the build executes every page with code and every notebook, so the
notebooks' tests read the outputs of that execution instead of running them a second time)."""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = ROOT / "notebooks"


@dataclass(frozen=True)
class Build:
    returncode: int
    log: str  # Sphinx's warnings and errors (stderr), then its stdout
    html: Path  # the site
    executed: Path  # myst-nb's executed copy of every page with code: <docname>.ipynb

    def page(self, docname: str) -> Path:
        return self.html / f"{docname}.html"


@functools.cache
def build_docs() -> Build:
    """``python -m sphinx -W --keep-going -b html docs <tmp>``, as the README says to build
    the site (warnings are errors), into a temporary directory removed at exit; with ``-j
    auto``, so that pages run their code side by side (a minute less on two cores)."""
    out = Path(tempfile.mkdtemp(prefix="glmm_ppl_docs_"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    html = out / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-j", "auto", "-b", "html"]
        + [str(DOCS), str(html)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    # the kernels' own notices are not Sphinx warnings: keep the log readable
    stderr = "\n".join(
        line for line in proc.stderr.splitlines() if not line.startswith("[IPKernelApp]")
    )
    return Build(proc.returncode, f"{stderr}\n{proc.stdout}", html, out / "jupyter_execute")
