from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from ovfstore.store import description
from ovfstore.store.javadate import JavaDateError, format_java_date, parse_java_date


def test_java_date_round_trip_in_utc() -> None:
    moment = datetime(2016, 2, 18, 0, 23, 7, tzinfo=UTC)
    assert format_java_date(moment) == "Thu Feb 18 00:23:07 UTC 2016"
    assert parse_java_date("Thu Feb 18 00:23:07 UTC 2016") == (moment, None)


@pytest.mark.parametrize(
    ("text", "utc_hour"),
    [
        ("Thu Feb 18 02:23:07 IST 2016", 0),  # Israel Standard Time, as oVirt engines wrote it
        ("Thu Jun 18 03:23:07 IDT 2016", 0),
        ("Thu Feb 18 01:23:07 CET 2016", 0),
        ("Wed Feb 17 19:23:07 EST 2016", 0),
        ("Thu Feb 18 02:23:07 GMT+02:00 2016", 0),
    ],
)
def test_zone_abbreviations_ovirt_writes(text: str, utc_hour: int) -> None:
    moment, warning = parse_java_date(text)
    assert warning is None
    assert moment.hour == utc_hour
    assert moment.tzinfo is UTC


def test_unknown_zone_reads_as_utc_with_a_warning() -> None:
    moment, warning = parse_java_date("Thu Feb 18 00:23:07 XYZT 2016")
    assert moment == datetime(2016, 2, 18, 0, 23, 7, tzinfo=UTC)
    assert warning is not None
    assert "XYZT" in warning


@pytest.mark.parametrize(
    "text", ["", "2016-02-18T00:23:07Z", "Thu Foo 18 00:23:07 UTC 2016", "Thu Feb 31 00:23:07 UTC 2016"]
)
def test_bad_dates(text: str) -> None:
    with pytest.raises(JavaDateError):
        parse_java_date(text)


def test_the_three_description_forms() -> None:
    sd = uuid4()
    never = description.parse(description.never_written())
    assert never.updated is None
    assert not never.complete

    before = json.loads(description.before_write(sd, "Thu Feb 18 00:23:07 UTC 2016"))
    assert before == {
        "Updated": False,
        "Last Updated": "Thu Feb 18 00:23:07 UTC 2016",
        "Storage Domains": [{"uuid": str(sd)}],
        "Disk Description": "OVF_STORE",
    }
    assert not description.parse(description.before_write(sd, None)).complete

    when = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    text = description.after_write(sd, 10240, when)
    assert len(text) <= description.MAX_DESCRIPTION
    done = description.parse(text)
    assert (done.updated, done.size, done.last_updated, done.domain_ids) == (True, 10240, when, (sd,))
    assert done.complete


def test_what_ovirt_wrote_parses() -> None:
    text = (
        '{"Updated":true,"Size":30720,"Last Updated":"Sun Nov 12 15:13:02 IST 2023",'
        '"Storage Domains":[{"uuid":"275766cb-c7d8-43d6-a663-4e52160de620"}],"Disk Description":"OVF_STORE"}'
    )
    parsed = description.parse(text)
    assert parsed.complete
    assert parsed.size == 30720
    assert parsed.last_updated == datetime(2023, 11, 12, 13, 13, 2, tzinfo=UTC)


@pytest.mark.parametrize("text", ["OVF_STORE", "{", '{"Updated": "yes", "Size": -1}', "[]"])
def test_garbage_reads_as_unknown_state_with_warnings(text: str) -> None:
    parsed = description.parse(text)
    assert not parsed.complete
    assert parsed.warnings
    assert description.is_store_description("OVF_STORE") is True
