#!/usr/bin/env python3
"""List the public symbols of the core Swift module that have no documentation comment; exit 1
when there is any.

Usage: check_doc_comments.py [SOURCE_DIR ...]    (default: Sources/SGDNoise)

A public symbol is a declaration (func, init, subscript, var, let, struct, enum, class, actor,
protocol, typealias, associatedtype, enum case) whose effective access is public or open: an
explicit ``public``/``open``; the members of a ``public extension`` and the requirements of a
public protocol without a modifier; the cases of a public enum. A member is public only if every
enclosing type is. Declarations marked ``@_spi(...)`` (and everything inside them) are not public
API and are skipped, as are local declarations inside function and accessor bodies.

A documentation comment is a run of ``///`` lines or a ``/** ... */`` block right before the
declaration (its attributes and modifiers included, e.g. ``@inlinable`` on the line above);
declarations may span several lines. The Swift sources are tokenised (comments, string literals
with interpolation, multi-line and raw strings), so braces in strings and comments do not count.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

DECLARATIONS = {"func", "init", "subscript", "var", "let", "struct", "enum", "class", "actor", "protocol",
                "typealias", "associatedtype", "case", "extension"}
TYPES = {"struct", "enum", "class", "actor", "protocol", "extension"}
ACCESS = {"public", "open", "internal", "fileprivate", "private", "package"}
MODIFIERS = ACCESS | {"static", "class", "final", "override", "mutating", "nonmutating", "convenience",
                      "required", "indirect", "lazy", "weak", "unowned", "dynamic", "nonisolated", "optional",
                      "prefix", "postfix", "infix", "isolated", "consuming", "borrowing", "distributed"}
OPERATOR_CHARS = set("/=-+!*%<>&|^~?.")


@dataclass
class Token:
    kind: str  # "id", "op", "punct", "doc", "comment", "string", "number", "attr", "directive"
    text: str
    line: int


def tokenize(src: str) -> list[Token]:
    """Swift tokens, enough to find declarations and braces: comments (doc or not) are tokens, string
    literals one token each (interpolations inside them are skipped as part of the literal)."""
    tokens: list[Token] = []
    i, n, line = 0, len(src), 1

    def skip_string(i: int) -> int:
        """Index just past the string literal starting at i (on '#' or '"')."""
        nonlocal line
        hashes = 0
        while src[i] == "#":
            hashes += 1
            i += 1
        multi = src.startswith('"""', i)
        i += 3 if multi else 1
        close = ('"""' if multi else '"') + "#" * hashes
        escape = "\\" + "#" * hashes
        while i < n:
            if src.startswith(escape, i):
                j = i + len(escape)
                if j < n and src[j] == "(":  # interpolation: skip to the matching parenthesis
                    depth, j = 1, j + 1
                    while j < n and depth:
                        c = src[j]
                        if c in "\"#" and (c == '"' or src.startswith('#"', j)):
                            j = skip_string(j)
                            continue
                        depth += c == "("
                        depth -= c == ")"
                        line += c == "\n"
                        j += 1
                    i = j
                else:
                    line += src[j:j + 1] == "\n"
                    i = j + 1
                continue
            if src.startswith(close, i):
                return i + len(close)
            line += src[i] == "\n"
            i += 1
        return i

    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("///", i) and not src.startswith("////", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            tokens.append(Token("doc", src[i:j], line))
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            tokens.append(Token("comment", src[i:j], line))
            i = j
        elif src.startswith("/*", i):
            doc = src.startswith("/**", i) and not src.startswith("/**/", i)
            start, depth, j = line, 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    line += src[j] == "\n"
                    j += 1
            tokens.append(Token("doc" if doc else "comment", src[i:j], start))
            i = j
        elif c == '"' or (c == "#" and re.match(r'#+"', src[i:i + 8])):
            start = line
            j = skip_string(i)
            tokens.append(Token("string", src[i:j], start))
            i = j
        elif c == "#":
            m = re.match(r"#\w+", src[i:])
            word = m.group(0) if m else "#"
            if word in ("#if", "#elseif", "#else", "#endif", "#warning", "#error", "#sourceLocation"):
                j = src.find("\n", i)  # a compiler directive: its whole line
                j = n if j < 0 else j
                tokens.append(Token("directive", src[i:j], line))
                i = j
            else:
                tokens.append(Token("id", word, line))
                i += len(word)
        elif c == "@":
            m = re.match(r"@\w+", src[i:])
            word = m.group(0) if m else "@"
            tokens.append(Token("attr", word, line))
            i += len(word)
        elif c == "`":
            j = src.index("`", i + 1)
            tokens.append(Token("id", src[i + 1:j], line))
            i = j + 1
        elif c.isalpha() or c == "_" or ord(c) > 127:
            m = re.match(r"[\w\u0080-\U0010ffff]+", src[i:])
            assert m
            tokens.append(Token("id", m.group(0), line))
            i += len(m.group(0))
        elif c.isdigit():
            m = re.match(r"\d[\w]*(\.\d[\w]*)?", src[i:])
            assert m
            tokens.append(Token("number", m.group(0), line))
            i += len(m.group(0))
        elif c in OPERATOR_CHARS:
            j = i
            while j < n and src[j] in OPERATOR_CHARS and not src.startswith("//", j) and not src.startswith("/*", j):
                j += 1
            tokens.append(Token("op", src[i:j], line))
            i = j
        else:
            tokens.append(Token("punct", c, line))
            i += 1
    return tokens


@dataclass
class Scope:
    kind: str  # a type keyword of TYPES, or "code" (a body whose declarations are local)
    name: str = ""
    public: bool = False  # every enclosing type and this one are public
    default_public: bool = False  # a member without an access modifier is public (public extension, protocol)
    spi: bool = False


@dataclass
class Declaration:
    path: Path
    line: int
    keyword: str
    name: str
    public: bool
    spi: bool
    documented: bool
    scope: Scope | None = None  # the scope its body opens (types and extensions)
    modifiers: set[str] = field(default_factory=set)


def declarations(path: Path, public_types: dict[str, bool]) -> list[Declaration]:
    """Every declaration of one file outside function bodies, with its effective visibility."""
    tokens = tokenize(path.read_text(encoding="utf-8"))
    code = [t for t in tokens if t.kind not in ("comment", "doc", "directive")]
    index_in_all = [k for k, t in enumerate(tokens) if t.kind not in ("comment", "doc", "directive")]
    out: list[Declaration] = []
    stack: list[Scope] = [Scope("file", public=True)]
    pending: list[Scope | None] = []  # the scope the next "{" opens, for a type header just read
    parens = 0  # ( and [ depth inside the current scope
    k = 0
    while k < len(code):
        t = code[k]
        if t.kind == "punct" and t.text in "([":
            parens += 1
        elif t.kind == "punct" and t.text in ")]":
            parens = max(parens - 1, 0)
        elif t.kind == "punct" and t.text == "{":
            opened = pending.pop() if pending else None
            stack.append(opened if opened is not None else Scope("code"))
            parens = 0
        elif t.kind == "punct" and t.text == "}":
            if len(stack) > 1:
                stack.pop()
            pending.clear()
        elif (t.kind == "id" and t.text in DECLARATIONS and parens == 0 and stack[-1].kind != "code"
              and not (t.text == "class" and k + 1 < len(code) and code[k + 1].text in DECLARATIONS | MODIFIERS)):
            # Walk back over modifiers and attributes to the declaration's first token.
            start, modifiers, spi = k, set(), False
            j = k - 1
            while j >= 0:
                p = code[j]
                if p.kind == "id" and p.text in MODIFIERS:
                    modifiers.add(p.text)
                    j -= 1
                elif p.kind == "punct" and p.text == ")" and j >= 3 and code[j - 1].kind == "id" and \
                        code[j - 2].text == "(" and code[j - 3].text in ACCESS:  # private(set) and the like
                    j -= 4
                elif p.kind == "punct" and p.text == ")":  # an attribute's arguments: find its "@name"
                    depth, m = 1, j - 1
                    while m >= 0 and depth:
                        depth += code[m].text == ")"
                        depth -= code[m].text == "("
                        m -= 1
                    if m >= 0 and code[m].kind == "attr":
                        spi |= code[m].text == "@_spi"
                        j = m - 1
                    else:
                        break
                elif p.kind == "attr":
                    spi |= p.text == "@_spi"
                    j -= 1
                else:
                    break
                start = j + 1
            scope = stack[-1]
            explicit = modifiers & ACCESS
            if t.text == "case":
                public = scope.kind == "enum" and scope.public
            elif t.text == "extension":
                public = True
            elif explicit:
                public = bool(explicit & {"public", "open"})
            else:
                public = scope.default_public
            # The documentation: the tokens right before the first token, comments included.
            first = index_in_all[start]
            documented = first > 0 and tokens[first - 1].kind == "doc"
            # The name: the identifier (or operator) after the keyword; extensions take the dotted path.
            name, m = "", k + 1
            if t.text == "extension":
                parts = []
                while m < len(code) and (code[m].kind == "id" or code[m].text == "."):
                    parts.append(code[m].text)
                    m += 1
                name = "".join(parts)
            elif t.text == "init":
                name = "init" + (code[m].text if m < len(code) and code[m].text in ("?", "!") else "")
            elif t.text == "subscript":
                name = "subscript"
            elif m < len(code):
                name = code[m].text
            d = Declaration(path, t.line, t.text, name, public and scope.public and not scope.spi, spi or scope.spi,
                            documented, modifiers=modifiers)
            if t.text in TYPES:
                if t.text == "extension":
                    extended = public_types.get(name, public_types.get(name.split(".")[-1], True))
                    d.scope = Scope("extension", name, public=extended and not spi,
                                    default_public="public" in explicit or "open" in explicit, spi=d.spi)
                else:
                    qualified = ".".join([s.name for s in stack if s.name] + [name])
                    d.scope = Scope(t.text, qualified, public=d.public, default_public=t.text == "protocol" and d.public,
                                    spi=d.spi)
                pending.append(d.scope)
            out.append(d)
        k += 1
    return out


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path(__file__).resolve().parent.parent / "Sources" / "SGDNoise"]
    files = sorted(f for root in roots for f in root.rglob("*.swift"))
    # First pass: which types are public (an extension's members are public only if its type is).
    public_types: dict[str, bool] = {}
    for f in files:
        for d in declarations(f, {}):
            if d.scope is not None and d.keyword != "extension":
                public_types[d.scope.name] = d.public
                public_types.setdefault(d.scope.name.split(".")[-1], d.public)
    missing, total = [], 0
    for f in files:
        for d in declarations(f, public_types):
            if not d.public or d.spi or d.keyword == "extension":
                continue
            total += 1
            if not d.documented:
                missing.append(d)
    cwd = Path.cwd()
    for d in missing:
        path = d.path.resolve()
        shown = path.relative_to(cwd) if path.is_relative_to(cwd) else path
        print(f"{shown}:{d.line}: {d.keyword} {d.name}: public symbol without a /// comment")
    if missing:
        print(f"error: {len(missing)} of {total} public symbols have no documentation comment", file=sys.stderr)
        return 1
    print(f"doc comments: all {total} public symbols of {', '.join(str(r) for r in roots)} are documented")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
