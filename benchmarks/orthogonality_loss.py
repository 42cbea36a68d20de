"""How far each new Lanczos vector falls from orthogonality to the basis before reorthogonalisation,
for the two products of the network benchmarks (docs/theory.md §8, "What the products cost
besides themselves"): the float32 JAX MLP of `network_mlp_1e6` and the float64 Gauss–Newton
operator of `network_1e6`.

A plain numpy Lanczos with full reorthogonalisation, 20 steps from a Gaussian start; each line is
max_i |v_iᵀw| / ‖w‖ for the new vector w (after the three-term recurrence, before it is
reorthogonalised). Run: ``python3 benchmarks/orthogonality_loss.py`` (about a minute; JAX needed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))


def orthogonality_loss(product, p: int, steps: int, rng) -> list[float]:
    basis = np.zeros((steps + 1, p))
    v = rng.standard_normal(p)
    basis[0] = v / np.linalg.norm(v)
    beta, losses = 0.0, []
    for j in range(steps):
        h = np.asarray(product(basis[j]), dtype=np.float64)
        alpha = basis[j] @ h
        w = h - alpha * basis[j] - (beta * basis[j - 1] if j else 0.0)
        c = basis[:j + 1] @ w
        losses.append(float(np.max(np.abs(c)) / np.linalg.norm(w)))
        w -= basis[:j + 1].T @ c
        beta = float(np.linalg.norm(w))
        basis[j + 1] = w / beta
    return losses


def main() -> None:
    import bench  # the benchmarks' own problems
    import sgdnoise.jax as sj

    rng = np.random.default_rng(0)
    loss_fn, params, data = bench._jax_mlp(rng, 256, (512, 1024, 512, 1))
    mlp = sj.hvp(loss_fn, params, data)
    n, p = 64, 1_000_000
    j = rng.standard_normal((n, p)) * np.linspace(2.0, 0.2, n)[:, None]
    cases = [(f"float32 JAX MLP, P = {mlp.dim:,}", mlp.matvec, mlp.dim),
             ("float64 Gauss-Newton JᵀJ/N + 1e-3 I, P = 1,000,000", lambda v: j.T @ (j @ v) / n + 1e-3 * v, p)]
    for name, product, dim in cases:
        losses = orthogonality_loss(product, dim, 20, np.random.default_rng(1))
        print(f"{name}: max|Vᵀw|/‖w‖ per step, steps 2-20: {min(losses[1:]):.1e} to {max(losses[1:]):.1e}")
        print("  " + " ".join(f"{x:.1e}" for x in losses))


if __name__ == "__main__":
    main()
