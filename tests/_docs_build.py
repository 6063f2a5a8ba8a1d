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


# A kernel's ports are chosen by its parent, released, then bound by the kernel; another process
# on the machine (a Dask cluster of the distributed tests, another page's kernel) can take one in
# between, and the kernel dies with this message before running a cell (jupyter_client's known
# start-up race). Such a build says nothing about the documentation: it is run again.
PORT_RACE = "zmq.error.ZMQError: Address already in use"


def _build_once() -> Build:
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


@functools.cache
def build_docs() -> Build:
    """``python -m sphinx -W --keep-going -b html docs <tmp>``, as the README says to build
    the site (warnings are errors), into a temporary directory removed at exit; with ``-j
    auto``, so that pages run their code side by side (a minute less on two cores). A failed
    build whose log shows a kernel that lost its port at start-up (``PORT_RACE``) is run again,
    at most twice."""
    for _ in range(3):
        build = _build_once()
        if build.returncode == 0 or PORT_RACE not in build.log:
            return build
    return build
