"""Quoting untrusted input in an error message: enough to see where the problem is, never all of it."""

from __future__ import annotations

#: The most characters of input a message quotes (a store's bytes may be megabytes of anything).
QUOTE_MAX = 200


def cut(value: object, limit: int = QUOTE_MAX) -> str:
    """`value` as text, cut to `limit` characters with the length said: for a path or an id that a message
    shows bare, not quoted."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def quoted(value: object, limit: int = QUOTE_MAX) -> str:
    """`repr(value)`, cut to `limit` characters with the cut said; a huge int is not even converted."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 600:
        return f"<a number of {value.bit_length()} bits>"
    if isinstance(value, str | bytes) and len(value) > limit:  # cut before repr: never copy it all
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:limit]!r}... ({len(value)} {unit})"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
