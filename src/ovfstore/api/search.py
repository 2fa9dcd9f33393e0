"""oVirt search expressions, the part the recovery workflow uses: `name=X`, `status=up`,
`datacenter=X`, `storage.name=X`, `cluster=X`, joined with `and`; `!=` negates; `*` is a wildcard;
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
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Term:
    key: str
    value: str
    negate: bool

    def matches(self, values: Iterable[str]) -> bool:
        pattern = self.value.lower()
        hit = any(fnmatch.fnmatchcase(v.lower(), pattern) for v in values)
        return hit != self.negate


def parse(expression: str) -> list[Term]:
    expression = expression.strip()
    # "Vms: name=x" is the search bar's form; the prefix names the collection already being searched.
    if re.match(r"^\w+\s*:", expression) and "=" not in expression.split(":", 1)[0]:
        expression = expression.split(":", 1)[1]
    if not expression:
        return []
    terms = []
    for part in _AND.split(expression):
        m = _TERM.match(part)
        if m is None:
            raise InvalidInput(f"search term {part.strip()!r} is not of the form key=value (joined with 'and')")
        key, op, raw = m.groups()
        try:
            words = shlex.split(raw) if raw else [""]
        except ValueError as exc:
            raise InvalidInput(f"search value {raw!r}: {exc}") from exc
        terms.append(Term(key.lower(), " ".join(words), op == "!="))
    return terms


def apply(items: list[T], expression: str | None, keys: Keys, kind: str) -> list[T]:
    if not expression:
        return items
    terms = parse(expression)
    for term in terms:
        if term.key not in keys:
            known = ", ".join(sorted(keys))
            raise InvalidInput(f"searching {kind}s by {term.key!r} is not supported; keys that are: {known}")
    return [item for item in items if all(t.matches(keys[t.key](item)) for t in terms)]


def limit(items: list[T], maximum: str | None) -> list[T]:
    if maximum is None or maximum == "":
        return items
    try:
        count = int(maximum)
    except ValueError as exc:
        raise InvalidInput(f"max must be a number, not {maximum!r}") from exc
    return items if count < 0 else items[:count]
