"""The noise operator's and the accumulator's kernels: AVX2 + FMA where the processor has them,
baseline SSE2 with SGDNOISE_KERNELS=baseline (Sources/_SGDNoiseKernels/kernels.c). Both must give
the same results to rounding, on sizes that leave tails (rows not a multiple of 4 or 8, columns not
a multiple of 4 or 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import sgdnoise

PYTHON_DIR = Path(sgdnoise.__file__).resolve().parent.parent

COMPUTE = """
import json, numpy as np, sgdnoise
rng = np.random.default_rng(7)
out = {}
for n, d in [(1, 1), (5, 9), (13, 35), (29, 70001)]:
    g = rng.standard_normal((n, d)) + rng.uniform(-2, 2, d)
    v = rng.standard_normal(d)
    for dtype in ("float64", "float32"):
        x = g.astype(dtype)
        out[f"matvec {n}x{d} {dtype}"] = sgdnoise.noise_operator(x, 1).matvec(v).tolist()
        if d <= 100:
            with sgdnoise.NoiseAccumulator(d) as acc:
                acc.update(x[: n // 2 + 1])
                acc.update(x[n // 2 + 1:])
                out[f"accumulator {n}x{d} {dtype}"] = acc.covariance(1).ravel().tolist()
print(json.dumps(out))
"""


def compute(**env_changes: str) -> dict[str, np.ndarray]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PYTHON_DIR), env.get("PYTHONPATH")) if p)
    env.pop("SGDNOISE_KERNELS", None)
    env.update(env_changes)
    run = subprocess.run([sys.executable, "-c", COMPUTE], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return {k: np.array(v) for k, v in json.loads(run.stdout).items()}


def test_baseline_and_default_kernels_agree_to_rounding():
    best, baseline = compute(), compute(SGDNOISE_KERNELS="baseline")
    assert best.keys() == baseline.keys()
    for key in best:
        scale = max(np.abs(baseline[key]).max(), 1e-300)
        assert np.abs(best[key] - baseline[key]).max() <= 1e-12 * scale, key
