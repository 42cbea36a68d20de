"""Which OpenBLAS the library calls from Python: numpy's own, when numpy runs on an ILP64 OpenBLAS
(one thread pool for both libraries), else the one libsgdnoise.so is linked with. Both give the
same results to rounding; the C function that routes the calls refuses what it cannot use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sgdnoise
from sgdnoise import _capi, _lib

PYTHON_DIR = Path(sgdnoise.__file__).resolve().parent.parent


def run_python(code: str, **env_changes: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PYTHON_DIR), env.get("PYTHONPATH")) if p)
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def numpy_ilp64_openblas() -> str | None:
    """numpy's OpenBLAS as threadpoolctl sees it (an independent route: it finds the loaded
    libraries by dl_iterate_phdr and asks each for its configuration), when it is an ILP64 one."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    numpy_home = Path(np.__file__).resolve().parent
    for info in threadpoolctl.threadpool_info():
        path = Path(info["filepath"]).resolve()
        if info.get("internal_api") == "openblas" and (path.is_relative_to(numpy_home.parent / "numpy.libs")
                                                       or path.is_relative_to(numpy_home)):
            return str(path) if "64_" in path.name else None
    return None


def test_the_library_calls_numpys_openblas_when_numpy_has_an_ilp64_one():
    expected = numpy_ilp64_openblas()
    if expected is None:
        assert _lib.blas == "linked"
    else:
        assert Path(_lib.blas).resolve() == Path(expected)
        assert Path(_lib.lib.sgdnoise_blas_library().decode()).resolve() == Path(expected)


COMPUTE = """
import json, numpy as np, sgdnoise
rng = np.random.default_rng(3)
d, n = 60, 400
q, _ = np.linalg.qr(rng.standard_normal((d, d)))
h = (q * rng.uniform(0.1, 1.0, d)) @ q.T
h = (h + h.T) / 2
g = rng.standard_normal((n, d)) @ h + 0.3
y = g @ rng.standard_normal(d) + rng.standard_normal(n)
c = np.cov(g.T)
out = {"blas": sgdnoise._lib.blas}
out["stationary"] = sgdnoise.stationary_covariance(h, c, 1.0, momentum=0.3)                 # dsyevd, dgemm
out["stationary_matrix_lr"] = sgdnoise.stationary_covariance(h, c, np.diag(rng.uniform(0.5, 1, d)))
out["label_noise"] = sgdnoise.label_noise(h, 1.0, 0.2, 16).sigma
out["noise"] = sgdnoise.noise_covariance(g, 16)                                          # dsyrk
with sgdnoise.NoiseAccumulator(d) as acc:                                                # dsyr
    for row in g[:5]:
        acc.update(row[None, :])
    out["accumulator"] = acc.covariance(16)
out["top_eigen"] = sgdnoise.noise_top_eigen(g, 16, 3)[0]
out["matvec"] = sgdnoise.noise_operator(g, 16).matvec(np.ones(d))                         # dgemv
out["hessian_eigen"] = sgdnoise.hessian_eigen(lambda v: h @ v, d, k=4).values            # Lanczos: dstev, ddot, ...
out["finite_dataset"] = sgdnoise.finite_dataset(g, y, 0.005, 16).sigma                   # dposv
print(json.dumps({k: v if isinstance(v, str) else np.asarray(v, float).tolist() for k, v in out.items()}))
"""


def test_numpys_and_the_linked_openblas_agree_to_rounding():
    results = {}
    for choice in ("numpy", "linked"):
        proc = run_python(COMPUTE, SGDNOISE_BLAS=choice)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[choice] = json.loads(proc.stdout)
    assert results["linked"]["blas"] == "linked"
    assert results["numpy"]["blas"] == (numpy_ilp64_openblas() or "linked")
    for key, value in results["linked"].items():
        if key == "blas":
            continue
        ours, linked = np.asarray(results["numpy"][key]), np.asarray(value)
        assert ours.shape == linked.shape, key
        scale = np.max(np.abs(linked))
        assert np.max(np.abs(ours - linked)) <= 1e-10 * scale, (key, np.max(np.abs(ours - linked)) / scale)


ROUTE = """
import json, sgdnoise
from sgdnoise import _lib
lib, before = _lib.lib, _lib.lib.sgdnoise_blas_library()
out = {}
for name, args in {"missing file": (b"/nonexistent/libopenblas64_.so", b"scipy_", b"64_"),
                   "wrong names": (before or None, b"no_such_prefix_", b"64_")}.items():
    if args[0] is None:
        continue
    status = lib.sgdnoise_use_blas_ilp64(*args)
    out[name] = [status, lib.sgdnoise_last_error_message().decode(), lib.sgdnoise_blas_library().decode()]
out["back to linked"] = [lib.sgdnoise_use_blas_ilp64(None, None, None), "", lib.sgdnoise_blas_library().decode()]
out["before"] = before.decode()
print(json.dumps(out))
"""


def test_routing_refuses_what_it_cannot_use_and_keeps_the_blas_it_had():
    proc = run_python(ROUTE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    status, message, library = out["missing file"]
    assert status == _capi.SGDNOISE_STATUS_INVALID_ARGUMENT
    assert "/nonexistent/libopenblas64_.so" in message and library == out["before"]
    if "wrong names" in out:
        status, message, library = out["wrong names"]
        assert status == _capi.SGDNOISE_STATUS_INVALID_ARGUMENT
        assert "no_such_prefix_cblas_daxpy64_" in message and library == out["before"]
    assert out["back to linked"] == [_capi.SGDNOISE_STATUS_OK, "", ""]


def test_an_unknown_sgdnoise_blas_value_is_an_import_error():
    proc = run_python("import sgdnoise", SGDNOISE_BLAS="mkl")
    assert proc.returncode != 0 and "SGDNOISE_BLAS='mkl'" in proc.stderr, proc.stderr[-2000:]
