"""Block Hessian-vector products (docs/theory.md §8): ``network_fluctuation`` with an ``hvp`` that
has ``matmat`` (scipy's LinearOperator convention, V of shape (P, b)) runs its probes in lockstep
through ``sgdnoise_network_fluctuation_block``.

A ``matmat`` that applies the single product column by column gives every probe the bits it gets
alone, so the result must equal the single-vector path exactly; a ``matmat`` by one GEMM differs in
rounding only and is checked to 1e-9 relative (the Krylov and eigenpair tolerances are 1e-12).
Errors of a block callback (raise, NaN, wrong shape) give the same typed errors as the single form.
"""

from __future__ import annotations

import numpy as np
import pytest

import sgdnoise
from test_network import problem as network_problem


def problem(rng):
    return network_problem(rng, p=50)


class Columns:
    """``matmat`` applying ``matvec`` to each column: every column gets the single product's bits."""

    def __init__(self, matrix):
        self.matrix, self.widths = matrix, []

    def matvec(self, v):
        return self.matrix @ v

    def matmat(self, v):
        assert v.ndim == 2 and v.shape[0] == self.matrix.shape[0] and not v.flags.writeable
        self.widths.append(v.shape[1])
        return np.stack([self.matvec(np.ascontiguousarray(v[:, j])) for j in range(v.shape[1])], axis=1)


class Gemm:
    """``matmat`` by one matrix product (rounding differs from the single products)."""

    def __init__(self, matrix):
        self.matrix = matrix

    def matmat(self, v):
        return self.matrix @ v


FIELDS = ("top_eigenvalues", "top_eigenvectors", "bottom_eigenvalues", "fluctuation_block", "excess_loss",
          "excess_loss_stderr", "top_trace_sigma", "critical_learning_rate_multiplicative",
          "critical_learning_rate_multiplicative_stderr", "hessian_products", "noise_products", "bottom_noise_trace")


@pytest.mark.parametrize("diagonal", [False, True])
def test_block_path_equals_the_single_path(rng, diagonal):
    hessian, grads = problem(rng)
    p = hessian.shape[0]
    lr = rng.uniform(0.05, 0.2, p) if diagonal else 0.15
    noise = sgdnoise.noise_covariance(grads, 8)
    args = dict(lr=lr, momentum=0.3, k=4, probes=9, steps=20, batch_size=8, tol=1e-12, seed=5)
    single = sgdnoise.network_fluctuation(lambda v: hessian @ v, Columns(noise).matvec, p, **args)
    h = Columns(hessian)
    block = sgdnoise.network_fluctuation(h, Columns(noise), p, block_size=4, **args)
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(block, field), getattr(single, field), err_msg=field)
    # Probes in groups of 4, 4, 1 (the eigenpairs' products are blocks of one); vectors counted.
    assert max(h.widths) == 4 and set(h.widths) <= {1, 2, 3, 4} and sum(h.widths) == block.hessian_products
    assert len(h.widths) < block.hessian_products
    assert block.noise_products == 2 * 4 + 9
    # One GEMM per block: the same to rounding.
    gemm = sgdnoise.network_fluctuation(Gemm(hessian), Gemm(noise), p, block_size=4, **args)
    for field in ("top_eigenvalues", "excess_loss", "critical_learning_rate_multiplicative", "top_trace_sigma"):
        np.testing.assert_allclose(getattr(gemm, field), getattr(single, field), rtol=1e-9, err_msg=field)


def test_block_path_against_the_dense_route(rng):
    """The block path on its own, against the dense Theorem 1 solver: the block exact, the excess
    loss by z-score."""
    hessian, grads = problem(rng)
    p, lr = hessian.shape[0], 0.2
    noise = sgdnoise.noise_operator(grads, 8)  # a NoiseOperator: its matmat takes the blocks
    r = sgdnoise.network_fluctuation(Gemm(hessian), noise, p, lr=lr, k=4, probes=40, steps=30, tol=1e-11, seed=3,
                                     block_size=16)
    sigma = sgdnoise.stationary_covariance(hessian, sgdnoise.noise_covariance(grads, 8), lr)
    q = r.top_eigenvectors
    np.testing.assert_allclose(r.sigma_block, q.T @ sigma @ q, rtol=0, atol=1e-10 * np.abs(q.T @ sigma @ q).max())
    exact = 0.5 * np.trace(hessian @ sigma)
    assert abs(r.excess_loss - exact) < 4 * r.excess_loss_stderr, (r.excess_loss, exact, r.excess_loss_stderr)


def test_a_block_callback_that_fails_gives_the_typed_errors(rng):
    hessian, _ = problem(rng)
    p = hessian.shape[0]
    calls = []

    class Raising:
        def matmat(self, v):
            calls.append(v.shape[1])
            if len(calls) == 5:
                raise KeyboardInterrupt("stop")
            return hessian @ v

    with pytest.raises(KeyboardInterrupt, match="stop") as info:
        sgdnoise.network_fluctuation(Raising(), np.eye(p), p, lr=0.1, k=2)
    assert isinstance(info.value.__cause__, sgdnoise.CancelledError)
    assert len(calls) == 5  # no call after the one that raised

    class Returning:
        def __init__(self, f):
            self.matmat = f

    with pytest.raises(sgdnoise.InvalidArgumentError, match="returned shape"):
        sgdnoise.network_fluctuation(Returning(lambda v: np.ones((p + 1, v.shape[1]))), np.eye(p), p, lr=0.1, k=2)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="returned shape"):  # transposed
        sgdnoise.network_fluctuation(Returning(lambda v: (hessian @ v).T if v.shape[1] > 1 else hessian @ v),
                                     np.eye(p), p, lr=0.1, k=2)
    with pytest.raises(sgdnoise.NumericalError, match="NaN"):
        sgdnoise.network_fluctuation(Returning(lambda v: np.full(v.shape, np.nan)), np.eye(p), p, lr=0.1, k=2)

    def nan_in_blocks(v):  # the blocks of one (eigenpairs) pass; a probe block has a NaN
        out = hessian @ v
        if v.shape[1] > 1:
            out[3, 1] = np.nan
        return out

    with pytest.raises(sgdnoise.NumericalError, match="NaN"):
        sgdnoise.network_fluctuation(Returning(nan_in_blocks), np.eye(p), p, lr=0.1, k=2)
    with pytest.raises(ValueError, match="noise failed"):
        sgdnoise.network_fluctuation(Gemm(hessian), lambda v: (_ for _ in ()).throw(ValueError("noise failed")), p,
                                     lr=0.1, k=2)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="block_size"):
        sgdnoise.network_fluctuation(Gemm(hessian), np.eye(p), p, lr=0.1, k=2, block_size=0)


def test_c_block_function_rejects_bad_arguments():
    """NULL callbacks and block_size < 1 are INVALID_ARGUMENT at the C boundary."""
    import ctypes

    from sgdnoise import _capi, _lib
    lib = _lib.lib
    summary = _capi.sgdnoise_network_summary()
    summary.size = ctypes.sizeof(summary)
    ok = _capi.sgdnoise_block_matvec_callback(lambda _c, d, count, v, out: 0)
    null = _capi.sgdnoise_block_matvec_callback()
    for h, c, width, message in [(null, ok, 2, "hessian"), (ok, null, 2, "noise"), (ok, ok, 0, "block_size"),
                                 (ok, ok, -3, "block_size")]:
        status = lib.sgdnoise_network_fluctuation_block(5, h, None, c, None, width, 0.1, None, 0.0, 1, 2, 2, 0, 0.0,
                                                        0, None, None, None, None, ctypes.byref(summary))
        assert status == _lib.INVALID_ARGUMENT
        assert message in lib.sgdnoise_last_error_message().decode()


def test_hessian_eigen_takes_a_block_only_operator(rng):
    """An operator with only ``matmat`` serves hessian_eigen (single products) as blocks of one."""
    hessian, _ = problem(rng)
    e = sgdnoise.hessian_eigen(Gemm(hessian), hessian.shape[0], k=3)
    np.testing.assert_allclose(e.values, np.linalg.eigvalsh(hessian)[::-1][:3], rtol=1e-10)
