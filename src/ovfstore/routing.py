"""Path templates to values, by method: the route table of both HTTP services (the agent and the API).

A template is a path with `{name}` segments (`/domains/{sd}/images/{img}`); a segment matches one path
segment, never a `/`. The table knows nothing of HTTP: a miss raises `NoRoute` or `MethodNotAllowed`,
and each service turns those into its own kind of answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

_PARAM = re.compile(r"\{(\w+)\}")


class NoRoute(LookupError):
    """No template matches the path."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class MethodNotAllowed(LookupError):
    """A template matches the path, but not with this method; `allowed` lists the methods that do."""

    def __init__(self, path: str, allowed: list[str]) -> None:
        super().__init__(path)
        self.path = path
        self.allowed = allowed


@dataclass(frozen=True, slots=True)
class Match(Generic[V]):
    value: V
    template: str
    params: dict[str, str]


class RouteTable(Generic[V]):
    """Templates in the order added; with `trailing_slash`, a path may end in one `/` more than its template."""

    def __init__(self, *, trailing_slash: bool = False) -> None:
        self._trailing_slash = trailing_slash
        self._routes: list[tuple[re.Pattern[str], str, dict[str, V]]] = []

    def add(self, method: str, template: str, value: V) -> None:
        """Route `method` on `template` to `value`; adding the same method and template again replaces it."""
        parts = _PARAM.split(template.rstrip("/") if self._trailing_slash else template)
        # split() alternates literal text and parameter names: even indexes are text, odd ones names.
        body = "".join(f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts))
        pattern = re.compile("^" + body + ("/?" if self._trailing_slash else "") + "$")
        for existing, _, methods in self._routes:
            if existing.pattern == pattern.pattern:
                methods[method] = value
                return
        self._routes.append((pattern, template, {method: value}))

    def match(self, method: str, path: str) -> Match[V]:
        """The first template that matches the path and takes the method."""
        allowed: set[str] = set()
        for pattern, template, methods in self._routes:
            m = pattern.match(path)
            if m is None:
                continue
            if method in methods:
                return Match(methods[method], template, m.groupdict())
            allowed.update(methods)
        if allowed:
            raise MethodNotAllowed(path, sorted(allowed))
        raise NoRoute(path)

    def templates(self) -> list[tuple[str, list[str]]]:
        """Every template with its methods, in the order added (for listings and tests)."""
        return [(template, sorted(methods)) for _, template, methods in self._routes]
