"""The engine of the fuzz suite: property-based calls of every function of include/sgdnoise.h.

For each function of the header (see header_model.py), hypothesis draws a *plan*: a consistent,
valid problem (small sizes, SPD matrices, enum codes in range, a stable-looking learning rate) and
zero to three *mutations*, each turning one parameter adversarial: NULL pointers; zero, negative,
huge and overflowing sizes (n*d past 2^63; d = 10^6 for a dense matrix); NaN and +-Inf scalars and
entries; non-symmetric, indefinite, singular, rank-deficient, badly scaled matrices; batch sizes
outside [1, N]; momentum at 1, 0.999, negative; text arguments NULL, empty, naming no file or a
file that is no shared library, 5,000 characters long or not UTF-8; learning rates at, just above and far above the
critical one; out-of-range enum codes and codes a function does not accept; ABI version numbers of
other majors and minors; result structs whose .size is 0, below 8, one field, a field boundary,
larger than the struct or SIZE_MAX (a .size in the middle of a field: test_fuzz.py's own test);
NULL, fresh and used handles, handles of the other family, freed handles, pointers to
Python-owned memory (zeros, and a byte copy of a live handle's object); progress callbacks that
cancel. Besides the drawn examples, every function that takes a handle is called with each bad
handle (NULL, other family, freed, foreign, forged) on valid plans, every destructor with a live,
a freed (double free), a wrong-kind, a forged and a foreign handle, and every function with a
result struct with each .size of a field boundary, sizeof, sizeof + 24, 0, 7, SIZE_MAX and NULL
(bad_handle_cases, struct_size_cases).

Every output buffer sits between guard zones and is filled with a signalling-NaN sentinel; every
input sits between guards too and is compared byte for byte after the call. The properties checked
after every call (``check``):

* the status is one of the header's sgdnoise_status codes;
* a failing call leaves a non-empty thread-local message, a critical learning rate only with
  UNSTABLE, every output body, result struct (all of it, .size included) and out-handle untouched;
* no call writes outside its outputs (guards intact) or into its const inputs (or into the memory
  behind a foreign or forged handle);
* a result struct: .size is never written; after a success every field that lies wholly within
  min(.size, sizeof) is written, and nothing else: no byte at or beyond .size, no part of a field
  that .size cuts; its ``1 when ..., else 0`` flags are 0 or 1; an ``int *`` output gets a value
  of its enum, written as a C int (4 bytes);
* a successful call writes no NaN except where the header documents one (NAN_DOCUMENTED_OUTPUTS;
  a simulation's estimates only when its summary says diverged);
* arguments the contract rejects are rejected with the right status: a negative or zero size
  (INVALID_ARGUMENT), a size or product no memory holds (OUT_OF_MEMORY), an enum code out of range
  or one the function does not accept ("Accepted only by ..."), a non-finite scalar, a momentum or
  flat_tolerance outside [0, 1), a result struct with .size < 8, a NULL handle or handle output, a
  handle of the other family, a freed handle, a foreign pointer (INVALID_ARGUMENT), a
  non-symmetric matrix (NOT_SYMMETRIC when read), batch_size > n without replacement;
* destructors ignore NULL, freed (double free), wrong-kind and foreign pointers: a wrong-kind or
  forged handle's real object stays usable, and a freed handle is INVALID_ARGUMENT afterwards;
* the version functions agree with the header's macros, and sgdnoise_abi_compatible follows its
  documented rule for every version number drawn;
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
import re
import struct
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
STRUCT_FILL = 0xC3                          # the bytes of a result struct before the call
STRUCT_GUARD = 64                           # guard bytes on each side of a result struct
STRUCT_SLACK = 24                           # bytes the caller owns past sizeof (a "newer, larger" struct)

# --- Mutation catalogues -----------------------------------------------------------------------------

SIZE_MUTATIONS = ["zero", "minus1", "min", "huge37", "huge62", "max"]
CODE_MUTATIONS = ["neg1", "int_min", "int_max", "beyond", "far"]
VERSION_MUTATIONS = ["zero", "prev_major", "next_major", "prev_minor", "next_minor", "next_patch", "max"]
# (.size cutting a field in the middle is checked by test_fuzz.py's own test, so that a library
# writing the part of a cut field does not stop the exploration of everything else.)
STRUCT_MUTATIONS = ["null", "size_zero", "size_7", "size_field", "size_partial", "size_larger", "size_max"]
BAD_HANDLES = ["null", "other_family", "freed", "foreign", "forged"]
HANDLE_MUTATIONS = BAD_HANDLES + ["fresh"]
FLAT_TOLERANCE_MUTATIONS = ["one", "below_one", "large_tol", "tiny_tol"]
REAL_MUTATIONS = ["nan", "inf", "-inf", "zero", "negzero", "neg", "huge", "denormal"]
LR_MUTATIONS = ["at_classic", "above_classic", "at_label", "above_label", "far_above", "tiny_lr"]
MOMENTUM_MUTATIONS = ["one", "below_one", "0.999", "neg_tiny", "1.5"]
INPUT_MUTATIONS = ["null", "nan", "inf", "-inf"]
SYMMETRIC_MUTATIONS = ["nonsymmetric", "indefinite", "zero", "rank1", "wide", "huge_scale", "tiny_scale", "negdef"]
DATA_MUTATIONS = ["zero", "huge_scale", "duplicate_rows", "tiny_scale"]
VECTOR_MUTATIONS = ["zero", "negative", "huge_scale", "wide"]
STRING_MUTATIONS = ["null", "empty", "missing_file", "not_a_library", "long", "non_utf8"]
LIST_MUTATIONS = {"lrs": ["zero", "negative", "huge_scale"], "momenta": ["one", "negative", "0.999"],
                  "batch_sizes": ["zero", "negative", "huge"], "weight_decays": ["negative", "huge_scale"]}


def mutations_for(fn: hm.Function, p: hm.Param, header: hm.Header | None = None) -> list[str]:
    kind = hm.classify(fn, p)
    if kind == hm.SIZE:
        if p.name == "capacity":
            # The caller's statement of its output buffer's size: too small a value must be
            # refused; a larger one than the buffer is a lie no callee can detect.
            return ["zero", "minus1", "min", "too_small"]
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
        e = header.code_enum(fn, p) if header else None
        return CODE_MUTATIONS + (["unaccepted"] if e and set(e.values) - set(e.accepted_by(fn)) else [])
    if kind == hm.REAL:
        extra = LR_MUTATIONS if p.name == "lr" else MOMENTUM_MUTATIONS if p.name == "momentum" else \
            FLAT_TOLERANCE_MUTATIONS if p.name == "flat_tolerance" else []
        return REAL_MUTATIONS + extra
    if kind == hm.SEED:
        return ["zero", "max"]
    if kind == hm.VERSION:
        return VERSION_MUTATIONS
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
    if kind in (hm.OUTPUT, hm.OUT_HANDLE, hm.CODE_OUTPUT):
        return ["null"]
    if kind == hm.STRUCT_OUTPUT:
        return STRUCT_MUTATIONS
    if kind == hm.HANDLE:
        return HANDLE_MUTATIONS
    if kind == hm.CALLBACK:
        return ["null", "continue", "cancel"]
    if kind == hm.CONTEXT:
        return ["null"]
    if kind == hm.STRING:
        return STRING_MUTATIONS
    raise AssertionError(kind)


def valid_strings() -> dict[str, bytes | None]:
    """The valid text arguments, by name: sgdnoise_use_blas_ilp64's are numpy's ILP64 OpenBLAS and
    its symbol prefix and suffix (as the Python package finds them), or NULL (back to the linked
    OpenBLAS) where numpy has none."""
    try:
        import sgdnoise._lib as lib  # noqa: PLC0415
        found = lib._numpy_openblas()
    except Exception:  # noqa: BLE001 - a package being ported may fail to import in any way
        found = None
    if found is None:
        return {"library": None, "symbol_prefix": None, "symbol_suffix": None}
    return {"library": found[0].encode(), "symbol_prefix": found[1], "symbol_suffix": found[2]}


def string_argument(name: str, mutation: str | None, valid: dict[str, bytes | None]) -> bytes | None:
    """The text a STRING parameter gets: its valid value, or the mutation's."""
    return {None: valid.get(name), "null": None, "empty": b"", "missing_file": b"/nonexistent/sgdnoise-fuzz.so",
            "not_a_library": str(Path(__file__).resolve()).encode(), "long": b"x" * 5000,
            "non_utf8": b"\xff\xfe\x80 not UTF-8"}[mutation]


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


CODE_BITS = np.uint64(0x7FF45E17A5A5A5A5)  # an int output before the call: low half no enum value


class CodeBuffer(Buffer):
    """An ``int *`` output: one 8-byte sentinel entry between guards, of which a C int is the low
    half (0xA5A5A5A5, no code); the high half shows a write wider than an int."""

    def __init__(self):
        super().__init__(None, 1, np.int32, output=True)
        self.raw[GUARD] = CODE_BITS

    def written(self) -> np.ndarray:
        body = self.raw[GUARD:GUARD + 1]
        return body[body != CODE_BITS]

    def value(self) -> int:
        return int(self.raw[GUARD:GUARD + 1].view(np.int32)[0])

    def width_ok(self) -> bool:
        return int(self.raw[GUARD]) >> 32 == int(CODE_BITS) >> 32


class StructBuffer:
    """A size-prefixed result struct between guard zones: ``sizeof + STRUCT_SLACK`` bytes the
    caller owns, filled with STRUCT_FILL, with ``declared`` in its leading size_t."""

    output = True

    def __init__(self, struct: hm.Struct, declared: int):
        self.struct, self.declared, self.sizeof = struct, declared, struct.sizeof
        self.extent = self.sizeof + STRUCT_SLACK
        self.raw = np.full(2 * STRUCT_GUARD + self.extent, STRUCT_FILL, dtype=np.uint8)
        self.raw[:STRUCT_GUARD] = GUARD_BYTE
        self.raw[STRUCT_GUARD + self.extent:] = GUARD_BYTE
        self.raw[STRUCT_GUARD:STRUCT_GUARD + 8] = np.frombuffer(int(declared).to_bytes(8, "little"), dtype=np.uint8)
        self.snapshot = self.raw.copy()

    @property
    def address(self) -> int:
        return self.raw.ctypes.data + STRUCT_GUARD

    @property
    def body(self) -> np.ndarray:
        return self.raw[STRUCT_GUARD:STRUCT_GUARD + self.extent]

    def guards_intact(self) -> bool:
        return bool((self.raw[:STRUCT_GUARD] == GUARD_BYTE).all()
                    and (self.raw[STRUCT_GUARD + self.extent:] == GUARD_BYTE).all())

    def changed(self) -> np.ndarray:
        """Offsets (from the struct's start) of the bytes the call changed."""
        return np.flatnonzero(self.body != self.snapshot[STRUCT_GUARD:STRUCT_GUARD + self.extent])

    @property
    def limit(self) -> int:
        """What the library may fill: min(.size, sizeof), for a valid .size (>= 8)."""
        return min(self.declared, self.sizeof)

    def complete_fields(self) -> list[hm.StructField]:
        """The fields after .size that lie wholly within the limit."""
        return [f for f in self.struct.fields[1:]
                if self.struct.offset(f.name) + self.struct.size_of(f.name) <= self.limit]

    def cut_fields(self) -> list[hm.StructField]:
        """Fields that the limit cuts: begin before it and end after it."""
        return [f for f in self.struct.fields[1:]
                if self.struct.offset(f.name) < self.limit < self.struct.offset(f.name) + self.struct.size_of(f.name)]

    def allowed(self) -> np.ndarray:
        """A mask of the bytes a successful call may write: the complete fields, and the padding
        between fields within the limit (never .size, a cut field or anything past the limit)."""
        mask = np.zeros(self.extent, dtype=bool)
        mask[8:self.limit] = True
        for f in self.struct.fields:
            o, n = self.struct.offset(f.name), self.struct.size_of(f.name)
            if f.name == self.struct.fields[0].name or o + n > self.limit:
                mask[o:o + n] = False
        return mask

    def field_bytes(self, f: hm.StructField) -> bytes:
        o = self.struct.offset(f.name)
        return self.body[o:o + self.struct.size_of(f.name)].tobytes()

    def field_written(self, f: hm.StructField) -> bool:
        o = self.struct.offset(f.name)
        n = self.struct.size_of(f.name)
        return bool((self.body[o:o + n] != self.snapshot[STRUCT_GUARD + o:STRUCT_GUARD + o + n]).any())

    def value(self, name: str):
        return getattr(self.struct.ctype.from_buffer_copy(self.body[:self.sizeof].tobytes()), name)

    def outcome(self) -> tuple:
        """The fields' bytes (not the padding, which a copy may fill with anything)."""
        return tuple((f.name, self.field_bytes(f)) for f in self.struct.fields)


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
    structs: dict[str, StructBuffer] = field(default_factory=dict)
    # (family, address, alive): a handle whose state the check verifies after a destructor call
    # (alive: a wrong-kind free must leave it usable; dead: a freed one must be INVALID_ARGUMENT).
    probes: list[tuple[str, int, bool, Plan]] = field(default_factory=list)


STATE_PARAMS = hm.STATE_INPUTS


def serialized_state(family: str, d: int, seed: int) -> np.ndarray:
    """A valid state (docs/state_format.md) of an accumulator or a sketch of dimension d, built from
    the documented layout: three random rows, their mean and centred scatter (for the sketch, its
    top two scaled singular directions as the rows, ℓ = 2), and an XXH64 checksum."""
    import xxhash  # noqa: PLC0415

    g = np.random.default_rng([seed, 0x57A7E]).standard_normal((3, d))
    mean = g.mean(axis=0)
    centred = g - mean
    if family == "sketch":
        _, sigma, vt = np.linalg.svd(centred, full_matrices=False)
        live = int(min(2, np.sum(sigma > 1e-12 * sigma[0])))
        rows = np.zeros((2, d))
        rows[:live] = sigma[:live, None] * vt[:live]
        squares = np.zeros(2)
        squares[:live] = sigma[:live] ** 2
        payload = struct.pack("<QQQQdd", d, 2, 3, live, float(sigma[live:] @ sigma[live:]), float(sigma @ sigma)) + \
            mean.astype("<f8").tobytes() + squares.astype("<f8").tobytes() + rows.astype("<f8").tobytes()
        kind = 2
    else:
        scatter = centred.T @ centred
        payload = struct.pack("<QQ", d, 3) + mean.astype("<f8").tobytes() + \
            scatter[np.triu_indices(d)].astype("<f8").tobytes()
        kind = 1
    body = b"SGDNSTAT" + struct.pack("<IIQ", 1, kind, len(payload)) + payload
    return np.frombuffer(body + struct.pack("<Q", xxhash.xxh64(body).intdigest()), dtype=np.uint8)


def spd(rng: np.random.Generator, d: int, lo: float, hi: float) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    e = rng.uniform(lo, hi, d)
    a = (q * e) @ q.T
    return 0.5 * (a + a.T)


SYMMETRIC_RANGES = {"hessian": (0.2, 1.0), "a": (0.2, 1.0), "a_hat": (0.2, 1.0), "noise": (0.0, 0.3), "sigma0": (0.0, 0.3),
                    "b": (0.0, 0.3), "input_noise": (0.0, 0.3), "weight_decay": (0.0, 0.3), "lr_matrix": (0.5, 1.0)}
REAL_RANGES = {"lr": (0.01, 0.5), "momentum": (0.0, 0.9), "noise_var": (0.0, 2.0), "alpha": (0.5, 4.0),
               "ratio": (0.001, 0.1), "a": (0.1, 2.0), "flat_tolerance": (0.0, 1e-3)}


class Harness:
    def __init__(self, header: hm.Header, lib: ctypes.CDLL, breadcrumb: Path | None = None):
        self.header, self.lib = header, lib
        self.fns = {name: hm.bind(lib, fn) for name, fn in header.functions.items()}
        self.message = self.fns["sgdnoise_last_error_message"]
        self.critical = self.fns["sgdnoise_last_error_critical_learning_rate"]
        self.statuses = set(header.statuses.values())
        self.strings = valid_strings()
        self.breadcrumb = open(breadcrumb, "w") if breadcrumb else None

    # -- drawing plans --------------------------------------------------------------------------------

    def strategy(self, fn: hm.Function):
        from hypothesis import strategies as st

        codes = {p.name: st.sampled_from(self.accepted_codes(fn, p)) for p in fn.params if hm.classify(fn, p) == hm.CODE}
        reals = {p.name: st.floats(*REAL_RANGES.get(p.name, (0.1, 1.0)))
                 for p in fn.params if hm.classify(fn, p) == hm.REAL}
        work = {"steps": st.integers(1, 200), "burn_in": st.integers(0, 50), "chains": st.integers(1, 3),
                "threads": st.integers(0, 2)}
        work = {k: v for k, v in work.items() if k in fn.names}
        targets = [(p.name, m) for p in fn.params for m in mutations_for(fn, p, self.header)]
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
                values = self.accepted_codes(fn, p)
                codes[p.name] = int(values[rng.integers(len(values))])
        reals = {p.name: float(rng.uniform(*REAL_RANGES.get(p.name, (0.1, 1.0))))
                 for p in fn.params if hm.classify(fn, p) == hm.REAL}
        work = {k: v for k, v in {"steps": 200, "burn_in": 20, "chains": 2, "threads": int(rng.integers(0, 3))}.items()
                if k in fn.names}
        callback = "null"
        if hm.takes_operator_callback(fn):
            # A product callback must compute a product for a valid call: one eigenpair at each end
            # of a d >= 3 operator, a few probes and steps.
            callback, d = "operator", max(d, 3)
            work.update({k: v for k, v in {"k": 1, "probes": 3, "steps": 4, "max_products": 0}.items() if k in fn.names})
        return Plan(d=d, n=n, length=int(rng.integers(1, 6)), batch=int(rng.integers(1, n + 1)), codes=codes,
                    seed=seed, reals=reals, work=work, callback=callback)

    def outcome(self, case: Case, result) -> tuple:
        """What a call produced, for comparing runs: the status and every output's bytes (a new
        handle counts as "set", its address differs from run to run)."""
        outputs = tuple((name, buf.raw.tobytes()) for name, buf in sorted(case.buffers.items()) if buf.output)
        outputs += tuple((name, sbuf.outcome()) for name, sbuf in sorted(case.structs.items()))
        handles = tuple((name, int(slot[1]) != HANDLE_SENTINEL) for name, slot in sorted(case.out_handles.items()))
        if isinstance(result, bytes):
            result = result.decode()
        return result, outputs, handles

    # -- building a call ----------------------------------------------------------------------------------

    def build(self, fn: hm.Function, plan: Plan, *, depth: int = 0) -> Case:
        rng = np.random.default_rng(plan.seed)
        muts = dict(plan.mutations)
        sizes = {"d": plan.d, "n": plan.n, "points": plan.length, "count": plan.length, "batch_size": plan.batch,
                 "small_batch": plan.batch, "big_batch": plan.batch + plan.length}   # small < big
        sizes.update(plan.work)
        # A serialized state input: a valid state of the function's family, `size` its length.
        family = fn.name.split("_")[1]  # sgdnoise_<family>_import
        state = serialized_state(family, plan.d, plan.seed) if STATE_PARAMS & set(fn.names) else None
        if state is not None:
            sizes["size"] = state.size
        layout_code = plan.codes.get("layout")
        weighted = layout_code == 2  # SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM: the first operand holds 2d
        diagonal = layout_code == 1 or weighted
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
            if "n" in size_args and muts.get("n") is None:
                size_args["n"] = n_alloc  # the rows the buffers hold: a valid n for a huge d
        list_name = hm.list_size_of(fn)
        len_alloc = size_args.get(list_name, plan.length) if list_name else plan.length
        if not 1 <= len_alloc <= 64:
            len_alloc = plan.length
        # (points x d x d: the whole Sigma_t at each recorded step of a learning curve.)
        generous = max(64, 4 * max(plan.d * plan.d, plan.n * plan.d, plan.n, plan.length, 9),
                       plan.length * plan.d * plan.d)
        if large:
            generous = max(generous, 2 * d_alloc * max(n_alloc, 1))
        if "capacity" in size_args and muts.get("capacity") in (None, "too_small"):
            size_args["capacity"] = 8 * generous if muts.get("capacity") is None else 8  # the bytes the output holds

        # Reals.
        real_args = {}
        lam_max = None
        for p in fn.params:
            if hm.classify(fn, p) == hm.REAL:
                real_args[p.name] = plan.reals[p.name]

        keep, buffers, out_handles, handles, consumed = [], {}, {}, [], set()
        structs: dict[str, StructBuffer] = {}
        to_free: list[tuple[str, int]] = []
        probes: list[tuple[str, int, bool, Plan]] = []
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
                    if weighted and p.name in hm.FIRST_OPERANDS:  # nodes, then positive weights
                        arr = np.concatenate([arr, rng.uniform(0.5, 3.0, arr.size)])
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
                    arr = rng.uniform(0.1, 1.0, k) if p.name in ("spectrum", "nodes", "weights") else rng.standard_normal(k)
                    if m == "zero":
                        arr[:] = 0
                    elif m == "negative":
                        arr = -np.abs(arr) - 0.1
                    elif m == "huge_scale":
                        arr *= 1e300
                    elif m == "wide":
                        arr = np.geomspace(1e-12, 1e6, k) if k > 1 else np.array([1e6])
                elif p.name in hm.EIGEN_INPUTS:
                    # Eigenpairs of an operator and a block of Σ on them: k of them (the size k,
                    # clamped to what d allows), orthonormal rows, a symmetric positive block.
                    k = min(max(int(size_args.get("k", 1)), 1), d_alloc, 8)
                    if p.name == "eigenvalues":
                        arr = rng.uniform(0.1, 1.0, k)
                    elif p.name == "eigenvectors":
                        arr = np.linalg.qr(rng.standard_normal((d_alloc, k)))[0].T.copy()
                    else:
                        b = rng.standard_normal((k, k))
                        arr = b @ b.T + k * np.eye(k)
                elif p.name in hm.STATE_INPUTS:
                    arr = np.zeros_like(state) if m == "zero" else state
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
                    elif p.name == "at_steps":
                        # Recorded steps: strictly increasing in 0..k (k the schedule's length).
                        arr = np.sort(rng.choice(k + 1, size=k, replace=False))
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
            elif kind == hm.CODE_OUTPUT:
                if m == "null":
                    args_by_name[p.name] = None
                    continue
                buf = CodeBuffer()
                buffers[p.name] = buf
                args_by_name[p.name] = buf.address
            elif kind == hm.STRUCT_OUTPUT:
                if m == "null":
                    args_by_name[p.name] = None
                    continue
                struct = self.header.struct_of(p)
                declared = self.struct_size(struct, m, plan)
                sbuf = StructBuffer(struct, declared)
                structs[p.name] = sbuf
                args_by_name[p.name] = sbuf.address
                values[p.name] = declared
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
                e = self.header.code_enum(fn, p)
                top = max(e.values) if e else 1
                v = plan.codes[p.name]
                unaccepted = sorted(set(e.values) - set(e.accepted_by(fn))) if e else []
                v = {"neg1": -1, "int_min": INT32_MIN, "int_max": INT32_MAX, "beyond": top + 1, "far": 1000,
                     "unaccepted": unaccepted[plan.seed % len(unaccepted)] if unaccepted else v}.get(m, v)
                args_by_name[p.name] = v
                values[p.name] = v
            elif kind == hm.SEED:
                v = {"zero": 0, "max": 2**64 - 1}.get(m, plan.seed)
                args_by_name[p.name] = v
            elif kind == hm.VERSION:
                v = self.version_argument(m)
                args_by_name[p.name] = v
                values[p.name] = v
            elif kind == hm.CONTEXT:
                args_by_name[p.name] = None if m == "null" else id(plan)
            elif kind == hm.STRING:
                text = string_argument(p.name, m, self.strings)
                values[p.name] = text
                if text is None:
                    args_by_name[p.name] = None
                    continue
                buf = Buffer(np.frombuffer(text + b"\0", dtype=np.uint8), len(text) + 1, np.uint8, output=False)
                buffers[p.name] = buf
                args_by_name[p.name] = buf.address
            elif kind == hm.HANDLE:
                family = hm.handle_family(p, fn, self.header)
                is_destructor = fn.name == hm.destructor(self.header, family).name
                if m == "null" or depth > 0:
                    args_by_name[p.name] = None
                    continue
                if m == "foreign":
                    # Python-owned memory that never was a handle (zeros: a plausible empty object).
                    fake = Buffer(np.zeros(32, dtype=np.uint64), 32, np.uint64, output=False)
                    buffers[p.name] = fake
                    args_by_name[p.name] = fake.address
                    continue
                if m == "forged":
                    # A byte copy of a live handle's object header, at another (Python-owned)
                    # address: a tag or isa check alone would take it for a handle.
                    real = self.make_handle(family, plan, prepared=False, skip=fn.name)
                    if real is None:
                        args_by_name[p.name] = None
                        continue
                    handles.append((family, real))
                    fake = Buffer(np.frombuffer(ctypes.string_at(real, 16) + bytes(240), dtype=np.uint64), 32,
                                  np.uint64, output=False)
                    buffers[p.name] = fake
                    args_by_name[p.name] = fake.address
                    if is_destructor:
                        probes.append((family, real, True, plan))
                    continue
                if m == "other_family":
                    others = sorted(hm.families(self.header) - {family})
                    if not others:
                        args_by_name[p.name] = None
                        continue
                    other = others[plan.seed % len(others)]
                    address = self.make_handle(other, plan, prepared=False, skip=fn.name)
                    if address is None:
                        args_by_name[p.name] = None
                        continue
                    handles.append((other, address))
                    args_by_name[p.name] = address
                    if is_destructor:
                        probes.append((other, address, True, plan))
                    continue
                address = self.make_handle(family, plan, prepared=m != "fresh", skip=fn.name)
                if address is None:
                    args_by_name[p.name] = None
                    continue
                if m == "freed":
                    # Freed only after every handle of the call exists, so no handle created for
                    # this call can take over its address (the registry's documented limit).
                    to_free.append((family, address))
                    args_by_name[p.name] = address
                    continue
                handles.append((family, address))
                if is_destructor:
                    consumed.add(address)
                    probes.append((family, address, False, plan))
                args_by_name[p.name] = address
            elif kind == hm.CALLBACK:
                mode = m or plan.callback
                # A call that may run without end (a huge work size) always gets a cancelling callback.
                if any(size_args.get(w, 0) > 10**6 for w in hm.WORK_SIZES):
                    mode = "cancel"
                if mode == "null":
                    args_by_name[p.name] = hm.ctype_of(p.type)()
                elif mode == "operator":
                    # A valid product for a matvec callback: out = diag((i + 1)/(d + 1)) v, a
                    # positive definite operator with distinct eigenvalues in (0, 1).
                    # The block form (sgdnoise_block_matvec_callback) applies it to each of its rows.
                    def product(_context, d, *rest):
                        count, v, out = rest if len(rest) == 3 else (1, *rest)
                        x = ctypes.cast(v, ctypes.POINTER(ctypes.c_double))
                        y = ctypes.cast(out, ctypes.POINTER(ctypes.c_double))
                        for i in range(count * d):
                            y[i] = (i % d + 1) / (d + 1) * x[i]
                        return 0
                    cb = hm.ctype_of(p.type)(product)
                    keep.append(cb)
                    args_by_name[p.name] = cb
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
                     "neg_tiny": -1e-300, "1.5": 1.5, "tiny_lr": 1e-300, "large_tol": 0.5, "tiny_tol": 1e-300}
            if m in table:
                v = table[m]
            elif m in ("at_classic", "above_classic", "far_above", "at_label", "above_label"):
                v = self.critical_lr(fn, m, args_by_name, real_args, matrices, size_args, values) or v
            args_by_name[name] = v
            values[name] = v

        for family, address in to_free:
            self.fns[hm.destructor(self.header, family).name](address)
        args = [args_by_name[p.name] for p in fn.params]
        description = f"{fn.name}(" + ", ".join(
            f"{p.name}={self.describe(p, args_by_name[p.name], muts.get(p.name), buffers, structs)}"
            for p in fn.params) + ")"
        return Case(fn, args, buffers, out_handles, handles, consumed, keep, muts, values, dense_d, description,
                    structs, probes)

    def struct_size(self, struct: hm.Struct, m: str | None, plan: Plan) -> int:
        """The .size a call passes for a result struct: sizeof, or what the mutation says."""
        ends = [struct.offset(f.name) + struct.size_of(f.name) for f in struct.fields[1:]]
        pick = np.random.default_rng([plan.seed, 0x5173]).integers  # not the plan's generator: the
        first = struct.fields[1]                                     # arrays stay those of the base call
        if m and m.startswith("size="):
            return int(m[5:])
        return {
            "size_zero": 0, "size_7": 7, "size_max": 2**64 - 1, "size_larger": struct.sizeof + STRUCT_SLACK,
            "size_field": ends[0],
            "size_partial": ends[int(pick(len(ends)))],
            "size_mid_field": struct.offset(first.name) + struct.size_of(first.name) // 2,
        }.get(m, struct.sizeof)

    def version_argument(self, m: str | None) -> int:
        """A header version number: this header's (valid), or another one."""
        major, minor, patch = (self.header.macros[f"SGDNOISE_VERSION_{k}"] for k in ("MAJOR", "MINOR", "PATCH"))
        number = lambda a, b, c: a * 10000 + b * 100 + c  # noqa: E731
        return {"zero": 0, "prev_major": number(max(major - 1, 0), minor, patch),
                "next_major": number(major + 1, minor, patch), "prev_minor": number(major, max(minor - 1, 0), patch),
                "next_minor": number(major, minor + 1, 0), "next_patch": number(major, minor, patch + 1),
                "max": 2**32 - 1}.get(m, self.header.version_number)

    def describe(self, p: hm.Param, value, mutation, buffers, structs=None) -> str:
        tag = f"<{mutation}>" if mutation else ""
        if structs and p.name in structs:
            return f"&{structs[p.name].struct.name}{{.size = {structs[p.name].declared}}}{tag}"
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
            if any(hm.classify(f, p) in hm.OUTPUT_KINDS for p in f.params):
                continue
            work = {"steps": 64, "burn_in": 8, "chains": 2, "threads": 0}
            sub = Plan(d=plan.d, n=plan.n, length=plan.length, batch=plan.batch, codes=self.valid_codes(f, plan),
                       seed=plan.seed + 2, reals=self.valid_reals(f, plan), work=work, callback="null")
            c = self.build(f, sub, depth=1)
            c.args[0] = address
            self.call(c)
        return address

    def accepted_codes(self, fn: hm.Function, p: hm.Param) -> list[int]:
        """The codes of a CODE parameter's enum that ``fn`` accepts (its valid values)."""
        e = self.header.code_enum(fn, p)
        return e.accepted_by(fn) if e else [0]

    def valid_codes(self, fn: hm.Function, plan: Plan) -> dict[str, int]:
        codes = {}
        for p in fn.params:
            if hm.classify(fn, p) == hm.CODE:
                values = self.accepted_codes(fn, p)
                v = plan.codes.get(p.name)
                codes[p.name] = v if v in values else values[plan.seed % len(values)]
        return codes

    def alive(self, family: str, address: int, plan: Plan) -> bool:
        """Whether ``address`` is a live handle of ``family``: some function of the family that
        takes it first (not the destructor, not a creator) succeeds on it with valid arguments
        (the plan the handle was made with). Creates no handle (so no address is reused)."""
        destructor = hm.destructor(self.header, family)
        for f in self.header.functions.values():
            if not f.params or hm.classify(f, f.params[0]) != hm.HANDLE or (destructor and f.name == destructor.name):
                continue
            if hm.handle_family(f.params[0]) != family or any(hm.classify(f, p) == hm.OUT_HANDLE for p in f.params):
                continue
            work = {"steps": 16, "burn_in": 0, "chains": 1, "threads": 1}
            sub = Plan(d=plan.d, n=plan.n, length=plan.length, batch=plan.batch, codes=self.valid_codes(f, plan),
                       seed=plan.seed + 3, reals=self.valid_reals(f, plan), work=work, callback="null")
            c = self.build(f, sub, depth=1)
            c.args[0] = address
            if self.call(c) == STATUS_OK:
                return True
        return False

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
        for name, sbuf in case.structs.items():
            assert sbuf.guards_intact(), f"{where}: wrote outside the {sbuf.struct.name} {name}"
            assert sbuf.changed().size == 0 or sbuf.changed().min() >= 8, f"{where}: wrote {name}->size"
        if fn.returns.base == "char" and fn.returns.pointers == 1:
            assert result is not None, f"{where}: returned NULL"
            text = result.decode("utf-8")
            if fn.name == "sgdnoise_version":
                assert text == self.header.version_string, \
                    f"{where}: returned {text!r}, the header's macros say {self.header.version_string!r}"
            return
        if fn.returns.base == "uint32_t" and "version" in fn.name:
            assert result == self.header.version_number, \
                f"{where}: returned {result}, the header's SGDNOISE_VERSION_NUMBER is {self.header.version_number}"
            return
        if fn.returns.base == "int" and not fn.returns.pointers:
            assert result in (0, 1), f"{where}: returned {result}, not a C boolean"
            version = next((case.values[p.name] for p in fn.params if hm.classify(fn, p) == hm.VERSION), None)
            if version is not None:
                library = self.fns["sgdnoise_version_number"]()
                expected = hm.abi_compatible(version, library)
                assert result == int(expected), \
                    f"{where}: returned {result} for header version {version} and library {library}, the rule says {int(expected)}"
            return
        if fn.returns.base == "void":
            self.check_probes(case)
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
            for name, sbuf in case.structs.items():
                assert sbuf.changed().size == 0, \
                    f"{where}: failed with status {status} but wrote bytes {sbuf.changed().tolist()} of {name}"
            for name, slot in case.out_handles.items():
                assert int(slot[1]) == HANDLE_SENTINEL, f"{where}: failed with status {status} but set {name}"
        else:
            self.check_success(case)
        self.check_rejections(case, status, base_ok)

    def check_success(self, case: Case) -> None:
        fn, where = case.fn, case.description
        garbage_in = hm.unchecked_inputs(fn, self.header) and any(
            m in ("nan", "inf", "-inf", "huge_scale") for m in case.mutations.values())
        nan_allowed = garbage_in
        if fn.name in hm.NAN_WHEN_DIVERGED:
            # The estimates of a diverged run are NaN: allowed when the summary says so, or when
            # the call did not ask for a summary that could say it.
            summary = next((b for b in case.structs.values() if any(f.name == "diverged" for f in b.complete_fields())), None)
            nan_allowed = nan_allowed or summary is None or summary.value("diverged") == 1
        for name, buf in case.buffers.items():
            if not buf.output:
                continue
            if isinstance(buf, CodeBuffer):
                assert buf.written().size, f"{where}: OK without writing {name}"
                assert buf.width_ok(), f"{where}: wrote more than a C int into {name}"
                e = self.header.code_enum(fn, fn.param(name))
                assert buf.value() in e.values, f"{where}: {name} = {buf.value()}, not a value of {e.name}"
            elif (buf.dtype == np.float64 and name not in hm.NAN_DOCUMENTED_OUTPUTS and not nan_allowed
                  and (fn.name, name) not in hm.NAN_DOCUMENTED_FUNCTION_OUTPUTS):
                assert not np.isnan(buf.written()).any(), f"{where}: OK with a NaN in {name}: {buf.written()}"
        for name, sbuf in case.structs.items():
            struct = sbuf.struct
            changed = sbuf.changed()
            stray = changed[~sbuf.allowed()[changed]] if changed.size else changed
            cut = [f.name for f in sbuf.cut_fields()]
            assert stray.size == 0, (f"{where}: {name}->size = {sbuf.declared} (sizeof {sbuf.sizeof}) but the call "
                                     f"wrote bytes {stray.tolist()}" + (f" (of the cut field {', '.join(cut)})" if cut else ""))
            for f in sbuf.complete_fields():
                assert sbuf.field_written(f), f"{where}: OK but {name}->{f.name} was not written (.size = {sbuf.declared})"
                v = sbuf.value(f.name)
                if f.type.base == "double" and math.isnan(v):
                    assert nan_allowed or f"{struct.name}.{f.name}" in hm.NAN_DOCUMENTED_OUTPUTS, \
                        f"{where}: OK with {name}->{f.name} = NaN, which the header does not document"
                if f.type.base in ("int32_t", "int64_t", "int") and re.match(r"1 when\b.*\belse 0\b", f.comment):
                    assert v in (0, 1), f"{where}: {name}->{f.name} = {v}, a flag must be 0 or 1"
        for name, slot in case.out_handles.items():
            assert int(slot[1]) not in (HANDLE_SENTINEL, 0), f"{where}: OK without setting {name}"

    def check_probes(self, case: Case) -> None:
        """After a destructor: the handle it was given is dead (unless it was not one of its
        kind), and the real handle behind a wrong-kind or forged pointer is still alive."""
        for family, address, expect_alive, plan in case.probes:
            alive = self.alive(family, address, plan)
            if expect_alive:
                assert alive, f"{case.description}: the live {family} handle {address:#x} is no longer usable"
            else:
                assert not alive, f"{case.description}: the {family} handle {address:#x} is still usable after its free"

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
            elif kind == hm.CODE and v not in self.accepted_codes(fn, p):
                e = self.header.code_enum(fn, p)
                assert status != STATUS_OK, f"{where}: accepted {p.name} = {v}" + (
                    f" (not a value {fn.name} accepts of {e.name})" if e else "")
                expected = {INVALID}
            elif kind == hm.REAL and not math.isfinite(v):
                assert status != STATUS_OK, f"{where}: accepted {p.name} = {v}"
                expected = {INVALID}
            elif kind == hm.REAL and p.name in hm.REAL_DOMAINS and not \
                    hm.REAL_DOMAINS[p.name][0] <= v < hm.REAL_DOMAINS[p.name][1]:
                assert status != STATUS_OK, f"{where}: accepted {p.name} = {v}"
                expected = {INVALID}
            elif kind == hm.STRUCT_OUTPUT and v is not None and v < 8:
                assert status != STATUS_OK, f"{where}: accepted {p.name}->size = {v}"
                expected = {INVALID}
            elif kind == hm.STRING and m not in (None, "null") and (p.name == "library" or values.get("library")):
                # No file of that name, or none with the routines under those symbol names.
                assert status != STATUS_OK, f"{where}: accepted {p.name} = {values[p.name]!r}"
                expected = {INVALID}
            elif kind in (hm.HANDLE, hm.OUT_HANDLE) and m in BAD_HANDLES and not fn.name.endswith("_free"):
                assert status != STATUS_OK, f"{where}: accepted a {m} {p.name}"
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
    """The library the Python package loads (SGDNOISE_LIBRARY, the bundled copy or the release
    build); without an importable package, the same lookup done here."""
    try:
        import sgdnoise._lib as lib  # noqa: PLC0415
        return lib.lib._name
    except Exception:  # noqa: BLE001 - a package being ported may fail to import in any way
        env = os.environ.get("SGDNOISE_LIBRARY")
        root = Path(__file__).resolve().parents[2]
        for path in ([Path(env)] if env else [root / "python" / "sgdnoise" / "libsgdnoise.so",
                                               root / ".build" / "release" / "libsgdnoise.so"]):
            if path.is_file():
                return str(path)
        raise


def bad_handle_cases(harness: Harness, fn: hm.Function, seeds=(21, 22)) -> int:
    """Every handle parameter of ``fn`` gets each bad handle (NULL, the other family's, a freed
    one, Python-owned memory, a forged copy) on otherwise valid calls, and a destructor also a
    fresh and a used handle (then checked dead): not left to chance. Returns the number of calls."""
    count = 0
    for p in fn.params:
        if hm.classify(fn, p) != hm.HANDLE:
            continue
        family = hm.handle_family(p)
        is_destructor = fn.name == hm.destructor(harness.header, family).name
        for m in BAD_HANDLES + (["fresh", None] if is_destructor else []):
            for seed in seeds:
                plan = harness.valid_plan(fn, seed)
                plan.mutations = [(p.name, m)] if m else []
                harness.run_case(fn, plan)
                count += 1
    return count


def struct_size_cases(harness: Harness, fn: hm.Function, seeds=(31, 32)) -> int:
    """Every result-struct parameter of ``fn`` gets every .size an older, a current and a newer
    caller may pass (each field boundary, sizeof, sizeof + slack) and the invalid ones (0, 7,
    SIZE_MAX), and NULL, on otherwise valid calls. Returns the number of calls."""
    count = 0
    for p in fn.params:
        if hm.classify(fn, p) != hm.STRUCT_OUTPUT:
            continue
        struct = harness.header.struct_of(p)
        ends = sorted({struct.offset(f.name) + struct.size_of(f.name) for f in struct.fields})
        for m in [f"size={e}" for e in ends] + ["size_zero", "size_7", "size_larger", "size_max", "null"]:
            for seed in seeds:
                plan = harness.valid_plan(fn, seed)
                plan.mutations = [(p.name, m)]
                harness.run_case(fn, plan)
                count += 1
    return count


def fuzz_function(harness: Harness, fn: hm.Function, cases: int) -> int:
    """Runs ``cases`` hypothesis examples of ``fn``; returns the number executed."""
    from hypothesis import HealthCheck, given, settings

    if not fn.params:
        case = Case(fn, [], {}, {}, [], set(), [], {}, {}, False, f"{fn.name}()")
        for _ in range(3):
            harness.check(case, harness.call(case))
        return 3
    counter = [bad_handle_cases(harness, fn) + struct_size_cases(harness, fn)]

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
