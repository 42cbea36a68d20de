"""Property-based fuzzing of every function of include/sgdnoise.h, generated from the header.

The header is parsed (header_model.py) and every declared function gets a test here: a new
function is fuzzed the day it lands, and one whose parameter has a C type without a strategy fails
``test_every_parameter_has_a_fuzz_strategy``. The calls run in a child process
(fuzz_harness.py) that writes each call to a breadcrumb file before making it, so a crash or a hang
fails the function's test with the exact arguments instead of taking pytest down. The properties
are listed in fuzz_harness.py's docstring.

Budget: SGDNOISE_FUZZ_CASES examples per function (default 120, derandomised: the same cases on
every run); SGDNOISE_FUZZ_CASES=2000 for a deeper local run.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import header_model as hm
import sgdnoise
from sgdnoise import _lib

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "fuzz_harness.py"
CASES = int(os.environ.get("SGDNOISE_FUZZ_CASES", "120"))
STALL_SECONDS = 120   # no function may take longer than this: a hang fails its test
HEADER = hm.load()
FUNCTIONS = list(HEADER.functions)


def test_header_parses_every_declaration():
    """The parser sees every function the header declares (a declaration it cannot read would
    escape the fuzz), and the library exports each one."""
    text = hm.HEADER.read_text(encoding="ascii")
    code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    declared = set(re.findall(r"\b(sgdnoise_\w+)\s*\(", re.sub(r"^\s*#.*?(?<!\\)$", "", code, flags=re.M | re.S)))
    assert declared == set(HEADER.functions)
    assert len(FUNCTIONS) >= 28
    for name in FUNCTIONS:
        assert hasattr(_lib.lib, name), f"{name} is declared but not exported"
    # Every type the header defines is in the model (a typedef it cannot read would hide the kind
    # of the parameters that use it).
    flat = re.sub(r"\{[^{}]*\}", " ", code)   # typedef bodies out: one `typedef ...;` each
    typedefs = {m.group(1) or m.group(2) for m in re.finditer(
        r"\btypedef\b[^;(]*?(?:\(\s*\*\s*(\w+)\s*\)\s*\([^;]*\)|(\w+))\s*;", flat, flags=re.S)}
    modelled = set(HEADER.enums) | set(HEADER.structs) | set(HEADER.handles) | set(HEADER.callbacks)
    assert typedefs == modelled, f"typedefs not modelled: {sorted(typedefs - modelled)}"
    for k in ("MAJOR", "MINOR", "PATCH", "NUMBER"):
        assert f"SGDNOISE_VERSION_{k}" in HEADER.macros
    assert HEADER.version_number == sum(HEADER.macros[f"SGDNOISE_VERSION_{k}"] * w
                                        for k, w in (("MAJOR", 10000), ("MINOR", 100), ("PATCH", 1)))
    for struct in HEADER.structs.values():
        assert struct.fields[0].name == "size" and struct.fields[0].type == hm.CType("size_t"), \
            f"{struct.name} does not begin with size_t size"


def test_every_parameter_has_a_fuzz_strategy():
    problems = []
    for fn in HEADER.functions.values():
        for p in fn.params:
            try:
                kind = hm.classify(fn, p)
            except TypeError as exc:
                problems.append(str(exc))
                continue
            if kind in (hm.CODE, hm.CODE_OUTPUT) and HEADER.code_enum(fn, p) is None:
                problems.append(f"{fn.name}: {p.name} ({p.type}) matches no sgdnoise_ enum")
            if kind == hm.CODE and not HEADER.code_enum(fn, p).accepted_by(fn):
                problems.append(f"{fn.name}: {p.name} accepts no value of {p.type}")
            if kind in (hm.HANDLE, hm.OUT_HANDLE):
                family = hm.handle_family(p, fn, HEADER)
                if not hm.creators(HEADER, family) or hm.destructor(HEADER, family) is None:
                    problems.append(f"{fn.name}: handle {p.name} ({family}) has no create/free pair")
            if kind == hm.STRUCT_OUTPUT and HEADER.struct_of(p).fields[0].name != "size":
                problems.append(f"{fn.name}: {p.name} ({p.type}) is not size-prefixed")
        if fn.returns.base not in ("sgdnoise_status", "void", "double", "char", "int", "uint32_t") or (
                fn.returns.base == "char" and fn.returns.pointers != 1) or (
                fn.returns.base != "char" and fn.returns.pointers):
            problems.append(f"{fn.name}: return type {fn.returns} has no check")
        if fn.returns.base == "void" and not fn.name.endswith("_free"):
            problems.append(f"{fn.name}: returns void, so it cannot report a failure")
    assert not problems, "\n".join(problems)


def test_nan_documented_outputs_agree_with_the_header():
    """NAN_DOCUMENTED_OUTPUTS names real outputs whose header comment says when they are NaN, and
    every double field of a result struct whose comment mentions NaN is in it."""
    params = {p.name for fn in HEADER.functions.values() for p in fn.params}
    for entry in hm.NAN_DOCUMENTED_OUTPUTS:
        if "." in entry:
            struct, name = entry.split(".")
            assert struct in HEADER.structs, f"{entry}: no struct {struct}"
            assert "NaN" in HEADER.structs[struct].field(name).comment, f"{entry}: its comment does not document a NaN"
        else:
            assert entry in params, f"{entry}: no parameter of that name"
            users = [fn for fn in HEADER.functions.values() if entry in fn.names]
            assert any("NaN" in fn.comment for fn in users), f"{entry}: no function using it documents a NaN"
    for fn_name, name in hm.NAN_DOCUMENTED_FUNCTION_OUTPUTS:
        fn = HEADER.functions[fn_name]
        assert name in fn.names and "NaN" in fn.comment, f"{fn_name}: {name} is not documented NaN"
    for struct in HEADER.structs.values():
        for f in struct.fields:
            if f.type.base == "double" and "NaN" in f.comment:
                assert f"{struct.name}.{f.name}" in hm.NAN_DOCUMENTED_OUTPUTS, \
                    f"{struct.name}.{f.name} is documented NaN but not in NAN_DOCUMENTED_OUTPUTS"


def test_status_enum_is_the_documented_one():
    assert HEADER.statuses == {
        "SGDNOISE_STATUS_OK": 0, "SGDNOISE_STATUS_INVALID_ARGUMENT": 1, "SGDNOISE_STATUS_NOT_SYMMETRIC": 2,
        "SGDNOISE_STATUS_NOT_POSITIVE_DEFINITE": 3, "SGDNOISE_STATUS_UNSTABLE": 4,
        "SGDNOISE_STATUS_NUMERICAL_FAILURE": 5, "SGDNOISE_STATUS_OUT_OF_MEMORY": 6, "SGDNOISE_STATUS_CANCELLED": 7}


def _kind_of_ctype(t) -> str:
    if t in (ctypes.c_void_p, ctypes.c_char_p) or (isinstance(t, type) and issubclass(t, (ctypes._Pointer, ctypes._CFuncPtr))):
        return "pointer"
    return f"{ctypes.sizeof(t)}{'f' if t in (ctypes.c_double, ctypes.c_float) else 'i'}"


def test_python_raw_bindings_match_the_header():
    """Every function _lib.py declares has the header's arity, argument sizes and return type: a
    stale binding would pass garbage to C silently."""
    checked = 0
    for name, fn in HEADER.functions.items():
        f = getattr(_lib.lib, name)
        if f.argtypes is None:
            continue  # not bound in Python (yet)
        expected = [_kind_of_ctype(hm.ctype_of(p.type)) for p in fn.params]
        actual = [_kind_of_ctype(t) for t in f.argtypes]
        assert actual == expected, f"{name}: _lib.py binds {actual}, the header declares {expected}"
        restype = hm.restype_of(fn)
        assert (f.restype is None) == (restype is None), f"{name}: restype"
        if restype is not None:
            assert _kind_of_ctype(f.restype) == _kind_of_ctype(restype), f"{name}: restype {f.restype} vs {restype}"
        checked += 1
    assert checked >= 20


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory):
    """Runs the harness over every function in child processes; a child that dies or stalls is
    restarted after the function it was fuzzing, which is reported with its last call."""
    work = tmp_path_factory.mktemp("fuzz")
    results: dict[str, dict] = {}
    remaining = list(FUNCTIONS)
    attempt = 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(Path(sgdnoise.__file__).parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    while remaining:
        attempt += 1
        report, crumb = work / f"report{attempt}.jsonl", work / f"crumb{attempt}.txt"
        stderr_path = work / f"stderr{attempt}.txt"
        with open(stderr_path, "w") as stderr:
            child = subprocess.Popen(
                [sys.executable, str(HARNESS), "--cases", str(CASES), "--report", str(report), "--breadcrumb",
                 str(crumb), *remaining], stdout=subprocess.DEVNULL, stderr=stderr, env=env)
            seen, last_progress = 0, time.monotonic()
            while child.poll() is None:
                time.sleep(0.05)
                lines = report.read_text().count("\n") if report.exists() else 0
                if lines != seen:
                    seen, last_progress = lines, time.monotonic()
                elif time.monotonic() - last_progress > STALL_SECONDS:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    break
        for line in report.read_text().splitlines() if report.exists() else []:
            entry = json.loads(line)
            results[entry["name"]] = entry
        remaining = [n for n in remaining if n not in results]
        if remaining and child.returncode is not None:
            victim = remaining.pop(0)
            how = "stalled (killed)" if child.returncode == -signal.SIGKILL else f"died with exit code {child.returncode}"
            last = crumb.read_text().strip() if crumb.exists() else "(no call recorded)"
            results[victim] = {"name": victim, "ok": False, "cases": None,
                               "error": f"the process {how} during\n  {last}\nstderr:\n{stderr_path.read_text()[-3000:]}"}
    return results


@pytest.mark.parametrize("name", FUNCTIONS)
def test_fuzz(fuzz_results, name):
    entry = fuzz_results[name]
    assert entry["ok"], f"{name}: {entry['error']}"
    expected = 3 if not HEADER.functions[name].params else min(CASES, 20)
    assert entry["cases"] >= expected, f"{name}: only {entry['cases']} cases ran"


def test_fuzz_summary(fuzz_results, capsys):
    """Prints the counts (visible with -s or in the junit report): functions and cases each."""
    total = sum(e.get("cases") or 0 for e in fuzz_results.values())
    slowest = sorted(fuzz_results.values(), key=lambda e: -e.get("seconds", 0))[:3]
    print(f"\nfuzz: {len(fuzz_results)} functions, {total} calls ({CASES} examples per function with parameters); "
          f"slowest: " + ", ".join(f"{e['name']} {e.get('seconds')} s" for e in slowest))
    assert len(fuzz_results) == len(FUNCTIONS)


# --- Result structs: a .size that cuts a field ---------------------------------------------------------

STRUCT_PARAMS = [(fn.name, p.name) for fn in HEADER.functions.values() for p in fn.params
                 if hm.classify(fn, p) == hm.STRUCT_OUTPUT]


@pytest.fixture(scope="module")
def harness():
    from fuzz_harness import Harness, library_path  # noqa: PLC0415

    return Harness(HEADER, ctypes.CDLL(library_path()))


def test_a_size_that_cuts_a_field_leaves_the_field_alone(harness):
    """The header: "the library fills the fields that fit in .size and leaves the rest". For every
    result-struct parameter and every field, .size ending in the middle of that field: a
    successful call writes every field before it and no byte of the cut one (the fuzz's own
    check, on valid calls). Kept out of the fuzz's random mutations, so that a failure here does
    not hide the fuzz's other findings."""
    problems, checked = [], 0
    for name, param in STRUCT_PARAMS:
        fn = HEADER.functions[name]
        struct = HEADER.struct_of(fn.param(param))
        bad, first = 0, None
        for f in struct.fields[1:]:
            cut = struct.offset(f.name) + struct.size_of(f.name) // 2
            for seed in range(40):
                plan = harness.valid_plan(fn, seed)
                plan.mutations = [(param, f"size={cut}")]
                case = harness.build(fn, plan)
                try:
                    status = harness.call(case)
                    if status != 0:
                        continue
                    checked += 1
                    try:
                        harness.check(case, status)
                    except AssertionError as exc:
                        bad += 1
                        first = first or str(exc)
                    break
                finally:
                    harness.free(case)
            else:
                problems.append(f"{name}: no valid call found for {param}")
        if bad:
            problems.append(f"{name}->{param}: {bad} of {len(struct.fields) - 1} cut fields written, e.g. {first}")
    assert checked
    assert not problems, f"{len(problems)} of {len(STRUCT_PARAMS)} result-struct parameters:\n" + "\n".join(problems)


# --- Python classes that own a C handle: use after close -------------------------------------------

# Constructor arguments and a plausible argument list for each method, by class name; a new
# handle-owning class must be listed here (test_every_handle_class_is_covered).
HANDLE_CLASSES = {
    "NoiseAccumulator": {
        "make": lambda cls: cls(3),
        "calls": {"update": lambda: (__import__("numpy").ones((4, 3)),), "update_f32": None,
                  "covariance": lambda: (2,), "merge": None, "noise_scale": lambda: ()},
    },
    "NoiseSketch": {
        "make": lambda cls: cls(3, 2),
        "calls": {"update": lambda: (__import__("numpy").ones((4, 3)),), "merge": None,
                  "top_eigen": lambda: (1, 2), "error_bound": lambda: (2,), "trace": lambda: (2,)},
    },
}


def _handle_classes():
    return {name: getattr(sgdnoise, name) for name in getattr(sgdnoise, "__all__", dir(sgdnoise))
            if isinstance(getattr(sgdnoise, name, None), type) and hasattr(getattr(sgdnoise, name), "close")}


def test_every_handle_class_is_covered():
    missing = set(_handle_classes()) - set(HANDLE_CLASSES)
    assert not missing, f"add constructor arguments for {sorted(missing)} to HANDLE_CLASSES"


USE_AFTER_CLOSE = r'''
import inspect, sys, numpy as np, sgdnoise
sys.path.insert(0, sys.argv[1])
from test_fuzz import HANDLE_CLASSES
cls = getattr(sgdnoise, sys.argv[2]); spec = HANDLE_CLASSES[sys.argv[2]]
obj, other = spec["make"](cls), spec["make"](cls)
obj.close(); obj.close()                       # idempotent
outcomes = []
for name in [n for n in dir(obj) if not n.startswith("_") and n not in ("close", "closed")
             # constructors (from_bytes) never touch the instance they are looked up on
             and not isinstance(inspect.getattr_static(type(obj), n), (classmethod, staticmethod))]:
    make_args = spec["calls"].get(name, lambda: ())
    args = (other,) if name == "merge" else (make_args() if make_args else ())
    try:
        value = getattr(obj, name)
        if callable(value):
            value(*args)
        if name in ("dim", "dimension"):
            continue                           # plain Python state, kept after close
        outcomes.append(f"{name}: no error")
    except sgdnoise.SGDNoiseError:
        pass
    except (ValueError, TypeError) as exc:
        outcomes.append(f"{name}: {type(exc).__name__} {exc}" if not isinstance(exc, ValueError) else "")
try:                                           # an open object merging a closed one
    other.merge(obj)
    outcomes.append("merge(closed): no error")
except sgdnoise.SGDNoiseError:
    pass
other.close()
print("\n".join(o for o in outcomes if o))
'''


@pytest.mark.parametrize("name", sorted(HANDLE_CLASSES))
def test_handle_classes_after_close(name):
    """After close(), every method raises an SGDNoiseError (the freed C handle is never passed to
    C), close() is idempotent, and the process survives (checked in a child process)."""
    if not hasattr(sgdnoise, name):
        pytest.skip(f"sgdnoise.{name} does not exist in this version")
    result = subprocess.run([sys.executable, "-c", USE_AFTER_CLOSE, str(HERE), name], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"the process died ({result.returncode}): {result.stderr[-2000:]}"
    assert result.stdout.strip() == "", f"{name} after close():\n{result.stdout}"
