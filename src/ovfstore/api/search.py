"""oVirt search expressions, the part the recovery workflow uses: `name=X`, `status=up`,
`datacenter=X`, `storage.name=X`, `cluster=X`, joined with `and` and `or` (grouped by parentheses,
as the disaster-recovery role's searches are); `!=` negates; `*` is a wildcard;
values may be quoted; names compare without regard to case, as oVirt's do.

A resource says which keys it knows as a mapping from key to the values an object has for it; an
unknown key is a 400 that lists the known ones, so a typo never silently matches everything.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ovfstore.engine.errors import InvalidInput
from ovfstore.store.quoting import quoted

T = TypeVar("T")
# Search key -> the values an object has for it.
Keys = Mapping[str, Callable[[Any], Iterable[str]]]

_TERM = re.compile(r"^\s*([\w.]+)\s*(!=|=)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Term:
    key: str
    value: str
    negate: bool

    def matches(self, values: Iterable[str]) -> bool:
        pattern = self.value.lower()
        hit = any(fnmatch.fnmatchcase(v.lower(), pattern) for v in values)
        return hit != self.negate


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Terms joined with `or`: any of them holds."""

    parts: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    """Terms joined with `and`: all of them hold."""

    parts: tuple[Expr, ...]


Expr = Term | AnyOf | AllOf
#: The longest expression and the deepest nesting of parentheses taken: far beyond any client's, and
#: short of what would make parsing slow or recursion deep.
MAX_EXPRESSION = 64 * 1024
MAX_DEPTH = 32
_CONNECTOR = re.compile(r"\s+(and|or)(?=[\s(]|$)", re.IGNORECASE)


def parse(expression: str) -> list[Term]:
    """The terms of an expression joined with `and` only (as most callers send)."""
    tree = parse_tree(expression)
    parts = tree.parts if isinstance(tree, AllOf) else (tree,)
    if not all(isinstance(p, Term) for p in parts):
        raise InvalidInput("this search takes terms joined with 'and' only")
    return [p for p in parts if isinstance(p, Term)]


def parse_tree(expression: str) -> Expr:
    """An expression of terms joined with `and` and `or` (`and` binds closer), grouped by parentheses."""
    if len(expression) > MAX_EXPRESSION:
        raise InvalidInput(
            f"search expression {quoted(expression, 400)} is {len(expression)} characters long: at most "
            f"{MAX_EXPRESSION}; search in parts"
        )
    expression = expression.strip()
    # "Vms: name=x" is the search bar's form; the prefix names the collection already being searched.
    if re.match(r"^\w+\s*:", expression) and "=" not in expression.split(":", 1)[0]:
        expression = expression.split(":", 1)[1]
    tokens = _tokens(expression)
    if not tokens:
        return AllOf(())
    parser = _Parser(tokens)
    tree = parser.either(0)
    if parser.at < len(tokens):
        raise InvalidInput(f"search expression {quoted(expression, 200)}: unexpected {quoted(tokens[parser.at], 200)}")
    return tree


def _tokens(expression: str) -> list[str]:
    """`(`, `)`, `and`, `or` and the terms between them. Within quotes nothing is special; a `(` inside a
    term (`name=web(1)`) is part of it, and so is the `)` that closes it."""
    tokens: list[str] = []
    term: list[str] = []
    quote, inner, at = "", 0, 0
    while at < len(expression):
        char = expression[at]
        starts_space = char.isspace() and (at == 0 or not expression[at - 1].isspace())
        connector = _CONNECTOR.match(expression, at) if starts_space and not (quote or inner) else None
        if connector is not None:
            tokens.extend([*_flushed(term), connector.group(1).lower()])
            at = connector.end()
            continue
        at += 1
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(" and not term:  # a term starts with it: a group
            tokens.append("(")
            continue
        elif char == "(" or (char == ")" and inner):
            inner += 1 if char == "(" else -1
        elif char == ")":
            tokens.extend([*_flushed(term), ")"])
            continue
        if term or not char.isspace():
            term.append(char)
    return tokens + _flushed(term)


def _flushed(term: list[str]) -> list[str]:
    text = "".join(term).strip()
    term.clear()
    return [text] if text else []


class _Parser:
    """Recursive descent over the tokens, never deeper than `MAX_DEPTH` parentheses."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.at = 0

    def _next_is(self, token: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at] == token

    def either(self, depth: int) -> Expr:
        parts = [self.both(depth)]
        while self._next_is("or"):
            self.at += 1
            parts.append(self.both(depth))
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def both(self, depth: int) -> Expr:
        parts = [self.atom(depth)]
        while self._next_is("and"):
            self.at += 1
            parts.append(self.atom(depth))
        return AllOf(tuple(parts))

    def atom(self, depth: int) -> Expr:
        if self.at >= len(self.tokens):
            raise InvalidInput("search expression ends where a term was expected")
        token = self.tokens[self.at]
        self.at += 1
        if token == "(":
            if depth >= MAX_DEPTH:
                raise InvalidInput(f"search expression nests parentheses deeper than {MAX_DEPTH}; simplify it")
            inner = self.either(depth + 1)
            if not self._next_is(")"):
                raise InvalidInput("search expression: a '(' is not closed")
            self.at += 1
            return inner
        return _term(token)


def _term(part: str) -> Term:
    m = _TERM.match(part)
    if m is None:
        raise InvalidInput(f"search term {quoted(part.strip(), 200)} is not of the form key=value (joined with and/or)")
    key, op, raw = m.groups()
    try:
        words = shlex.split(raw) if raw else [""]
    except ValueError as exc:
        raise InvalidInput(f"search value {quoted(raw, 200)}: {exc}") from exc
    return Term(key.lower(), " ".join(words), op == "!=")


def _terms(tree: Expr) -> list[Term]:
    return [tree] if isinstance(tree, Term) else [t for part in tree.parts for t in _terms(part)]


def _holds(tree: Expr, item: Any, keys: Keys) -> bool:
    if isinstance(tree, Term):
        return tree.matches(keys[tree.key](item))
    if isinstance(tree, AnyOf):
        return any(_holds(p, item, keys) for p in tree.parts)
    return all(_holds(p, item, keys) for p in tree.parts)


def apply(items: list[T], expression: str | None, keys: Keys, kind: str) -> list[T]:
    if not expression:
        return items
    tree = parse_tree(expression)
    for term in _terms(tree):
        if term.key not in keys:
            known = ", ".join(sorted(keys))
            raise InvalidInput(f"searching {kind}s by {term.key!r} is not supported; keys that are: {known}")
    return [item for item in items if _holds(tree, item, keys)]


def limit(items: list[T], maximum: str | None) -> list[T]:
    if maximum is None or maximum == "":
        return items
    try:
        count = int(maximum)
    except ValueError as exc:
        raise InvalidInput(f"max must be a number, not {quoted(maximum)}") from exc
    return items if count < 0 else items[:count]
