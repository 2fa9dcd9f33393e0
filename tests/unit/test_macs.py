from __future__ import annotations

import pytest

from ovfstore.engine import macs
from ovfstore.engine.errors import Conflict, InvalidInput


def test_normalize_lowercases_and_accepts_dashes() -> None:
    assert macs.normalize(" 56-6F-00-00-00-0A ") == "56:6f:00:00:00:0a"


def test_int_round_trip() -> None:
    assert macs.from_int(macs.to_int("56:6f:00:01:02:ff")) == "56:6f:00:01:02:ff"


def test_next_free_fills_the_first_gap() -> None:
    start, end = "56:6f:00:00:00:00", "56:6f:00:00:00:03"
    assert macs.next_free(start, end, []) == start
    assert macs.next_free(start, end, ["56:6f:00:00:00:00", "56:6f:00:00:00:02"]) == "56:6f:00:00:00:01"
    assert macs.next_free(start, end, ["00:00:00:00:00:01", start]) == "56:6f:00:00:00:01"


def test_exhausted_pool_says_how_to_fix_it() -> None:
    start, end = "56:6f:00:00:00:00", "56:6f:00:00:00:01"
    with pytest.raises(Conflict, match="widen"):
        macs.next_free(start, end, [start, end])


def test_empty_range_is_refused() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        macs.check_range("56:6f:00:00:00:02", "56:6f:00:00:00:01")
