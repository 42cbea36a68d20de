"""A model of include/sgdnoise.h: its enums and functions, parsed from the plain C99 the header
generator writes, and what each parameter is (a size, an enum code, an input array, ...).

The fuzz suite (test_fuzz.py, fuzz_harness.py) and the concurrency and memory suites are driven by
this model, so a function added to the header is exercised without anyone listing it: its
parameters are classified by C type first (``ptrdiff_t`` sizes, ``int`` enum codes, ``double``
scalars, ``const T *`` inputs, ``double *`` outputs, ``void *`` handles, ``void **`` handle
outputs, function-pointer callbacks) and by name second (which size an array has, what a matrix
must look like). A parameter whose C type has no kind makes ``classify`` raise, and the suite fails
naming it.

The parser handles exactly what scripts/make_header.py emits: block comments, ``typedef enum NAME
{ CONSTANT = value, ... } NAME;`` and one-line ``RETURN NAME(PARAMS);`` declarations whose
parameters are ``TYPE [const] [*[ *]] name`` or ``RET (* name)(TYPES)``.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass, field
from pathlib import Path

HEADER = Path(__file__).resolve().parents[2] / "include" / "sgdnoise.h"

# --- C types ---------------------------------------------------------------------------------------

SCALARS = {
    "double": ctypes.c_double,
    "float": ctypes.c_float,
    "int": ctypes.c_int,
    "ptrdiff_t": ctypes.c_ssize_t,
    "size_t": ctypes.c_size_t,
    "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "char": ctypes.c_char,
}


@dataclass(frozen=True)
class CType:
    """A C type as the header spells it: a base name, whether the pointee is const, and the
    pointer depth (0 for a scalar)."""

    base: str
    const: bool = False
    pointers: int = 0

    def __str__(self) -> str:
        return f"{self.base}{' const' if self.const else ''}{' *' * self.pointers}"


@dataclass(frozen=True)
class FunctionPointer:
    """``RET (*)(ARGS)``: a callback parameter."""

    returns: CType
    params: tuple[CType, ...]

    def __str__(self) -> str:
        return f"{self.returns} (*)({', '.join(map(str, self.params))})"


@dataclass(frozen=True)
class Param:
    name: str
    type: CType | FunctionPointer


@dataclass(frozen=True)
class Function:
    name: str
    returns: CType
    params: tuple[Param, ...]
    comment: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


@dataclass(frozen=True)
class Enum:
    name: str
    constants: dict[str, int]
    comment: str = ""

    @property
    def values(self) -> list[int]:
        """The codes, without a trailing ``..._COUNT`` constant (an array length, not a code)."""
        return sorted({v for k, v in self.constants.items() if not k.endswith("_COUNT")})


@dataclass
class Header:
    enums: dict[str, Enum] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)

    def enum_for(self, param: str, fn: "Function | None" = None) -> Enum | None:
        """The enum an ``int`` parameter takes its codes from: ``sgdnoise_<param>``, else the enum
        whose name ends in ``_<param>`` (``kind`` -> sgdnoise_noise_kind); among several, the one
        the function's comment names, else the one sharing a word with the function's name."""
        exact = self.enums.get(f"sgdnoise_{param}")
        if exact is not None:
            return exact
        matches = [e for n, e in self.enums.items() if n.endswith(f"_{param}")]
        if len(matches) > 1 and fn is not None:
            named = [e for e in matches if re.search(rf"\b{e.name}\b", fn.comment)]
            words = set(fn.name.split("_")[1:])
            sharing = [e for e in matches if set(e.name.split("_")[1:-1]) & words]
            matches = named or sharing or matches
        return matches[0] if matches else None

    @property
    def statuses(self) -> dict[str, int]:
        return self.enums["sgdnoise_status"].constants

    def field_count(self, enum_suffix: str) -> int | None:
        e = self.enums.get(f"sgdnoise_{enum_suffix}")
        if e is None:
            return None
        return next((v for k, v in e.constants.items() if k.endswith("_COUNT")), None)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: " " * 0 + "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _parse_type(tokens: list[str]) -> CType:
    stars = tokens.count("*")
    const = "const" in tokens
    words = [t for t in tokens if t not in ("*", "const", "struct", "enum")]
    if len(words) != 1:
        raise ValueError(f"cannot parse C type {' '.join(tokens)!r}")
    return CType(words[0], const and stars > 0, stars)


def _tokens(s: str) -> list[str]:
    return re.findall(r"\w+|\*|\(|\)|,", s)


def _split_top(s: str) -> list[str]:
    """Split a parameter list at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return [p.strip() for p in parts if p.strip()]


def _parse_param(text: str, index: int) -> Param:
    m = re.fullmatch(r"(.+?)\(\s*\*\s*(\w*)\s*\)\s*\((.*)\)", text, flags=re.S)
    if m:  # a function pointer: RET (* name)(ARGS)
        ret = _parse_type(_tokens(m.group(1)))
        args = tuple(_parse_type(_tokens(a)) for a in _split_top(m.group(3)) if a != "void")
        return Param(m.group(2) or f"arg{index}", FunctionPointer(ret, args))
    toks = _tokens(text)
    if toks and re.fullmatch(r"[A-Za-z_]\w*", toks[-1]) and len([t for t in toks if t not in ("*", "const")]) >= 2:
        return Param(toks[-1], _parse_type(toks[:-1]))
    return Param(f"arg{index}", _parse_type(toks))


def parse(text: str) -> Header:
    """Parse the header's enums and function declarations (in the order they appear)."""
    header = Header()
    comments = {}
    for m in re.finditer(r"/\*((?:(?!\*/).)*)\*/\s*\n(?:typedef enum (\w+)|[^\n;]*?\b(sgdnoise_\w+)\()", text, re.S):
        comments[m.group(2) or m.group(3)] = re.sub(r"\s*\n\s*\*\s?", " ", m.group(1)).strip()
    code = _strip_comments(text)
    for m in re.finditer(r"typedef\s+enum\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", code, re.S):
        constants = {}
        for c in re.finditer(r"(\w+)\s*=\s*(-?\d+)", m.group(2)):
            constants[c.group(1)] = int(c.group(2))
        header.enums[m.group(1)] = Enum(m.group(1), constants, comments.get(m.group(1), ""))
    body = re.sub(r"typedef\s+enum\s+\w+\s*\{.*?\}\s*\w+\s*;", "", code, flags=re.S)
    body = re.sub(r'extern\s+"C"\s*\{|^\s*\}\s*$', "", body, flags=re.M)
    for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(sgdnoise_\w+)\s*\(", body):
        # Find the matching parenthesis of the parameter list.
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(body[i], 0)
            i += 1
        rest = body[i:].lstrip()
        if not rest.startswith(";"):
            continue
        params_text = body[m.end():i - 1].strip()
        params = () if params_text in ("", "void") else tuple(
            _parse_param(p, k) for k, p in enumerate(_split_top(params_text)))
        name = m.group(2)
        header.functions[name] = Function(name, _parse_type(_tokens(m.group(1))), params, comments.get(name, ""))
    return header


def load(path: Path = HEADER) -> Header:
    return parse(path.read_text(encoding="ascii"))


# --- What each parameter is ------------------------------------------------------------------------

# Kinds: by C type.
SIZE, CODE, REAL, SEED, INPUT, OUTPUT, HANDLE, OUT_HANDLE, CALLBACK, CONTEXT = (
    "size", "code", "real", "seed", "input", "output", "handle", "out_handle", "callback", "context")

# Roles of input arrays: by name. (rows, columns) of what the array holds, in terms of the sizes
# of the call; "sym" arrays are symmetric matrices (d x d, or d entries in the diagonal layout).
SYMMETRIC_INPUTS = {"hessian", "noise", "a", "b", "a_hat", "weight_decay", "lr_matrix", "input_noise"}
DATA_INPUTS = {"x", "grads", "chunk"}      # n x d
DIM_VECTORS = {"u"}                        # d
ROW_VECTORS = {"y", "spectrum"}            # n
LIST_INPUTS = {"lrs", "momenta", "batch_sizes", "weight_decays"}   # points or count entries

# Sizes: names that size a list argument, and those for which 0 is a valid value.
LIST_SIZES = {"points", "count"}
ZERO_ALLOWED_SIZES = {"threads", "burn_in"}
WORK_SIZES = {"steps", "burn_in", "chains"}   # how long a call runs, not how much it reads

# Outputs whose entries may be NaN on success, as the header documents it (kappa where the model
# defines none, an unknown critical learning rate, the iteration info of a solver, estimates of a
# diverged simulation).
NAN_DOCUMENTED_OUTPUTS = {"out_scalars", "out_info", "out_kappa", "out_critical"}
NAN_DOCUMENTED_FUNCTIONS = {"sgdnoise_simulation_result"}


# Element types of array parameters (numpy dtypes of the buffers the fuzz allocates).
NUMERIC_BUFFERS = {"double": "float64", "float": "float32", "ptrdiff_t": "int64", "int64_t": "int64",
                   "int": "int32", "int32_t": "int32", "uint64_t": "uint64", "size_t": "uint64"}


def classify(fn: Function, param: Param) -> str:
    """The kind of a parameter; raises ``TypeError`` for a C type the fuzz has no strategy for."""
    t = param.type
    if isinstance(t, FunctionPointer):
        if t.params and t.params[0] == CType("void", False, 1):
            return CALLBACK
        raise TypeError(f"{fn.name}: callback {param.name} ({t}) does not take a void * context first")
    if t.pointers == 0:
        if t.base == "ptrdiff_t":
            return SIZE
        if t.base == "int":
            return CODE
        if t.base == "double":
            return REAL
        if t.base == "uint64_t":
            return SEED
    elif t.pointers == 1:
        if t.const and t.base in NUMERIC_BUFFERS:
            return INPUT
        if not t.const and t.base in NUMERIC_BUFFERS:
            return OUTPUT
        if t.base == "void":
            has_callback = any(isinstance(p.type, FunctionPointer) for p in fn.params)
            return CONTEXT if has_callback and param.name == "context" else HANDLE
    elif t.pointers == 2 and t.base == "void" and not t.const:
        return OUT_HANDLE
    raise TypeError(f"{fn.name}: parameter {param.name} has C type {t}, for which the fuzz has no strategy")


def ctype_of(t: CType | FunctionPointer):
    """The ctypes type a call passes for ``t`` (pointers as ``c_void_p`` addresses)."""
    if isinstance(t, FunctionPointer):
        return ctypes.CFUNCTYPE(ctype_of(t.returns), *[ctype_of(p) for p in t.params])
    if t.pointers:
        return ctypes.c_void_p
    if t.base == "void":
        return None
    if t.base.startswith("sgdnoise_"):
        return ctypes.c_int  # an enum (all are int-based: make_header.py checks it)
    return SCALARS[t.base]


def restype_of(fn: Function):
    r = fn.returns
    if r.pointers == 1 and r.base == "char":
        return ctypes.c_char_p
    return ctype_of(r)


def bind(lib: ctypes.CDLL, fn: Function):
    """A ctypes function object for ``fn``, with argtypes and restype from the header."""
    f = getattr(lib, fn.name)
    f.restype = restype_of(fn)
    f.argtypes = [ctype_of(p.type) for p in fn.params]
    return f


def _family_name(param: Param) -> str:
    return param.name[4:] if param.name.startswith("out_") else param.name


def families(header: Header) -> set[str]:
    """Handle types: the names of the ``void **out_<family>`` parameters of the create functions."""
    return {_family_name(p) for f in header.functions.values() for p in f.params
            if classify(f, p) == OUT_HANDLE}


def handle_family(param: Param, fn: Function | None = None, header: Header | None = None) -> str:
    """The handle type a ``void *`` parameter holds: ``simulation`` for ``void *simulation`` (and
    ``void **out_simulation``); for a second handle with another name (``void const *other``) the
    family of the function's first handle, else the one the function name starts with."""
    name = _family_name(param)
    if header is None or fn is None or name in families(header):
        return name
    first = next((p for p in fn.params if classify(fn, p) == HANDLE), None)
    if first is not None and _family_name(first) in families(header):
        return _family_name(first)
    return next((f for f in sorted(families(header), key=len, reverse=True) if fn.name.startswith(f"sgdnoise_{f}_")), name)


def creators(header: Header, family: str) -> list[Function]:
    return [f for f in header.functions.values()
            if any(classify(f, p) == OUT_HANDLE and _family_name(p) == family for p in f.params)]


def destructor(header: Header, family: str) -> Function | None:
    return header.functions.get(f"sgdnoise_{family}_free")


def zero_allowed(fn: Function, size: str) -> bool:
    """Whether 0 is a valid value of a size parameter: by name (threads: all cores; burn_in), or
    where the function's comment documents it ("k = 0 skips it", "threads (0: all cores)")."""
    return size in ZERO_ALLOWED_SIZES or bool(
        re.search(rf"\b{size}\s*=\s*0\b|\b{size}\s*\(0\s*:", fn.comment))


def unchecked_inputs(fn: Function, header: Header | None = None, _seen: frozenset = frozenset()) -> bool:
    """Whether the function's comment says some input is "not checked" (for speed), itself or
    through a function it refers to ("As sgdnoise_noise_operator_apply", "mean as in ..."): a NaN in
    such an input may reach the outputs, as documented."""
    if "not checked" in fn.comment:
        return True
    if header is None:
        return False
    for name in set(re.findall(r"\bsgdnoise_\w+", fn.comment)) - {fn.name} - _seen:
        other = header.functions.get(name)
        if other is not None and unchecked_inputs(other, header, _seen | {fn.name}):
            return True
    return False


def sized_by(fn: Function, size: str) -> bool:
    """Whether the size parameter ``size`` gives the length of one of ``fn``'s input arrays (then
    a size no memory holds must be rejected before anything is read)."""
    roles = {"d": SYMMETRIC_INPUTS | DATA_INPUTS | DIM_VECTORS, "n": DATA_INPUTS | ROW_VECTORS}.get(
        size, LIST_INPUTS if size in LIST_SIZES else set())
    return any(classify(fn, p) == INPUT and p.name in roles for p in fn.params)


def has_dense_matrix(fn: Function) -> bool:
    """Whether ``d`` sizes a d x d matrix argument of ``fn`` (in the dense layout, if it has one)."""
    return any(classify(fn, p) == INPUT and p.name in SYMMETRIC_INPUTS for p in fn.params)


def list_size_of(fn: Function) -> str | None:
    """The size parameter that gives the length of this function's list inputs."""
    return next((n for n in fn.names if n in LIST_SIZES), None)
