"""Shared fixtures: seeded random generators and random test matrices.

Every expected value in this suite comes from an independent route (numpy's definitions,
brute-force Kronecker solves, scipy's Stein solver, closed forms of the theory), never from the
library's own output.
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

try:  # an installed package, or python/ on PYTHONPATH (as `make test` sets it) ...
    import sgdnoise  # noqa: F401
except ModuleNotFoundError:  # ... else the source checkout this file belongs to
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EPS = np.finfo(np.float64).eps


def random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    """A Haar-random orthogonal d x d matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def random_spd(rng: np.random.Generator, d: int, lo: float = 0.1, hi: float = 1.0) -> np.ndarray:
    """A random symmetric positive-definite matrix with eigenvalues in [lo, hi], both ends included
    (d >= 2), the others uniform in between; Haar-random eigenvectors.

    Built as Q diag(e) Q^T and then symmetrised exactly, so the library's symmetry check (relative
    1e-10) never sees rounding asymmetry.
    """
    q = random_orthogonal(rng, d)
    e = rng.uniform(lo, hi, d)
    if d >= 2:
        e[:2] = lo, hi
    a = (q * e) @ q.T
    return 0.5 * (a + a.T)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's name: reproducible, and different for each test.
    Set SGDNOISE_TEST_SEED to another integer to draw other test problems."""
    name = request.node.name.encode()
    return np.random.default_rng([zlib.crc32(name), int(os.environ.get("SGDNOISE_TEST_SEED", "0"))])


@pytest.fixture
def spd(rng):
    """Factory ``spd(d, lo=0.1, hi=1.0)`` of random SPD matrices drawn from ``rng``."""
    return lambda d, lo=0.1, hi=1.0: random_spd(rng, d, lo, hi)


@pytest.fixture
def orthogonal(rng):
    """Factory ``orthogonal(d)`` of Haar-random orthogonal matrices drawn from ``rng``."""
    return lambda d: random_orthogonal(rng, d)


# --- The fast set ---------------------------------------------------------------------------------
# `make test-fast` runs `pytest -m "not slow"` (under a minute with the Swift fast set); `make test`
# runs everything. Slow: whole suites that run long simulations, the notebook, the CLI's figure
# reproduction, the plots, the header-generated fuzz and the thread/memory suites; and single tests
# that take more than about a second (large brute-force solves, Monte-Carlo checks).
SLOW_MODULES = {"test_fuzz", "test_notebook", "test_memory", "test_concurrency", "test_cli", "test_plot",
                "test_simulation", "test_jax_adapter", "test_torch_adapter",
                "test_real_network_notebook", "test_torch_real_sgd", "test_readme", "test_wheel", "test_dask"}
SLOW_TESTS = ("test_matches_scipy_stein_solver", "test_reported_critical_learning_rate_is_the_stability_edge",
              "test_brute_force_stationary_solution", "test_monte_carlo", "test_threads_get_serial_results",
              "test_theorem1_residual", "test_gaussian_limit")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (excluded by `make test-fast`, run by `make test`)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", "").rsplit(".", 1)[-1]
        if module in SLOW_MODULES or item.name.startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


# --- Nothing is skipped under `make test` ----------------------------------------------------------
# `make test` sets SGDNOISE_NO_SKIP=1 after `make setup` has installed every optional package the
# suites use: a test that would skip there (a missing package, an unbuilt CLI) fails instead, with
# the skip's reason, so that no suite is silently left out of CI.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("SGDNOISE_NO_SKIP") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under `make test` (SGDNOISE_NO_SKIP=1), which runs every suite: {reason}"
