"""The engine of the fuzz suite: property-based calls of every function of include/sgdnoise.h.

For each function of the header (see header_model.py), hypothesis draws a *plan*: a consistent,
valid problem (small sizes, SPD matrices, enum codes in range, a stable-looking learning rate) and
zero to three *mutations*, each turning one parameter adversarial: NULL pointers; zero, negative,
huge and overflowing sizes (n*d past 2^63; d = 10^6 for a dense matrix); NaN and +-Inf scalars and
entries; non-symmetric, indefinite, singular, rank-deficient, badly scaled matrices; batch sizes
outside [1, N]; momentum at 1, 0.999, negative; learning rates at, just above and far above the
critical one; out-of-range enum codes; NULL, fresh and used handles; progress callbacks that cancel.

Every output buffer sits between guard zones and is filled with a signalling-NaN sentinel; every
input sits between guards too and is compared byte for byte after the call. The properties checked
after every call (``check``):

* the status is one of the header's sgdnoise_status codes;
* a failing call leaves a non-empty thread-local message, a critical learning rate only with
  UNSTABLE, every output body and out-handle untouched;
* no call writes outside its outputs (guards intact) or into its const inputs;
* a successful call writes no NaN except where the header documents one;
* arguments the contract rejects are rejected with the right status: a negative or zero size
  (INVALID_ARGUMENT), a size or product no memory holds (OUT_OF_MEMORY), an enum code out of range,
  a non-finite scalar, a NULL handle or handle output (INVALID_ARGUMENT), a non-symmetric matrix
  (NOT_SYMMETRIC when read), batch_size > n without replacement;
* the process survives: the suite runs this module in a child process, which writes each call to a
  breadcrumb file first, so a crash or hang names the exact call.

Run as ``python fuzz_harness.py --cases N --report FILE --breadcrumb FILE [functions...]``: one JSON
line per function goes to FILE.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import header_model as hm  # noqa: E402

GUARD = 16                                  # guard entries on each side of every buffer
BODY_BITS = np.uint64(0x7FF45E1700000001)   # signalling NaNs with a payload no computation makes
GUARD_BITS = np.uint64(0x7FF45E1700000002)
GUARD_BYTE = 0xA5
HANDLE_SENTINEL = 0x5E17_5E17_5E17_5E17
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
HUGE_SIZES = {"huge37": 2**37, "huge62": 2**62, "max": INT64_MAX}
LARGE_D = 10**6                             # a dimension that fits as a vector, never as a matrix
DENSE_OVERFLOW_D = 3_037_000_500            # d*d overflows int64
STATUS_OK, INVALID, NOT_SYMMETRIC, OUT_OF_MEMORY, UNSTABLE = 0, 1, 2, 6, 4

# --- Mutation catalogues -----------------------------------------------------------------------------

SIZE_MUTATIONS = ["zero", "minus1", "min", "huge37", "huge62", "max"]
CODE_MUTATIONS = ["neg1", "int_min", "int_max", "beyond", "far"]
REAL_MUTATIONS = ["nan", "inf", "-inf", "zero", "negzero", "neg", "huge", "denormal"]
LR_MUTATIONS = ["at_classic", "above_classic", "at_label", "above_label", "far_above", "tiny_lr"]
MOMENTUM_MUTATIONS = ["one", "below_one", "0.999", "neg_tiny", "1.5"]
INPUT_MUTATIONS = ["null", "nan", "inf", "-inf"]
SYMMETRIC_MUTATIONS = ["nonsymmetric", "indefinite", "zero", "rank1", "wide", "huge_scale", "tiny_scale", "negdef"]
DATA_MUTATIONS = ["zero", "huge_scale", "duplicate_rows", "tiny_scale"]
VECTOR_MUTATIONS = ["zero", "negative", "huge_scale", "wide"]
LIST_MUTATIONS = {"lrs": ["zero", "negative", "huge_scale"], "momenta": ["one", "negative", "0.999"],
                  "batch_sizes": ["zero", "negative", "huge"], "weight_decays": ["negative", "huge_scale"]}


def mutations_for(fn: hm.Function, p: hm.Param) -> list[str]:
    kind = hm.classify(fn, p)
    if kind == hm.SIZE:
        extra = []
        if p.name == "batch_size":
            extra = ["n_plus_1", "int32_max"] if "n" in fn.names else ["int32_max"]
        if p.name == "d":
            extra = ["large_d", "dense_overflow_d"]
        if p.name == "n" and "d" in fn.names:
            extra = ["overflow_nd"]
        if p.name == "threads":
            extra = ["many_threads"]
        return SIZE_MUTATIONS + extra
    if kind == hm.CODE:
        return CODE_MUTATIONS
    if kind == hm.REAL:
        extra = LR_MUTATIONS if p.name == "lr" else MOMENTUM_MUTATIONS if p.name == "momentum" else []
        return REAL_MUTATIONS + extra
    if kind == hm.SEED:
        return ["zero", "max"]
    if kind == hm.INPUT:
        if p.name in hm.SYMMETRIC_INPUTS:
            extra = SYMMETRIC_MUTATIONS
        elif p.name in hm.DATA_INPUTS:
            extra = DATA_MUTATIONS
        elif p.name in hm.LIST_INPUTS:
            extra = LIST_MUTATIONS.get(p.name, [])
        else:
            extra = VECTOR_MUTATIONS
        return INPUT_MUTATIONS + extra
    if kind in (hm.OUTPUT, hm.OUT_HANDLE):
        return ["null"]
    if kind == hm.HANDLE:
        return ["null", "fresh"]
    if kind == hm.CALLBACK:
        return ["null", "continue", "cancel"]
    if kind == hm.CONTEXT:
        return ["null"]
    raise AssertionError(kind)


# --- Buffers -------------------------------------------------------------------------------------------


class Buffer:
    """An array between guard zones; ``address`` is its first entry."""

    def __init__(self, values: np.ndarray | None, length: int, dtype, output: bool):
        dtype = np.dtype(dtype)
        self.dtype, self.length, self.output = dtype, length, output
        total = length + 2 * GUARD
        if output:
            self.raw = np.full(total, GUARD_BITS, dtype=np.uint64)
            self.raw[GUARD:GUARD + length] = BODY_BITS
        else:
            self.raw = np.empty(total * dtype.itemsize, dtype=np.uint8)
            self.raw[:] = GUARD_BYTE
            body = self.raw[GUARD * dtype.itemsize:(GUARD + length) * dtype.itemsize].view(dtype)
            if values is not None:
                flat = np.asarray(values, dtype=dtype).ravel()
                body[:flat.size] = flat
                body[flat.size:] = 1  # past the logical extent: harmless values
            else:
                body[:] = 1
            self.snapshot = self.raw.copy()

    @property
    def address(self) -> int:
        return self.raw.ctypes.data + GUARD * (8 if self.output else self.dtype.itemsize)

    def guards_intact(self) -> bool:
        if self.output:
            return bool((self.raw[:GUARD] == GUARD_BITS).all() and (self.raw[GUARD + self.length:] == GUARD_BITS).all())
        return bool((self.raw == self.snapshot).all())

    def written(self) -> np.ndarray:
        """The body entries the call changed (outputs only)."""
        body = self.raw[GUARD:GUARD + self.length]
        changed = body[body != BODY_BITS]
        return changed.view(np.float64) if self.dtype == np.float64 else changed


# --- Plans -----------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What hypothesis draws: sizes, codes, a seed for the numbers, and the mutations."""

    d: int
    n: int
    length: int          # points / count
    batch: int
    codes: dict[str, int]
    seed: int
    reals: dict[str, float]
    work: dict[str, int]
    callback: str
    mutations: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Case:
    fn: hm.Function
    args: list
    buffers: dict[str, Buffer]
    out_handles: dict[str, np.ndarray]
    handles: list[tuple[str, int]]        # (family, address) the case must free
    consumed: set[int]
    keep: list                            # callback objects etc.
    mutations: dict[str, str]
    values: dict[str, object]             # the scalar arguments, by name
    dense_d: bool                         # d sizes dense matrices in this call
    description: str = ""


def spd(rng: np.random.Generator, d: int, lo: float, hi: float) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    e = rng.uniform(lo, hi, d)
    a = (q * e) @ q.T
    return 0.5 * (a + a.T)


SYMMETRIC_RANGES = {"hessian": (0.2, 1.0), "a": (0.2, 1.0), "a_hat": (0.2, 1.0), "noise": (0.0, 0.3),
                    "b": (0.0, 0.3), "input_noise": (0.0, 0.3), "weight_decay": (0.0, 0.3), "lr_matrix": (0.5, 1.0)}
REAL_RANGES = {"lr": (0.01, 0.5), "momentum": (0.0, 0.9), "noise_var": (0.0, 2.0), "alpha": (0.5, 4.0),
               "ratio": (0.001, 0.1), "a": (0.1, 2.0)}


class Harness:
    def __init__(self, header: hm.Header, lib: ctypes.CDLL, breadcrumb: Path | None = None):
        self.header, self.lib = header, lib
        self.fns = {name: hm.bind(lib, fn) for name, fn in header.functions.items()}
        self.message = self.fns["sgdnoise_last_error_message"]
        self.critical = self.fns["sgdnoise_last_error_critical_learning_rate"]
        self.statuses = set(header.statuses.values())
        self.breadcrumb = open(breadcrumb, "w") if breadcrumb else None

    # -- drawing plans --------------------------------------------------------------------------------

    def strategy(self, fn: hm.Function):
        from hypothesis import strategies as st

        codes = {}
        for p in fn.params:
            if hm.classify(fn, p) == hm.CODE:
                e = self.header.enum_for(p.name, fn)
                values = e.values if e else [0, 1]
                codes[p.name] = st.sampled_from(values)
        reals = {p.name: st.floats(*REAL_RANGES.get(p.name, (0.1, 1.0)))
                 for p in fn.params if hm.classify(fn, p) == hm.REAL}
        work = {"steps": st.integers(1, 200), "burn_in": st.integers(0, 50), "chains": st.integers(1, 3),
                "threads": st.integers(0, 2)}
        work = {k: v for k, v in work.items() if k in fn.names}
        targets = [(p.name, m) for p in fn.params for m in mutations_for(fn, p)]
        mutation = st.sampled_from(targets) if targets else st.nothing()
        several = (st.lists(mutation, min_size=2, max_size=3, unique_by=lambda t: t[0]),) if len(fn.params) > 1 else ()
        mutation_lists = st.one_of(st.just([]), st.lists(mutation, min_size=1, max_size=1), *several)

        @st.composite
        def plan(draw):
            d = draw(st.integers(1, 4))
            n = draw(st.integers(1, 6))
            return Plan(
                d=d, n=n, length=draw(st.integers(1, 5)), batch=draw(st.integers(1, n)),
                codes={k: draw(v) for k, v in codes.items()}, seed=draw(st.integers(0, 2**32 - 1)),
                reals={k: draw(v) for k, v in reals.items()}, work={k: draw(v) for k, v in work.items()},
                callback=draw(st.sampled_from(["null", "continue", "cancel"])),
                mutations=draw(mutation_lists) if targets else [])

        return plan()

    def valid_plan(self, fn: hm.Function, seed: int) -> Plan:
        """A plan with no mutation, drawn from ``seed`` without hypothesis (for the concurrency and
        memory suites): the same valid call for the same seed."""
        rng = np.random.default_rng(seed)
        d, n = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        codes = {}
        for p in fn.params:
            if hm.classify(fn, p) == hm.CODE:
                e = self.header.enum_for(p.name, fn)
                values = e.values if e else [0, 1]
                codes[p.name] = int(values[rng.integers(len(values))])
        reals = {p.name: float(rng.uniform(*REAL_RANGES.get(p.name, (0.1, 1.0))))
                 for p in fn.params if hm.classify(fn, p) == hm.REAL}
        work = {k: v for k, v in {"steps": 200, "burn_in": 20, "chains": 2, "threads": int(rng.integers(0, 3))}.items()
                if k in fn.names}
        return Plan(d=d, n=n, length=int(rng.integers(1, 6)), batch=int(rng.integers(1, n + 1)), codes=codes,
                    seed=seed, reals=reals, work=work, callback="null")

    def outcome(self, case: Case, result) -> tuple:
        """What a call produced, for comparing runs: the status and every output's bytes (a new
        handle counts as "set", its address differs from run to run)."""
        outputs = tuple((name, buf.raw.tobytes()) for name, buf in sorted(case.buffers.items()) if buf.output)
        handles = tuple((name, int(slot[1]) != HANDLE_SENTINEL) for name, slot in sorted(case.out_handles.items()))
        if isinstance(result, bytes):
            result = result.decode()
        return result, outputs, handles

    # -- building a call ----------------------------------------------------------------------------------

    def build(self, fn: hm.Function, plan: Plan, *, depth: int = 0) -> Case:
        rng = np.random.default_rng(plan.seed)
        muts = dict(plan.mutations)
        sizes = {"d": plan.d, "n": plan.n, "points": plan.length, "count": plan.length, "batch_size": plan.batch}
        sizes.update(plan.work)
        layout_code = plan.codes.get("layout")
        diagonal = layout_code == 1
        dense_d = hm.has_dense_matrix(fn) and ("layout" not in fn.names or layout_code == 0)
        values: dict[str, object] = dict(plan.codes)

        # Sizes (and what they imply for the buffers).
        size_args = {}
        for p in fn.params:
            if hm.classify(fn, p) != hm.SIZE:
                continue
            v = sizes.get(p.name, plan.length)
            m = muts.get(p.name)
            if m == "zero":
                v = 0
            elif m == "minus1":
                v = -1
            elif m == "min":
                v = INT64_MIN
            elif m in HUGE_SIZES:
                v = HUGE_SIZES[m]
            elif m == "n_plus_1":
                v = plan.n + 1
            elif m == "int32_max":
                v = INT32_MAX
            elif m == "large_d":
                v = LARGE_D
            elif m == "dense_overflow_d":
                # d*d overflows; as a vector length (diagonal layout, gradient widths) it would be a
                # legitimate 24 GB read, so there it becomes a length no vector may have.
                v = DENSE_OVERFLOW_D if dense_d else HUGE_SIZES["huge37"]
            elif m == "overflow_nd":
                v = 2**33
            elif m == "many_threads":
                v = 2**62
            size_args[p.name] = v
        if muts.get("n") == "overflow_nd" and "d" in size_args:
            size_args["d"] = 2**31
        # Logical sizes of the arrays (what the arguments describe, when it is allocatable).
        d_alloc = size_args.get("d", plan.d)
        if not 1 <= d_alloc <= LARGE_D:
            d_alloc = plan.d
        n_alloc = size_args.get("n", plan.n)
        if not 1 <= n_alloc <= 64:
            n_alloc = plan.n
        large = d_alloc > 64
        if large:
            n_alloc = min(n_alloc, 2)
        list_name = hm.list_size_of(fn)
        len_alloc = size_args.get(list_name, plan.length) if list_name else plan.length
        if not 1 <= len_alloc <= 64:
            len_alloc = plan.length
        generous = max(64, 4 * max(plan.d * plan.d, plan.n * plan.d, plan.n, plan.length, 9))
        if large:
            generous = max(generous, 2 * d_alloc * max(n_alloc, 1))

        # Reals.
        real_args = {}
        lam_max = None
        for p in fn.params:
            if hm.classify(fn, p) == hm.REAL:
                real_args[p.name] = plan.reals[p.name]

        keep, buffers, out_handles, handles, consumed = [], {}, {}, [], set()
        matrices: dict[str, np.ndarray] = {}

        def symmetric(name: str) -> np.ndarray:
            lo, hi = SYMMETRIC_RANGES.get(name, (0.2, 1.0))
            k = d_alloc
            m = muts.get(name)
            if diagonal or large:
                e = rng.uniform(lo, hi, k)
                if m == "indefinite":
                    e[0] = -abs(e[0]) - 0.5
                elif m == "negdef":
                    e = -np.abs(e) - 0.1
                elif m == "zero":
                    e[:] = 0
                elif m == "rank1":
                    e[1:] = 0
                elif m == "wide":
                    e = np.geomspace(1e-12, 1e6, k) if k > 1 else np.array([1e-12])
                elif m == "huge_scale":
                    e *= 1e300
                elif m == "tiny_scale":
                    e *= 1e-300
                matrices[name] = e
                return e if diagonal else e  # large dense: only rejected, never read
            q, r = np.linalg.qr(rng.standard_normal((k, k)))
            q = q * np.sign(np.diag(r))
            e = rng.uniform(lo, hi, k)
            if m == "indefinite":
                e[0] = -abs(e[0]) - 0.5
            elif m == "negdef":
                e = -np.abs(e) - 0.1
            elif m == "zero":
                e[:] = 0
            elif m == "rank1":
                e[1:] = 0
            elif m == "wide":
                e = np.geomspace(1e-12, 1e6, k) if k > 1 else np.array([1e-12])
            a = (q * e) @ q.T
            a = 0.5 * (a + a.T)
            if m == "huge_scale":
                a *= 1e300
            elif m == "tiny_scale":
                a *= 1e-300
            elif m == "nonsymmetric":
                if k == 1:
                    a = a  # a 1 x 1 matrix is always symmetric
                else:
                    a[0, 1] += 0.25 + abs(a[0, 1])
            matrices[name] = np.linalg.eigvalsh(0.5 * (a + a.T)) if k <= 64 else e
            return a

        def poison(arr: np.ndarray, m: str | None) -> np.ndarray:
            if m in ("nan", "inf", "-inf") and arr.size:
                arr = np.array(arr, dtype=np.float64, copy=True)
                arr.flat[int(rng.integers(arr.size))] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[m]
            return arr

        args_by_name: dict[str, object] = {}
        for p in fn.params:
            kind = hm.classify(fn, p)
            m = muts.get(p.name)
            if kind == hm.INPUT:
                if m == "null":
                    args_by_name[p.name] = None
                    continue
                dtype = np.dtype(hm.NUMERIC_BUFFERS[p.type.base])
                if p.name in hm.SYMMETRIC_INPUTS:
                    arr = symmetric(p.name)
                    if not diagonal and large:
                        arr = arr[:1]  # a dense d x d input for a huge d: must be rejected unread
                elif p.name in hm.DATA_INPUTS:
                    arr = rng.standard_normal((n_alloc, d_alloc))
                    if m == "zero":
                        arr[:] = 0
                    elif m == "huge_scale":
                        arr *= 1e300
                    elif m == "tiny_scale":
                        arr *= 1e-300
                    elif m == "duplicate_rows":
                        arr[:] = arr[0]
                elif p.name in hm.DIM_VECTORS or p.name in hm.ROW_VECTORS:
                    k = d_alloc if p.name in hm.DIM_VECTORS else n_alloc
                    arr = rng.uniform(0.1, 1.0, k) if p.name == "spectrum" else rng.standard_normal(k)
                    if m == "zero":
                        arr[:] = 0
                    elif m == "negative":
                        arr = -np.abs(arr) - 0.1
                    elif m == "huge_scale":
                        arr *= 1e300
                    elif m == "wide":
                        arr = np.geomspace(1e-12, 1e6, k) if k > 1 else np.array([1e6])
                elif p.name in hm.LIST_INPUTS:
                    k = len_alloc
                    if p.name == "batch_sizes":
                        arr = rng.integers(1, 9, k)
                        if m == "zero":
                            arr[0] = 0
                        elif m == "negative":
                            arr[0] = -3
                        elif m == "huge":
                            arr[0] = 2**62
                    elif p.name == "momenta":
                        arr = rng.uniform(0, 0.9, k)
                        if m == "one":
                            arr[0] = 1.0
                        elif m == "negative":
                            arr[0] = -0.5
                        elif m == "0.999":
                            arr[:] = 0.999
                    elif p.name == "lrs":
                        arr = rng.uniform(0.01, 3.0, k)
                        if m == "zero":
                            arr[0] = 0
                        elif m == "negative":
                            arr[0] = -0.1
                        elif m == "huge_scale":
                            arr[0] = 1e300
                    else:
                        arr = rng.uniform(-0.1, 1.0, k)
                        if m == "negative":
                            arr[:] = -5.0
                        elif m == "huge_scale":
                            arr[0] = 1e300
                else:
                    arr = np.ones(generous)  # a parameter of unknown role: identity-like contents
                if dtype.kind == "f":
                    arr = poison(arr, m)
                length = max(generous, np.size(arr))
                buf = Buffer(arr, length, dtype, output=False)
                buffers[p.name] = buf
                args_by_name[p.name] = buf.address
            elif kind == hm.OUTPUT:
                if m == "null":
                    args_by_name[p.name] = None
                    continue
                buf = Buffer(None, generous, np.dtype(hm.NUMERIC_BUFFERS[p.type.base]), output=True)
                buffers[p.name] = buf
                args_by_name[p.name] = buf.address
            elif kind == hm.OUT_HANDLE:
                if m == "null":
                    args_by_name[p.name] = None
                    continue
                slot = np.array([HANDLE_SENTINEL] * 3, dtype=np.uint64)
                out_handles[p.name] = slot
                args_by_name[p.name] = slot.ctypes.data + 8
            elif kind == hm.SIZE:
                args_by_name[p.name] = size_args[p.name]
                values[p.name] = size_args[p.name]
            elif kind == hm.CODE:
                e = self.header.enum_for(p.name, fn)
                top = max(e.values) if e else 1
                v = plan.codes[p.name]
                v = {"neg1": -1, "int_min": INT32_MIN, "int_max": INT32_MAX, "beyond": top + 1, "far": 1000}.get(m, v)
                args_by_name[p.name] = v
                values[p.name] = v
            elif kind == hm.SEED:
                v = {"zero": 0, "max": 2**64 - 1}.get(m, plan.seed)
                args_by_name[p.name] = v
            elif kind == hm.CONTEXT:
                args_by_name[p.name] = None if m == "null" else id(plan)
            elif kind == hm.HANDLE:
                family = hm.handle_family(p, fn, self.header)
                if m == "null" or depth > 0:
                    args_by_name[p.name] = None
                    continue
                address = self.make_handle(family, plan, prepared=m != "fresh", skip=fn.name)
                if address is None:
                    args_by_name[p.name] = None
                    continue
                handles.append((family, address))
                if fn.name == hm.destructor(self.header, family).name:
                    consumed.add(address)
                args_by_name[p.name] = address
            elif kind == hm.CALLBACK:
                mode = m or plan.callback
                # A call that may run without end (a huge work size) always gets a cancelling callback.
                if any(size_args.get(w, 0) > 10**6 for w in hm.WORK_SIZES):
                    mode = "cancel"
                if mode == "null":
                    args_by_name[p.name] = hm.ctype_of(p.type)()
                else:
                    result = 1 if mode == "cancel" else 0
                    cb = hm.ctype_of(p.type)(lambda *a, _r=result: _r)
                    keep.append(cb)
                    args_by_name[p.name] = cb
                values[p.name] = mode

        # Reals, with mutations that need the problem (critical learning rates).
        for name, v in real_args.items():
            m = muts.get(name)
            table = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "zero": 0.0, "negzero": -0.0, "neg": -abs(v) - 0.1,
                     "huge": 1e300, "denormal": 5e-324, "one": 1.0, "below_one": 1 - 2**-53, "0.999": 0.999,
                     "neg_tiny": -1e-300, "1.5": 1.5, "tiny_lr": 1e-300}
            if m in table:
                v = table[m]
            elif m in ("at_classic", "above_classic", "far_above", "at_label", "above_label"):
                v = self.critical_lr(fn, m, args_by_name, real_args, matrices, size_args, values) or v
            args_by_name[name] = v
            values[name] = v

        args = [args_by_name[p.name] for p in fn.params]
        description = f"{fn.name}(" + ", ".join(
            f"{p.name}={self.describe(p, args_by_name[p.name], muts.get(p.name), buffers)}" for p in fn.params) + ")"
        return Case(fn, args, buffers, out_handles, handles, consumed, keep, muts, values, dense_d, description)

    def describe(self, p: hm.Param, value, mutation, buffers) -> str:
        tag = f"<{mutation}>" if mutation else ""
        if p.name in buffers:
            b = buffers[p.name]
            return f"[{b.length} x {b.dtype}]{tag}"
        if value is None:
            return f"NULL{tag}"
        if isinstance(value, ctypes._CFuncPtr):
            return f"callback{tag}"
        return f"{value!r}{tag}"

    def critical_lr(self, fn, m, args, reals, matrices, sizes, values) -> float | None:
        """Learning rates on the stability edge: the classical 2(1+mu)/lambda_max of the curvature
        matrix of the call, or the label-noise lr* the library reports for it."""
        mu = reals.get("momentum", 0.0)
        if not (isinstance(mu, float) and 0 <= mu < 1):
            mu = 0.0
        curvature = next((matrices[k] for k in ("hessian", "a", "a_hat") if k in matrices), None)
        if m in ("at_label", "above_label") and curvature is not None and "sgdnoise_critical_learning_rate" in self.fns:
            out = ctypes.c_double(math.nan)
            spectrum = np.ascontiguousarray(curvature, dtype=np.float64)
            status = self.fns["sgdnoise_critical_learning_rate"](
                0, 1, spectrum.size, spectrum.ctypes.data, None, max(1, min(sizes.get("batch_size", 1), 2**62)), mu,
                ctypes.byref(out))
            if status != 0 or not math.isfinite(out.value):
                return None
            return out.value if m == "at_label" else out.value * (1 + 1e-12)
        if curvature is None:
            return None
        top = float(np.max(curvature))
        if not (top > 0 and math.isfinite(top)):
            return None
        classic = 2 * (1 + mu) / top
        return {"at_classic": classic, "above_classic": np.nextafter(classic, math.inf), "far_above": classic * 1e6,
                "at_label": classic, "above_label": classic}[m]

    # -- handles ------------------------------------------------------------------------------------------

    def make_handle(self, family: str, plan: Plan, *, prepared: bool, skip: str) -> int | None:
        """A handle of ``family`` from one of its creators called with valid arguments; when
        ``prepared``, also passed through every other function of the family that takes it first
        and writes no output (setters, runs), in header order, with valid arguments."""
        creators = hm.creators(self.header, family)
        if not creators:
            return None
        creator = creators[plan.seed % len(creators)]
        sub = Plan(d=plan.d, n=plan.n, length=plan.length, batch=plan.batch, codes=self.valid_codes(creator, plan),
                   seed=plan.seed + 1, reals=self.valid_reals(creator, plan), work={}, callback="null")
        case = self.build(creator, sub, depth=1)
        status = self.call(case)
        slot = next(iter(case.out_handles.values()))
        if status != STATUS_OK:
            return None
        address = int(slot[1])
        if not prepared:
            return address
        destructor = hm.destructor(self.header, family)
        for f in self.header.functions.values():
            if f.name in (skip, creator.name) or (destructor and f.name == destructor.name):
                continue
            if not f.params or hm.classify(f, f.params[0]) != hm.HANDLE or hm.handle_family(f.params[0], f, self.header) != family:
                continue
            if any(hm.classify(f, p) in (hm.OUTPUT, hm.OUT_HANDLE) for p in f.params):
                continue
            work = {"steps": 64, "burn_in": 8, "chains": 2, "threads": 0}
            sub = Plan(d=plan.d, n=plan.n, length=plan.length, batch=plan.batch, codes=self.valid_codes(f, plan),
                       seed=plan.seed + 2, reals=self.valid_reals(f, plan), work=work, callback="null")
            c = self.build(f, sub, depth=1)
            c.args[0] = address
            self.call(c)
        return address

    def valid_codes(self, fn: hm.Function, plan: Plan) -> dict[str, int]:
        codes = {}
        for p in fn.params:
            if hm.classify(fn, p) == hm.CODE:
                e = self.header.enum_for(p.name, fn)
                values = e.values if e else [0]
                codes[p.name] = plan.codes.get(p.name, values[plan.seed % len(values)])
        return codes

    def valid_reals(self, fn: hm.Function, plan: Plan) -> dict[str, float]:
        return {p.name: plan.reals.get(p.name, sum(REAL_RANGES.get(p.name, (0.1, 1.0))) / 2)
                for p in fn.params if hm.classify(fn, p) == hm.REAL}

    def free(self, case: Case) -> None:
        for family, address in case.handles:
            if address not in case.consumed:
                self.fns[hm.destructor(self.header, family).name](address)
        if case.fn.name.endswith("_free"):
            return
        for name, slot in case.out_handles.items():
            if int(slot[1]) not in (HANDLE_SENTINEL, 0):
                family = hm.handle_family(case.fn.param(name), case.fn, self.header)
                self.fns[hm.destructor(self.header, family).name](int(slot[1]))

    # -- calling and checking -----------------------------------------------------------------------------

    def call(self, case: Case):
        if self.breadcrumb:
            self.breadcrumb.seek(0)
            self.breadcrumb.write(case.description + "\n")
            self.breadcrumb.truncate()
            self.breadcrumb.flush()
        return self.fns[case.fn.name](*case.args)

    def run_case(self, fn: hm.Function, plan: Plan) -> None:
        base_ok = False
        if len(plan.mutations) == 1 and fn.returns.base == "sgdnoise_status":
            # The exact status of a single bad argument is checked only when the same call without
            # it succeeds (else the call may fail first for its other, legitimate, reason).
            base = self.build(fn, Plan(**{**plan.__dict__, "mutations": []}))
            try:
                base_ok = self.call(base) == STATUS_OK
            finally:
                self.free(base)
        case = self.build(fn, plan)
        try:
            result = self.call(case)
            self.check(case, result, base_ok=base_ok)
        finally:
            self.free(case)

    def check(self, case: Case, result, *, base_ok: bool = False) -> None:
        fn, where = case.fn, case.description
        for name, buf in case.buffers.items():
            assert buf.guards_intact(), f"{where}: wrote outside {name}" + ("" if buf.output else " or into this const input")
        if fn.returns.base == "char" and fn.returns.pointers == 1:
            assert result is not None, f"{where}: returned NULL"
            result.decode("utf-8")
            return
        if fn.returns.base != "sgdnoise_status":
            return
        status = result
        assert status in self.statuses, f"{where}: undocumented status {status}"
        if status != STATUS_OK:
            message = self.message()
            assert message, f"{where}: status {status} with an empty message"
            message.decode("utf-8")
            critical = self.critical()
            if status == UNSTABLE:
                assert math.isnan(critical) or critical > 0, f"{where}: UNSTABLE with critical lr {critical}"
            else:
                assert math.isnan(critical), f"{where}: status {status} but critical lr {critical} (not NaN)"
            for name, buf in case.buffers.items():
                if buf.output:
                    assert buf.written().size == 0, f"{where}: failed with status {status} but wrote into {name}"
            for name, slot in case.out_handles.items():
                assert int(slot[1]) == HANDLE_SENTINEL, f"{where}: failed with status {status} but set {name}"
        else:
            garbage_in = hm.unchecked_inputs(fn, self.header) and any(
                m in ("nan", "inf", "-inf", "huge_scale") for m in case.mutations.values())
            if fn.name not in hm.NAN_DOCUMENTED_FUNCTIONS and not garbage_in:
                for name, buf in case.buffers.items():
                    if buf.output and buf.dtype == np.float64 and name not in hm.NAN_DOCUMENTED_OUTPUTS:
                        assert not np.isnan(buf.written()).any(), f"{where}: OK with a NaN in {name}: {buf.written()}"
            for name, slot in case.out_handles.items():
                assert int(slot[1]) not in (HANDLE_SENTINEL, 0), f"{where}: OK without setting {name}"
        self.check_rejections(case, status, base_ok)

    def check_rejections(self, case: Case, status: int, base_ok: bool) -> None:
        """Arguments the contract rejects whatever else the call holds, and (for a single
        mutation on a valid call) the exact status."""
        fn, where, muts, values = case.fn, case.description, case.mutations, case.values
        single = len(muts) == 1 and base_ok
        expected: set[int] = set()  # for a single mutation: the statuses that are right
        for p in fn.params:
            kind, m, v = hm.classify(fn, p), muts.get(p.name), values.get(p.name)
            if kind == hm.SIZE:
                if v < 0 or (v == 0 and not hm.zero_allowed(fn, p.name)):
                    assert status != STATUS_OK, f"{where}: accepted {p.name} = {v}"
                    if m:
                        expected = {INVALID}
                elif m in ("huge37", "huge62", "max", "overflow_nd", "dense_overflow_d") and hm.sized_by(fn, p.name):
                    assert status != STATUS_OK, f"{where}: accepted {p.name} = {v}"
                    expected = {OUT_OF_MEMORY}
                elif m in ("large_d", "dense_overflow_d") and case.dense_d:
                    assert status != STATUS_OK, f"{where}: accepted a dense {v} x {v} matrix"
                    expected = {OUT_OF_MEMORY}
                elif m == "n_plus_1" and values.get("sampling") == 1 and 0 < values.get("n", 0) < v:
                    assert status != STATUS_OK, f"{where}: batch_size > n without replacement accepted"
                    expected = {INVALID}
            elif kind == hm.CODE and (v < 0 or v >= 64):
                assert status != STATUS_OK, f"{where}: accepted {p.name} = {v}"
                expected = {INVALID}
            elif kind == hm.REAL and not math.isfinite(v):
                assert status != STATUS_OK, f"{where}: accepted {p.name} = {v}"
                expected = {INVALID}
            elif kind == hm.REAL and p.name == "momentum" and not 0 <= v < 1:
                assert status != STATUS_OK, f"{where}: accepted momentum = {v}"
                expected = {INVALID}
            elif kind in (hm.HANDLE, hm.OUT_HANDLE) and m == "null" and not fn.name.endswith("_free"):
                assert status != STATUS_OK, f"{where}: accepted a NULL {p.name}"
                expected = {INVALID}
            elif kind == hm.INPUT and m in ("nan", "inf", "-inf") and single:
                expected = {STATUS_OK, INVALID}
            elif kind == hm.INPUT and m == "nonsymmetric" and single:
                expected = {STATUS_OK, NOT_SYMMETRIC}
        if single and expected:
            assert status in expected, f"{where}: status {status}, expected one of {sorted(expected)}: " \
                                       f"{self.message().decode() if status else ''}"


# --- Running ------------------------------------------------------------------------------------------


def library_path() -> str:
    import sgdnoise._lib as lib  # noqa: PLC0415
    return lib.lib._name


def fuzz_function(harness: Harness, fn: hm.Function, cases: int) -> int:
    """Runs ``cases`` hypothesis examples of ``fn``; returns the number executed."""
    from hypothesis import HealthCheck, given, settings

    if not fn.params:
        case = Case(fn, [], {}, {}, [], set(), [], {}, {}, False, f"{fn.name}()")
        for _ in range(3):
            harness.check(case, harness.call(case))
        return 3
    counter = [0]

    @settings(max_examples=cases, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(harness.strategy(fn))
    def fuzz(plan):
        counter[0] += 1
        harness.run_case(fn, plan)

    fuzz()
    return counter[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=150)
    parser.add_argument("--report", required=True)
    parser.add_argument("--breadcrumb")
    parser.add_argument("functions", nargs="*")
    args = parser.parse_args(argv)
    np.seterr(all="ignore")
    import warnings  # noqa: PLC0415
    warnings.simplefilter("ignore", RuntimeWarning)
    header = hm.load()
    harness = Harness(header, ctypes.CDLL(library_path()), Path(args.breadcrumb) if args.breadcrumb else None)
    names = args.functions or list(header.functions)
    with open(args.report, "a") as report:
        for name in names:
            start = time.monotonic()
            entry = {"name": name}
            try:
                entry["cases"] = fuzz_function(harness, header.functions[name], args.cases)
                entry["ok"] = True
            except BaseException as exc:  # noqa: BLE001 - reported to the parent test
                entry["ok"] = False
                parts = []
                for sub in getattr(exc, "exceptions", None) or [exc]:  # hypothesis groups distinct failures
                    parts.append("".join(traceback.format_exception_only(type(sub), sub)).strip())
                    parts += [str(n) for n in getattr(sub, "__notes__", [])]
                entry["error"] = "\n".join(parts)[-6000:]
            entry["seconds"] = round(time.monotonic() - start, 2)
            report.write(json.dumps(entry) + "\n")
            report.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
