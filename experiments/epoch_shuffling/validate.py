"""Epoch shuffling on scikit-learn's diabetes data: prediction against simulated SGD.

For each momentum μ, batch size S and learning rate c · λ*(S) (λ* the critical learning rate of sampling without
replacement, `critical_learning_rate_dataset`), compares
Tr Σ and the mean offset |E w − w*| of simulated epoch-shuffled SGD (`sgdnoise.simulate`,
sampling="epoch_shuffling", independent runs for the error bar) with three predictions:
`finite_dataset` with replacement, without replacement, and with sampling="epoch_shuffling"
(docs/theory.md §4.2). Writes results.json beside this file and prints a table.

    PYTHONPATH=python python3 experiments/epoch_shuffling/validate.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes

import sgdnoise


def data():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return X, y


def main(quick: bool) -> None:
    X, y = data()
    n = X.shape[0]
    h = np.linalg.eigvalsh(X.T @ X / n)
    runs = 4 if quick else 8
    rows = []
    for mu, s in [(0.0, s) for s in (1, 2, 8, 17, 32)] + [(0.9, s) for s in (1, 8, 32)]:
        critical = sgdnoise.critical_learning_rate_dataset(X, s, replacement=False, momentum=mu)
        for c in (0.02, 0.1, 0.3):
            lr = c * critical
            # 20 relaxation times of the slowest mode after a burn-in of 5, at least 400 epochs.
            steps = int(min(4e6, max(400 * n / s, 25 * (1 - mu) / (lr * h[0]))))
            if quick:
                steps //= 4
            traces, offsets = [], []
            t0 = time.time()
            for seed in range(runs):
                r = sgdnoise.simulate(X=X, y=y, lr=lr, batch_size=s, momentum=mu, sampling="epoch_shuffling", steps=steps,
                                      burn_in=steps // 5, seed=seed, progress=False)
                traces.append(np.trace(r.sigma))
                offsets.append(r.mean)
            sim_time = time.time() - t0
            traces = np.array(traces)
            sim, sim_se = traces.mean(), traces.std(ddof=1) / np.sqrt(runs)
            row = dict(S=s, momentum=mu, c=c, lr=lr, critical=critical, steps=steps, runs=runs, sim_trace=sim, sim_trace_se=sim_se,
                       sim_seconds=sim_time)
            for name, kw in (("with", dict(replacement=True)), ("without", dict(replacement=False)),
                             ("epoch", dict(sampling="epoch_shuffling"))):
                p = sgdnoise.finite_dataset(X, y, lr, s, momentum=mu, **kw)
                row[f"{name}_trace"] = float(np.trace(p.sigma))
                row[f"{name}_z"] = float((sim - np.trace(p.sigma)) / sim_se)
                if name == "epoch":
                    w_star = sgdnoise.finite_dataset(X, y, lr, s, momentum=mu).mean
                    offset_pred = p.mean - w_star
                    offs = np.array(offsets) - w_star
                    row["offset_pred_norm"] = float(np.linalg.norm(offset_pred))
                    row["offset_sim_norm"] = float(np.linalg.norm(offs.mean(0)))
                    row["offset_sim_se"] = float(np.linalg.norm(offs.std(0, ddof=1)) / np.sqrt(runs))
            rows.append(row)
            print(f"μ={mu:.1f} S={s:3d} c={c:4.2f} sim TrΣ={sim:.4e}±{sim_se:.1e}  "
                  f"with {row['with_trace']/sim-1:+7.1%} (z={row['with_z']:+6.1f})  "
                  f"without {row['without_trace']/sim-1:+7.1%} (z={row['without_z']:+6.1f})  "
                  f"epoch {row['epoch_trace']/sim-1:+7.1%} (z={row['epoch_z']:+6.1f})  "
                  f"|offset| pred {row['offset_pred_norm']:.2e} sim {row['offset_sim_norm']:.2e}±{row['offset_sim_se']:.1e}"
                  f"  [{sim_time:.0f} s]", flush=True)
    out = Path(__file__).with_name("results_quick.json" if quick else "results.json")
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main("--quick" in sys.argv)
