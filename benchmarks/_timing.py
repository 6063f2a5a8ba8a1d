"""Timing helpers shared by the benchmark scripts (imported from the scripts' own folder)."""

from __future__ import annotations

import resource
import statistics
import time


def peak_mb() -> float:
    """The process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def first_and_warm(fit, repeats: int) -> tuple[float, float, object]:
    """The time of a first call of ``fit()``, the median time of ``repeats`` more, and the
    last result."""
    t0 = time.perf_counter()
    model = fit()
    first = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = fit()
        warm.append(time.perf_counter() - t0)
    return first, statistics.median(warm), model


def commit(root) -> str:
    """The checkout's commit (``git describe --always --dirty``), or "unknown"."""
    import subprocess

    try:
        return subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine(root) -> str:
    """CPU, cores, Python, the versions of the packages that set the speed and the commit."""
    import os
    import platform
    from importlib.metadata import version
    from pathlib import Path

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("numpy", "scipy", "pytensor", "pymc", "numba")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()}; Python "
        f"{platform.python_version()}, {packages}; glmm_ppl {version('glmm_ppl')} "
        f"(commit {commit(root)})"
    )
