"""The one error of the OVF codec."""

from __future__ import annotations


class OvfError(ValueError):
    """An OVF document that cannot be read, or an entity that cannot be written as one.

    The message says what is wrong in terms of the document, so that a recovery report can show it as is.
    """
