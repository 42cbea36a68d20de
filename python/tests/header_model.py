"""A model of include/sgdnoise.h: its macros, enums, typed handles, result structs, callback
typedefs and functions, parsed from the plain C99 the header generator writes, and what each
parameter is (a size, an enum code, an input array, a result struct, a handle, ...).

The fuzz suite (test_fuzz.py, fuzz_harness.py) and the concurrency and memory suites are driven by
this model, so a function added to the header is exercised without anyone listing it: its
parameters are classified by C type first (``ptrdiff_t`` sizes, enum-typed codes, ``double``
scalars, ``uint32_t`` version numbers, ``const T *`` inputs, ``T *`` outputs, ``int *`` enum-code
outputs, ``sgdnoise_<family> *`` handles, ``sgdnoise_<family> **`` handle outputs, pointers to
size-prefixed result structs, callback typedefs and their ``void *context``) and by name second
(which size an array has, what a matrix must look like). A parameter whose C type has no kind
makes ``classify`` raise, and the suite fails naming it.

The parser handles exactly what scripts/make_header.py emits: block comments; ``#define NAME
VALUE`` macros (integer ones, also arithmetic of earlier ones and continued over lines, are
recorded; function-like macros are skipped); ``typedef enum NAME { CONSTANT = value, ... }
NAME;``; ``typedef struct NAME NAME;`` (an opaque handle type); ``typedef struct NAME { TYPE
field; ... } NAME;`` (a result struct: a ctypes.Structure is built for it); ``typedef RET
(*NAME)(ARGS);`` (a callback type); and one-line ``RETURN NAME(PARAMS);`` declarations whose
parameters are ``TYPE [const] [*[ *]] name`` or ``RET (* name)(TYPES)``.
"""

from __future__ import annotations

import ast
import ctypes
import operator
import re
from dataclasses import dataclass, field
from functools import cached_property
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

# What a typedef'd name of the header is (CType.tag).
ENUM, STRUCT, OPAQUE = "enum", "struct", "opaque"


@dataclass(frozen=True)
class CType:
    """A C type as the header spells it: a base name, whether the pointee is const, the pointer
    depth (0 for a scalar) and, for a type the header defines, what it is (``tag``: ``enum``,
    ``struct`` for a result struct, ``opaque`` for a handle type; "" for a C type)."""

    base: str
    const: bool = False
    pointers: int = 0
    tag: str = ""

    def __str__(self) -> str:
        return f"{self.base}{' const' if self.const else ''}{' *' * self.pointers}"


@dataclass(frozen=True)
class FunctionPointer:
    """``RET (*)(ARGS)``: a callback parameter (``name`` is its typedef, if it has one)."""

    returns: CType
    params: tuple[CType, ...]
    name: str = ""

    def __str__(self) -> str:
        return self.name or f"{self.returns} (*)({', '.join(map(str, self.params))})"


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
    constant_comments: dict[str, str] = field(default_factory=dict)

    @property
    def values(self) -> list[int]:
        """The codes, without a trailing ``..._COUNT`` constant (an array length, not a code)."""
        return sorted({v for k, v in self.constants.items() if not k.endswith("_COUNT")})

    def accepted_by(self, fn: "Function") -> list[int]:
        """The codes ``fn`` accepts: all of them, except a constant whose comment says it is
        "Accepted only by sgdnoise_x[, sgdnoise_y]" and ``fn`` is not among those."""
        out = []
        for k, v in self.constants.items():
            if k.endswith("_COUNT"):
                continue
            m = re.search(r"[Aa]ccepted only by ((?:sgdnoise_\w+(?:,\s*|\s+and\s+|\s+or\s+)?)+)",
                          self.constant_comments.get(k, ""))
            if m and fn.name not in re.findall(r"sgdnoise_\w+", m.group(1)):
                continue
            out.append(v)
        return sorted(set(out))


@dataclass(frozen=True)
class StructField:
    name: str
    type: CType
    comment: str = ""


@dataclass(frozen=True)
class Struct:
    """A size-prefixed result struct: ``size_t size`` first, then the fields."""

    name: str
    fields: tuple[StructField, ...]
    comment: str = ""

    @cached_property
    def ctype(self) -> type[ctypes.Structure]:
        """A ctypes.Structure with the header's fields (C layout and padding)."""
        return type(self.name, (ctypes.Structure,), {"_fields_": [(f.name, SCALARS[f.type.base]) for f in self.fields]})

    @property
    def sizeof(self) -> int:
        return ctypes.sizeof(self.ctype)

    def offset(self, name: str) -> int:
        return getattr(self.ctype, name).offset

    def size_of(self, name: str) -> int:
        return getattr(self.ctype, name).size

    def field(self, name: str) -> StructField:
        return next(f for f in self.fields if f.name == name)


@dataclass
class Header:
    macros: dict[str, int] = field(default_factory=dict)
    enums: dict[str, Enum] = field(default_factory=dict)
    structs: dict[str, Struct] = field(default_factory=dict)
    handles: dict[str, str] = field(default_factory=dict)          # opaque type name -> comment
    callbacks: dict[str, FunctionPointer] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)

    def enum_for(self, param: str, fn: "Function | None" = None) -> Enum | None:
        """The enum an untyped ``int`` (an ``int *out_<param>`` output) takes its codes from:
        ``sgdnoise_<param>``, else the enum whose name ends in ``_<param>`` (``kind`` ->
        sgdnoise_minimum_kind); among several, the one the function's comment names, else the one
        sharing a word with the function's name."""
        param = param[4:] if param.startswith("out_") else param
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

    def code_enum(self, fn: "Function", param: "Param") -> Enum | None:
        """The enum of a CODE parameter (its C type) or of a CODE_OUTPUT (by name)."""
        t = param.type
        if isinstance(t, CType) and t.tag == ENUM:
            return self.enums.get(t.base)
        return self.enum_for(param.name, fn)

    def struct_of(self, param: "Param") -> Struct:
        return self.structs[param.type.base]

    @property
    def statuses(self) -> dict[str, int]:
        return self.enums["sgdnoise_status"].constants

    @property
    def version_number(self) -> int:
        return self.macros["SGDNOISE_VERSION_NUMBER"]

    @property
    def version_string(self) -> str:
        return ".".join(str(self.macros[f"SGDNOISE_VERSION_{k}"]) for k in ("MAJOR", "MINOR", "PATCH"))


def _squash(comment: str) -> str:
    return re.sub(r"\s*\n\s*\*?\s?", " ", comment).strip()


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return text


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
           ast.Div: operator.floordiv, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
           ast.BitOr: operator.or_, ast.BitAnd: operator.and_}


def _eval_macro(expr: str, known: dict[str, int]) -> int | None:
    """The value of an integer macro body (literals, earlier macros, + - * / << >> | &, parens)."""
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expr.strip())
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in known:
            return known[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(ast.dump(node))

    try:
        return ev(tree)
    except (ValueError, ZeroDivisionError):
        return None


def _parse_macros(code: str) -> dict[str, int]:
    """Object-like ``#define`` macros with an integer value (function-like macros, include guards
    and non-integer bodies are skipped)."""
    macros: dict[str, int] = {}
    code = re.sub(r"\\\n", " ", code)
    for m in re.finditer(r"^\s*#\s*define\s+(\w+)(\(?)([^\n]*)$", code, flags=re.M):
        if m.group(2) or not m.group(3).strip():
            continue
        value = _eval_macro(m.group(3), macros)
        if value is not None:
            macros[m.group(1)] = value
    return macros


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
        args = tuple(_parse_param(a, k).type for k, a in enumerate(_split_top(m.group(3))) if a != "void")
        return Param(m.group(2) or f"arg{index}", FunctionPointer(ret, args))
    toks = _tokens(text)
    if toks and re.fullmatch(r"[A-Za-z_]\w*", toks[-1]) and len([t for t in toks if t not in ("*", "const")]) >= 2:
        return Param(toks[-1], _parse_type(toks[:-1]))
    return Param(f"arg{index}", _parse_type(toks))


_STRUCT_BODY = r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\1)\s*;"
_ENUM_BODY = r"typedef\s+enum\s+(\w+)\s*\{(.*?)\}\s*(\1)\s*;"
_OPAQUE = r"typedef\s+struct\s+(\w+)\s+(\w+)\s*;"
_CALLBACK = r"typedef\s+([\w\s\*]+?)\(\s*\*\s*(\w+)\s*\)\s*\(([^;]*?)\)\s*;"


def _members(body: str) -> list[tuple[str, str]]:
    """(comment, declaration) of each member of an enum or struct body, in order; the comment is
    the block comment right before it ("" if none)."""
    out, pending = [], ""
    for m in re.finditer(r"/\*(.*?)\*/|([^;,/]+?)\s*[;,]", body, flags=re.S):
        if m.group(1) is not None:
            pending = _squash(m.group(1))
        elif m.group(2).strip():
            out.append((pending, m.group(2).strip()))
            pending = ""
    return out


def _resolve(t: CType | FunctionPointer, header: Header) -> CType | FunctionPointer:
    """Tags a type the header defines (an enum, a result struct, a handle type); a callback
    typedef becomes its function pointer."""
    if isinstance(t, FunctionPointer):
        return FunctionPointer(_resolve(t.returns, header), tuple(_resolve(p, header) for p in t.params), t.name)
    if t.base in header.callbacks and t.pointers == 0:
        return header.callbacks[t.base]
    tag = ENUM if t.base in header.enums else STRUCT if t.base in header.structs else \
        OPAQUE if t.base in header.handles else ""
    return CType(t.base, t.const, t.pointers, tag)


def parse(text: str) -> Header:
    """Parse the header's macros, types and function declarations (in the order they appear)."""
    header = Header()
    comments = {}
    for m in re.finditer(r"/\*((?:(?!\*/).)*)\*/\s*\n(?:typedef\s+(?:enum|struct)\s+(\w+)|typedef[^;(]*\(\s*\*\s*(\w+)\)"
                         r"|[^\n;]*?\b(sgdnoise_\w+)\()", text, re.S):
        comments[m.group(2) or m.group(3) or m.group(4)] = _squash(m.group(1))
    header.macros = _parse_macros(_strip_comments(text))
    for m in re.finditer(_ENUM_BODY, text, re.S):
        constants, notes = {}, {}
        for note, decl in _members(m.group(2)):
            c = re.fullmatch(r"(\w+)\s*=\s*(-?\d+)", decl)
            if c:
                constants[c.group(1)] = int(c.group(2))
                notes[c.group(1)] = note
        header.enums[m.group(3)] = Enum(m.group(3), constants, comments.get(m.group(1), ""), notes)
    code = _strip_comments(text)
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("#"))
    for m in re.finditer(_OPAQUE, code):
        header.handles[m.group(2)] = comments.get(m.group(1), "")
    for m in re.finditer(_CALLBACK, code, re.S):
        ret = _parse_type(_tokens(m.group(1)))
        args = tuple(_parse_param(a, k).type for k, a in enumerate(_split_top(m.group(3))) if a.strip() != "void")
        header.callbacks[m.group(2)] = FunctionPointer(ret, args, m.group(2))
    for m in re.finditer(_STRUCT_BODY, text, re.S):
        fields = []
        for note, decl in _members(m.group(2)):
            p = _parse_param(decl, len(fields))
            fields.append(StructField(p.name, p.type, note))
        header.structs[m.group(3)] = Struct(m.group(3), tuple(fields), comments.get(m.group(1), ""))
    body = code
    for pattern in (_ENUM_BODY, _STRUCT_BODY, _OPAQUE, _CALLBACK):
        body = re.sub(pattern, "", body, flags=re.S)
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
        params = tuple(Param(p.name, _resolve(p.type, header)) for p in params)
        name = m.group(2)
        header.functions[name] = Function(name, _resolve(_parse_type(_tokens(m.group(1))), header), params,
                                          comments.get(name, ""))
    return header


def load(path: Path = HEADER) -> Header:
    return parse(path.read_text(encoding="ascii"))


# --- What each parameter is ------------------------------------------------------------------------

# Kinds: by C type.
SIZE, CODE, REAL, SEED, VERSION, INPUT, OUTPUT, CODE_OUTPUT, STRUCT_OUTPUT, HANDLE, OUT_HANDLE, CALLBACK, CONTEXT = (
    "size", "code", "real", "seed", "version", "input", "output", "code_output", "struct_output", "handle",
    "out_handle", "callback", "context")
STRING = "string"  # a NUL-terminated text input (char const *)
OUTPUT_KINDS = {OUTPUT, CODE_OUTPUT, STRUCT_OUTPUT, OUT_HANDLE}

# Roles of input arrays: by name. (rows, columns) of what the array holds, in terms of the sizes
# of the call; "sym" arrays are symmetric matrices (d x d, or d entries in the diagonal layout; in
# the weighted-spectrum layout the first operand holds 2d, nodes then weights, the others d).
SYMMETRIC_INPUTS = {"hessian", "noise", "a", "b", "a_hat", "weight_decay", "lr_matrix", "input_noise", "sigma0"}
FIRST_OPERANDS = {"hessian", "a", "a_hat"}   # the operand that carries a weighted spectrum's weights
DATA_INPUTS = {"x", "grads", "chunk"}      # n x d
DIM_VECTORS = {"u", "w0"}                  # d
ROW_VECTORS = {"y", "spectrum", "nodes", "weights"}   # n (a spectrum, or a weighted one)
EIGEN_INPUTS = {"eigenvalues", "eigenvectors", "sigma_block"}   # k, k x d orthonormal rows, k x k symmetric
LIST_INPUTS = {"lrs", "momenta", "batch_sizes", "weight_decays", "at_steps"}   # points or count entries
STATE_INPUTS = {"state"}                   # a serialized state (docs/state_format.md) of `size` bytes

# Sizes: names that size a list argument, and those for which 0 is a valid value.
LIST_SIZES = {"points", "count"}
ZERO_ALLOWED_SIZES = {"threads", "burn_in"}
WORK_SIZES = {"steps", "burn_in", "chains", "probes", "max_products", "krylov_steps"}   # how long a call runs, not how much it reads

# Real parameters with a documented range (anything outside is INVALID_ARGUMENT): [lo, hi).
REAL_DOMAINS = {"momentum": (0.0, 1.0), "flat_tolerance": (0.0, 1.0)}

# Outputs that may hold NaN after a successful call, as the header documents it: array outputs by
# parameter name (an unknown critical learning rate) and
# result-struct fields as "struct.field" (each of these fields' comments in the header says when it
# is NaN: test_fuzz.py checks that this list and the header agree).
NAN_DOCUMENTED_OUTPUTS = {
    "out_critical",
    "sgdnoise_prediction.test_loss", "sgdnoise_prediction.kappa", "sgdnoise_prediction.critical_learning_rate",
    "sgdnoise_dataset_info.spectral_radius",
    "sgdnoise_noise_scales.b_noise", "sgdnoise_noise_scales.trace_hessian_sigma",
    "sgdnoise_noise_scales.grad_hessian_grad",
    "sgdnoise_comparison.cosine", "sgdnoise_comparison.overlap",
    "sgdnoise_simulation_summary.test_loss", "sgdnoise_simulation_summary.tail_index",
    "sgdnoise_noise_scales.b_simple",
    "out_lower", "out_upper",  # sgdnoise_stable_weight_decay_interval: NaN when no weight decay is stable
    # sgdnoise_network_fluctuation: NaN when batch_size was 0 (not given).
    "sgdnoise_network_summary.critical_learning_rate_multiplicative",
    "sgdnoise_network_summary.critical_learning_rate_multiplicative_stderr",
    "out_offsets",  # sgdnoise_mean_drift: NaN where h_i <= 0 (no stationary offset)
    # sgdnoise_learning_curve: NaN when the last hyperparameters have no stationary state.
    "sgdnoise_curve_summary.stationary_train_loss", "sgdnoise_curve_summary.stationary_test_loss",
}
# Array outputs that may hold NaN in one function only, as (function, parameter): its header comment
# says when (sgdnoise_dataset_learning_curve: the test loss without a teacher u).
NAN_DOCUMENTED_FUNCTION_OUTPUTS = {("sgdnoise_dataset_learning_curve", "out_test_loss")}
# Functions whose every estimate may be NaN, under a condition the header documents: the
# simulation summary of a diverged run ("1 when a chain diverged (the estimates are then NaN)").
# The fuzz allows NaN there only when the summary it reads says diverged = 1.
NAN_WHEN_DIVERGED = {"sgdnoise_simulation_result", "sgdnoise_simulation_run_schedule"}


# Element types of array parameters (numpy dtypes of the buffers the fuzz allocates).
NUMERIC_BUFFERS = {"double": "float64", "float": "float32", "ptrdiff_t": "int64", "int64_t": "int64",
                   "int": "int32", "int32_t": "int32", "uint64_t": "uint64", "size_t": "uint64", "uint8_t": "uint8"}


def classify(fn: Function, param: Param) -> str:
    """The kind of a parameter; raises ``TypeError`` for a C type the fuzz has no strategy for."""
    t = param.type
    if isinstance(t, FunctionPointer):
        if t.params and t.params[0] == CType("void", False, 1):
            return CALLBACK
        raise TypeError(f"{fn.name}: callback {param.name} ({t}) does not take a void * context first")
    if t.pointers == 0:
        if t.tag == ENUM:
            return CODE
        if t.base == "ptrdiff_t":
            return SIZE
        if t.base == "double":
            return REAL
        if t.base == "uint64_t":
            return SEED
        if t.base == "uint32_t":
            return VERSION
    elif t.pointers == 1:
        if t.tag == OPAQUE and not t.const:
            return HANDLE
        if t.tag == STRUCT and not t.const:
            return STRUCT_OUTPUT
        if t.base == "char" and t.const and not t.tag:
            return STRING
        if t.base == "int" and not t.const and not t.tag:
            return CODE_OUTPUT
        if t.const and t.base in NUMERIC_BUFFERS and not t.tag:
            return INPUT
        if not t.const and t.base in NUMERIC_BUFFERS and not t.tag:
            return OUTPUT
        if t.base == "void" and not t.const and (param.name == "context" or param.name.endswith("_context")) and any(
                isinstance(p.type, FunctionPointer) for p in fn.params):
            return CONTEXT
    elif t.pointers == 2 and t.tag == OPAQUE and not t.const:
        return OUT_HANDLE
    raise TypeError(f"{fn.name}: parameter {param.name} has C type {t}, for which the fuzz has no strategy")


OPERATOR_CALLBACKS = {"sgdnoise_matvec_callback", "sgdnoise_block_matvec_callback"}


def takes_operator_callback(fn: Function) -> bool:
    """Whether ``fn`` takes a product callback (``sgdnoise_matvec_callback`` or its block form
    ``sgdnoise_block_matvec_callback``): a valid call needs one that computes a product."""
    return any(isinstance(p.type, FunctionPointer) and p.type.name in OPERATOR_CALLBACKS for p in fn.params)


def ctype_of(t: CType | FunctionPointer):
    """The ctypes type a call passes for ``t`` (pointers as ``c_void_p`` addresses)."""
    if isinstance(t, FunctionPointer):
        return ctypes.CFUNCTYPE(ctype_of(t.returns), *[ctype_of(p) for p in t.params])
    if t.pointers:
        return ctypes.c_void_p
    if t.base == "void":
        return None
    if t.tag == ENUM:
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


def _family_of_type(name: str) -> str:
    return name[len("sgdnoise_"):] if name.startswith("sgdnoise_") else name


def families(header: Header) -> set[str]:
    """Handle types: the header's opaque ``typedef struct sgdnoise_<family> sgdnoise_<family>;``."""
    return {_family_of_type(name) for name in header.handles}


def handle_family(param: Param, fn: Function | None = None, header: Header | None = None) -> str:
    """The handle type a HANDLE or OUT_HANDLE parameter holds: ``simulation`` for
    ``sgdnoise_simulation *`` (and ``sgdnoise_simulation **out_simulation``)."""
    t = param.type
    if not isinstance(t, CType) or t.tag != OPAQUE:
        raise TypeError(f"{param.name} ({t}) is not a handle")
    return _family_of_type(t.base)


def creators(header: Header, family: str) -> list[Function]:
    return [f for f in header.functions.values()
            if any(classify(f, p) == OUT_HANDLE and handle_family(p) == family for p in f.params)]


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


def abi_compatible(header_version: int, library_version: int) -> bool:
    """The rule sgdnoise_abi_compatible documents: the same major version and a library minor
    version at least the header's (versions are MAJOR * 10000 + MINOR * 100 + PATCH)."""
    return header_version // 10000 == library_version // 10000 and \
        (header_version // 100) % 100 <= (library_version // 100) % 100
