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
_SPLIT = re.compile(r"(\(|\)|\s+and\s+|\s+or\s+)", re.IGNORECASE)


def parse(expression: str) -> list[Term]:
    """The terms of an expression joined with `and` only (as most callers send)."""
    tree = parse_tree(expression)
    parts = tree.parts if isinstance(tree, AllOf) else (tree,)
    if not all(isinstance(p, Term) for p in parts):
        raise InvalidInput("this search takes terms joined with 'and' only")
    return [p for p in parts if isinstance(p, Term)]


def parse_tree(expression: str) -> Expr:
    """An expression of terms joined with `and` and `or` (`and` binds closer), grouped by parentheses."""
    expression = expression.strip()
    # "Vms: name=x" is the search bar's form; the prefix names the collection already being searched.
    if re.match(r"^\w+\s*:", expression) and "=" not in expression.split(":", 1)[0]:
        expression = expression.split(":", 1)[1]
    tokens = [t.strip() for t in _SPLIT.split(f" {expression} ") if t.strip()]
    if not tokens:
        return AllOf(())
    tree, rest = _either(tokens)
    if rest:
        raise InvalidInput(f"search expression {expression[:200]!r}: unexpected {rest[0]!r}")
    return tree


def _either(tokens: list[str]) -> tuple[Expr, list[str]]:
    parts = []
    while True:
        part, tokens = _both(tokens)
        parts.append(part)
        if not tokens or tokens[0].lower() != "or":
            return (parts[0] if len(parts) == 1 else AnyOf(tuple(parts))), tokens
        tokens = tokens[1:]


def _both(tokens: list[str]) -> tuple[Expr, list[str]]:
    parts = []
    while True:
        part, tokens = _atom(tokens)
        parts.append(part)
        if not tokens or tokens[0].lower() != "and":
            return AllOf(tuple(parts)), tokens
        tokens = tokens[1:]


def _atom(tokens: list[str]) -> tuple[Expr, list[str]]:
    if not tokens:
        raise InvalidInput("search expression ends where a term was expected")
    if tokens[0] == "(":
        inner, rest = _either(tokens[1:])
        if not rest or rest[0] != ")":
            raise InvalidInput("search expression: a '(' is not closed")
        return inner, rest[1:]
    return _term(tokens[0]), tokens[1:]


def _term(part: str) -> Term:
    m = _TERM.match(part)
    if m is None:
        raise InvalidInput(f"search term {part.strip()[:200]!r} is not of the form key=value (joined with and/or)")
    key, op, raw = m.groups()
    try:
        words = shlex.split(raw) if raw else [""]
    except ValueError as exc:
        raise InvalidInput(f"search value {raw[:200]!r}: {exc}") from exc
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
        raise InvalidInput(f"max must be a number, not {maximum!r}") from exc
    return items if count < 0 else items[:count]
