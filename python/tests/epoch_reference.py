"""Exact stationary moments of epoch-shuffled SGD on a tiny dataset, by enumeration.

An independent route for docs/theory.md §4.2: every sequence of permutations over one period
(P = N/gcd(N, S) steps, S·P/N epochs) is enumerated; over a period the error e = w − w* follows
e ↦ Φe + ψ with (Φ, ψ) random, so the stationary mean and second moment at a period's start solve
small linear systems (D² unknowns, Kronecker form), and those at every phase follow from the
partial products. Nothing is approximated; the cost is (N!)^epochs · P products.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def exact_epoch_moments(X, y, lr, batch_size, weight_decay=None, momentum=0.0):
    """Phase-averaged (mean offset m̄, covariance Σ, second moment M) of w − w* at stationarity.

    With momentum μ the state is (e, b), b the buffer: b ← μb + g, e ← e − λb."""
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n, d = X.shape
    s = batch_size
    gamma = np.zeros((d, d)) if weight_decay is None else np.asarray(weight_decay, float)
    k = X.T @ X / n + gamma
    w_star = np.linalg.solve(k, X.T @ y / n)
    # Per-sample gradient at w = w* + e: A_i e + z_i.
    a = np.einsum("ni,nj->nij", X, X) + gamma
    z = X * (X @ w_star - y)[:, None] + gamma @ w_star
    period = n // math.gcd(n, s)
    epochs = period * s // n
    perms = list(itertools.permutations(range(n)))
    dim = 2 * d
    phis, psis = [], []  # per sequence: lists over phases t = 0..P of (Φ_t, ψ_t)
    for seq in itertools.product(perms, repeat=epochs):
        stream = [i for p in seq for i in p]
        phi, psi = np.eye(dim), np.zeros(dim)
        ph, ps = [phi], [psi]
        for t in range(period):
            batch = stream[t * s:(t + 1) * s]
            ab = a[batch].mean(axis=0)
            zb = z[batch].mean(axis=0)
            # b' = μb + A_B e + z_B, e' = e − λb'.
            step = np.block([[np.eye(d) - lr * ab, -lr * momentum * np.eye(d)], [ab, momentum * np.eye(d)]])
            shift = np.concatenate([-lr * zb, zb])
            phi, psi = step @ phi, step @ psi + shift
            ph.append(phi)
            ps.append(psi)
        phis.append(ph)
        psis.append(ps)
    phis = np.asarray(phis)  # (sequences, P + 1, d, d)
    psis = np.asarray(psis)  # (sequences, P + 1, d)
    phi_p, psi_p = phis[:, period], psis[:, period]
    m0 = np.linalg.solve(np.eye(dim) - phi_p.mean(axis=0), psi_p.mean(axis=0))
    kron = np.einsum("sij,skl->ikjl", phi_p, phi_p).reshape(dim * dim, dim * dim) / len(phi_p)
    cross = np.einsum("sij,j,sk->ik", phi_p, m0, psi_p) / len(phi_p)
    rhs = cross + cross.T + np.einsum("si,sj->ij", psi_p, psi_p) / len(psi_p)
    big_m0 = np.linalg.solve(np.eye(dim * dim) - kron, rhs.reshape(-1)).reshape(dim, dim)
    means, seconds = [], []
    for t in range(period):
        ph, ps = phis[:, t], psis[:, t]
        mt = np.einsum("sij,j->si", ph, m0) + ps
        means.append(mt.mean(axis=0))
        second = np.einsum("sij,jk,slk->il", ph, big_m0 - np.outer(m0, m0), ph) / len(ph)
        second += np.einsum("si,sj->ij", mt, mt) / len(mt)
        seconds.append(second)
    m_bar = np.mean(means, axis=0)[:d]
    big_m = np.mean(seconds, axis=0)[:d, :d]
    return m_bar, big_m - np.outer(m_bar, m_bar), big_m, w_star
